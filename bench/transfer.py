"""Push/pull throughput of a big model through Yatai, against peers moving the same bytes.

Run through ``bench/run`` (it builds the release server and picks the venv).
One model of ``BENCH_MB`` MiB of random bytes is saved with bentoml 1.4 and tarred
once (uncompressed, as the CLI tars it). For each transfer path (backend pair x
transmission strategy) the server is driven by two clients, each on a fresh
server whose peak resident memory is sampled from /proc every 100 ms:

* the bentoml 1.4 CLI: ``bentoml models push`` and ``bentoml models pull`` (into an
  empty store), whole commands;
* curl: the tar's bytes through the same API calls the CLI makes (proxy ``PUT
  .../upload`` and ``GET .../download``, or the presigned multipart upload with
  100 MiB parts and the presigned download URL); only the curl commands are timed,
  and the downloaded bytes are checked (size and sha256) afterwards.

The peers move the same tar in the same run, once before and once after the paths (the
faster run of each is kept):

* raw loopback: ``socat`` from the file into a TCP socket on 127.0.0.1 (push:
  the receiver discards it; pull: the receiver writes it to a file);
* ``cp`` into a temporary directory and back (the disk: what storing and reading
  the bytes costs at least);
* Debian's ``docker-registry`` (distribution) on filesystem storage: a blob
  push (``POST .../blobs/uploads/`` + monolithic ``PUT ?digest=``) and pull with curl,
  what another registry built for big blobs takes on this machine;
* ``curl -T`` straight to the S3 server (moto) and ``curl`` GET back (what the
  object store itself can take and give).

Then the cold start: seconds from spawning ``yatai serve`` to the first 200 of
``/readyz`` on an empty database and on one holding 10,000 bentos in 100
repositories (seeded by ``bench/api.py``), on both backend pairs
(``BENCH_COLD_START=0`` skips it).

The tables are printed and appended to ``bench/RESULTS.md`` with the date and the
machine (``BENCH_APPEND=0`` does not append). The servers, databases, buckets
and every temporary file are removed at the end (``BENCH_KEEP=1`` keeps the work
directory).
"""

from __future__ import annotations

import datetime
import filecmp
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import api  # noqa: E402  (bench/api.py: its 10,000-bento seed is reused for the cold start)
import clients  # noqa: E402  (the e2e helpers are reused, not copied)
import registry  # noqa: E402
import servers  # noqa: E402

MIB = 1 << 20
SIZE_MB = int(os.environ.get("BENCH_MB", "1024"))
COLD_START = os.environ.get("BENCH_COLD_START", "1") != "0"
APPEND = os.environ.get("BENCH_APPEND", "1") != "0"
#: Which backend pairs and clients to run (all by default), e.g. BENCH_BACKENDS=local BENCH_CLIENTS=curl.
BACKENDS_RUN = os.environ.get("BENCH_BACKENDS", "local,pg_s3").replace(",", " ").split()
CLIENTS_RUN = os.environ.get("BENCH_CLIENTS", "cli,curl").replace(",", " ").split()
#: Runs of each path and client (the median push and pull are shown): one run of a second or
#: two is mostly the machine's noise (the first upload after a start is often twice as slow).
REPEATS = max(1, int(os.environ.get("BENCH_REPEATS", "3")))
RESULTS = REPO / "bench" / "RESULTS.md"
WEIGHTS = "weights.bin"
#: The issue's memory goal: the server's peak RSS stays below this during a transfer.
RSS_GOAL = 100 * MIB
#: What the bentoml 1.4 CLI uses for a presigned multipart upload (``FILE_CHUNK_SIZE``, and
#: its default of 10 threads putting parts at once): curl does the same.
PART_SIZE = 100 * MIB
PART_WORKERS = 10
#: Cold starts of one kind are repeated and the median is kept (a start takes a fraction
#: of a second, so one sample is mostly scheduling noise on a busy machine).
COLD_REPEATS = 3

CLI = "bentoml 1.4 CLI"
CURL = "curl"
#: No ``Expect: 100-continue``: curl would wait up to a second for a ``100`` that some
#: servers never send, which is curl's cost, not the server's.
NO_EXPECT = "Expect:"


@dataclass(frozen=True)
class TransferPath:
    """One transfer path: a backend pair and the strategy the server announces."""

    name: str
    backend: str
    strategy: str


PATHS = [
    TransferPath("proxy, local", "local", "proxy"),
    TransferPath("presigned, local", "local", "presigned_url"),
    TransferPath("proxy, PostgreSQL+S3", "pg_s3", "proxy"),
    TransferPath("presigned, PostgreSQL+S3", "pg_s3", "presigned_url"),
]

LOOPBACK = "raw loopback (socat)"
DISK = "disk (cp)"
DOCKER_REGISTRY = "docker-registry (curl)"
S3 = "S3 (curl to moto)"
#: Column headings of the ratios.
SHORT = {LOOPBACK: "loopback", DISK: "cp", DOCKER_REGISTRY: "docker-registry", S3: "curl to S3"}
#: Which peers each backend pair is held against (every path is also held against loopback).
PEERS_OF = {"local": [DISK, DOCKER_REGISTRY], "pg_s3": [S3]}


@dataclass
class Measure:
    """Seconds to move the file there and back, and the server's peak RSS (bytes) if any."""

    push_s: float
    pull_s: float
    peak_rss: int | None = None


def median_of(ms: list[Measure]) -> Measure:
    """The median push and pull of some runs, and the highest peak RSS."""
    peaks = [m.peak_rss for m in ms if m.peak_rss is not None]
    return Measure(
        statistics.median(m.push_s for m in ms),
        statistics.median(m.pull_s for m in ms),
        max(peaks) if peaks else None,
    )


def presigned_vs_proxy(results: dict[tuple[TransferPath, str], Measure]) -> str:
    """Presigned against proxy on each backend pair and client (proxy time / presigned time)."""
    cells = []
    for backend, label in (("local", "local"), ("pg_s3", "PostgreSQL+S3")):
        for client in (CURL, CLI):
            proxy = next((m for (p, c), m in results.items() if p.backend == backend and p.strategy == "proxy" and c == client), None)
            signed = next((m for (p, c), m in results.items() if p.backend == backend and p.strategy != "proxy" and c == client), None)
            if proxy and signed:
                cells.append(f"{label}, {client}: push {proxy.push_s / signed.push_s:.2f}, pull {proxy.pull_s / signed.pull_s:.2f}")
    return "; ".join(cells)


def mb_per_s(seconds: float) -> float:
    """Throughput of moving ``SIZE_MB`` MiB in ``seconds``, in MiB/s."""
    return SIZE_MB / seconds


def timed(fn, *args) -> float:
    """Wall-clock seconds ``fn(*args)`` takes.

    Dirty pages of the previous step are flushed first (not timed), so that no
    step pays for the write-back of another.
    """
    os.sync()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(argv: list[str]) -> str:
    """Run a command and return its stdout; a failure stops the benchmark with its output."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"$ {' '.join(argv)}\n(exit {proc.returncode})\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.stdout


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def check_same(got: Path, want: Path, want_sha: str, what: str) -> None:
    """The downloaded file has the size and the sha256 of the uploaded one."""
    assert got.stat().st_size == want.stat().st_size, f"{what}: got {got.stat().st_size} bytes, sent {want.stat().st_size}"
    assert sha256_of(got) == want_sha, f"{what}: the bytes that came back differ from those sent"


class RssSampler:
    """Samples VmRSS and VmHWM of a process every ``interval`` seconds; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.path = Path(f"/proc/{pid}/status")
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        try:
            text = self.path.read_text()
        except OSError:  # the process is gone
            return
        for line in text.splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                self.peak = max(self.peak, int(line.split()[1]) * 1024)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- peers ------------------------------------------------------------------------
def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    """Until something listens on 127.0.0.1:``port`` (read from /proc/net/tcp: a probe
    connection would be the one connection a one-shot ``socat`` listener serves)."""
    needle = f"0100007F:{port:04X} 00000000:0000 0A"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {proc.args} exited with {proc.returncode} before listening")
        if needle in Path("/proc/net/tcp").read_text():
            return
        time.sleep(0.01)
    raise SystemExit(f"bench: nothing listens on 127.0.0.1:{port} after {timeout}s ({proc.args})")


SOCAT_BLOCK = str(1 << 20)


def socat_once(listener: list[str], connector: list[str], port: int) -> float:
    """Seconds from starting ``connector`` until it and the (already listening) ``listener`` end."""
    # 1 MiB transfers (socat's default is 8 KiB, which makes the "wire" look slower than it is:
    # ~800 MiB/s instead of ~2,300 MiB/s here).
    server = subprocess.Popen(["socat", "-b", SOCAT_BLOCK, "-u", *listener], stderr=subprocess.PIPE)
    try:
        wait_listening(port, server)
        os.sync()
        start = time.perf_counter()
        run(["socat", "-b", SOCAT_BLOCK, "-u", *connector])
        server.wait(timeout=600)
        elapsed = time.perf_counter() - start
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    if server.returncode != 0:
        raise SystemExit(f"bench: socat listener failed: {server.stderr.read().decode()[-2000:]}")
    return elapsed


def loopback_peer(source: Path, work: Path, digest: str) -> Measure:
    """The bytes through a TCP connection on 127.0.0.1 and nothing else: the sender reads the
    file into the socket, the receiver discards them (push: the client sends; pull: the
    listening side sends), as every timed download here goes to /dev/null."""
    port = servers.free_port()
    listen = f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"
    push = socat_once([listen, "OPEN:/dev/null"], [f"FILE:{source}", f"TCP:127.0.0.1:{port}"], port)
    port = servers.free_port()
    listen = f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"
    pull = socat_once([f"FILE:{source}", listen], [f"TCP:127.0.0.1:{port}", "OPEN:/dev/null"], port)
    return Measure(push, pull)


def disk_peer(source: Path, work: Path, digest: str) -> Measure:
    """``cp`` the file into a temporary directory and back out."""
    there, back = work / "peer-disk" / "there", work / "peer-disk" / "back"
    there.mkdir(parents=True)
    back.mkdir(parents=True)
    push = timed(run, ["cp", str(source), str(there / source.name)])
    pull = timed(run, ["cp", str(there / source.name), str(back / source.name)])
    shutil.rmtree(work / "peer-disk")
    return Measure(push, pull)


def registry_push(base: str, source: Path, digest: str) -> None:
    """A blob push as the distribution API has it: open an upload, then one monolithic PUT."""
    location = run(["curl", "-fsS", "-X", "POST", "-o", "/dev/null", "-w", "%header{location}", f"{base}/v2/bench/blobs/uploads/"])
    url = urllib.parse.urljoin(base, location.strip())
    url += ("&" if "?" in url else "?") + f"digest=sha256:{digest}"
    run(["curl", "-fsS", "-H", NO_EXPECT, "-H", "Content-Type: application/octet-stream", "-T", str(source), "-o", "/dev/null", url])


def registry_peer(source: Path, work: Path, digest: str) -> Measure:
    """A blob push and pull with curl on Debian's ``docker-registry``, filesystem storage."""
    root = work / "peer-registry"
    (root / "data").mkdir(parents=True)
    port = servers.free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    base = f"http://127.0.0.1:{port}"
    back = root / source.name
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([shutil.which("docker-registry"), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"{base}/v2/", proc, root / "registry.log")
        with RssSampler(proc.pid) as rss:
            push = timed(registry_push, base, source, digest)
            blob = f"{base}/v2/bench/blobs/sha256:{digest}"
            pull = timed(run, ["curl", "-fsS", "-o", "/dev/null", blob])
        run(["curl", "-fsS", "-o", str(back), blob])  # the bytes, checked (not timed)
        check_same(back, source, digest, "docker-registry peer")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root)
    return Measure(push, pull, rss.peak)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Until ``url`` answers 200; the process's log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if subprocess.run(["curl", "-fsS", "-o", "/dev/null", url], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} does not answer after {timeout}s:\n{log.read_text()[-3000:]}")


def s3_peer(source: Path, work: Path, digest: str) -> Measure:
    """``curl -T`` the file to a fresh bucket on the S3 server and ``curl`` it back."""
    endpoint = servers.s3_endpoint()
    bucket = servers.create_bucket(endpoint)
    url = f"{endpoint}/{bucket}/peer/{source.name}"
    auth = [f"-H{k}: {v}" for k, v in servers.MOTO_AUTH.items()]
    back = work / "peer-s3" / source.name
    back.parent.mkdir(parents=True)
    try:
        push = timed(run, ["curl", "-fsS", "-H", NO_EXPECT, *auth, "-T", str(source), "-o", "/dev/null", url])
        pull = timed(run, ["curl", "-fsS", *auth, "-o", "/dev/null", url])
        run(["curl", "-fsS", *auth, "-o", str(back), url])  # the bytes, checked (not timed)
        check_same(back, source, digest, "S3 peer")
    finally:
        shutil.rmtree(back.parent)
        servers.delete_bucket(endpoint, bucket)
    return Measure(push, pull)


PEERS = {LOOPBACK: loopback_peer, DISK: disk_peer, DOCKER_REGISTRY: registry_peer, S3: s3_peer}


def measure_peers(archive: Path, work: Path, digest: str, when: str) -> dict[str, Measure]:
    """Every peer once on ``archive``."""
    peers = {}
    for name, fn in PEERS.items():
        peers[name] = m = fn(archive, work, digest)
        print(f"bench: peer {name} ({when}): push {m.push_s:.2f}s, pull {m.pull_s:.2f}s", flush=True)
    return peers


def best_of(a: dict[str, Measure], b: dict[str, Measure]) -> dict[str, Measure]:
    """Per peer and direction, the faster of two runs (and the higher peak RSS)."""
    return {
        name: Measure(
            min(a[name].push_s, b[name].push_s),
            min(a[name].pull_s, b[name].pull_s),
            max(a[name].peak_rss or 0, b[name].peak_rss or 0) or None,
        )
        for name in a
    }


# -- Yatai with the bentoml 1.4 CLI ---------------------------------------------------
def bentoml14(work: Path, name: str) -> clients.BentoML:
    """A bentoml 1.4 client with its own store under ``work/name``."""
    venv = clients.find_venvs(REPO)["BENTOML14"]
    kind = clients.CLIENT_KINDS["bentoml14"]
    return clients.BentoML(kind, venv, home=work / name / "home", workdir=work / name / "work")


def measure_cli(path: TransferPath, pusher: clients.BentoML, tag: str, work: Path) -> Measure:
    """Fresh server on ``path``; time models push, then models pull into an empty store."""
    server = servers.start_server(path.backend, path.strategy, work / "server")
    try:
        with RssSampler(server.process.pid) as rss:
            pusher.login(server.endpoint, server.token)
            push = timed(pusher.push_model, tag)
            uploaded = registry.get_version(server, "model", tag)
            assert uploaded["upload_status"] == "success", f"{path.name}: push did not finish: {uploaded}"
            puller = bentoml14(work, "puller")
            puller.login(server.endpoint, server.token)
            pull = timed(puller.pull_model, tag)
        pulled = puller.model_dir(tag) / WEIGHTS
        assert filecmp.cmp(pusher.model_dir(tag) / WEIGHTS, pulled, shallow=False), f"{path.name}: pulled bytes differ"
        return Measure(push, pull, rss.peak)
    finally:
        server.stop()
        shutil.rmtree(work / "puller", ignore_errors=True)
        shutil.rmtree(work / "server", ignore_errors=True)


# -- Yatai with curl ---------------------------------------------------------------------
CURL_TAG = "bench-curl:v1"


def curl_api(server: servers.YataiServer, method: str, path: str, body: dict | None = None) -> dict:
    """One API call made with curl, as a client would; returns the JSON answer."""
    argv = ["curl", "-sS", "--fail-with-body", "-X", method, "-H", f"X-YATAI-API-TOKEN: {server.token}"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    return json.loads(run([*argv, f"{server.endpoint}{path}"]))


def curl_put_part(url: str, part: Path) -> subprocess.Popen:
    """Start a curl PUT of one part to its presigned URL; its stdout will be the part's ETag."""
    argv = ["curl", "-sS", "--fail-with-body", "-H", NO_EXPECT, "-T", str(part), "-o", "/dev/null", "-w", "%header{etag}", url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def curl_push(server: servers.YataiServer, archive: Path, parts: list[Path]) -> None:
    """Upload ``archive`` the way the CLI does on this server's strategy, every call with curl.

    proxy: ``start_upload``, ``PUT .../upload``. presigned: ``start_upload``,
    ``start_multipart_upload``, a presigned URL per 100 MiB part, the parts put 10 at a
    time, ``complete_multipart_upload``, ``finish_upload`` (where the server checks the
    archive).
    """
    path = registry.version_path("model", CURL_TAG)
    curl_api(server, "PATCH", f"{path}/start_upload")
    if server.strategy == "proxy":
        run(
            ["curl", "-sS", "--fail-with-body", "-X", "PUT", "-H", f"X-YATAI-API-TOKEN: {server.token}", "-H", NO_EXPECT]
            + ["-H", "Content-Type: application/octet-stream", "-T", str(archive), f"{server.endpoint}{path}/upload"]
        )
        return
    upload_id = curl_api(server, "PATCH", f"{path}/start_multipart_upload")["upload_id"]
    etags: dict[int, str] = {}
    for first in range(0, len(parts), PART_WORKERS):
        running = {}
        for number in range(first + 1, min(first + PART_WORKERS, len(parts)) + 1):
            body = {"upload_id": upload_id, "part_number": number}
            url = curl_api(server, "PATCH", f"{path}/presign_multipart_upload_url", body)["presigned_upload_url"]
            running[number] = curl_put_part(url, parts[number - 1])
        for number, proc in running.items():
            out, err = proc.communicate()
            if proc.returncode != 0 or not out.strip():
                raise SystemExit(f"bench: PUT of part {number} failed (exit {proc.returncode}): {err[-2000:]}")
            etags[number] = out.strip()
    done = [{"part_number": n, "etag": e} for n, e in sorted(etags.items())]
    curl_api(server, "PATCH", f"{path}/complete_multipart_upload", {"upload_id": upload_id, "parts": done})
    curl_api(server, "PATCH", f"{path}/finish_upload", {"status": "success", "reason": ""})


def curl_pull(server: servers.YataiServer, out: Path) -> None:
    """Download the archive: ``GET .../download`` (proxy) or the presigned download URL."""
    path = registry.version_path("model", CURL_TAG)
    if server.strategy == "proxy":
        run(["curl", "-fsS", "-H", f"X-YATAI-API-TOKEN: {server.token}", "-o", str(out), f"{server.endpoint}{path}/download"])
        return
    url = curl_api(server, "PATCH", f"{path}/presign_download_url")["presigned_download_url"]
    run(["curl", "-fsS", "-o", str(out), url])


def measure_curl(path: TransferPath, archive: Path, digest: str, parts: list[Path], work: Path) -> Measure:
    """Fresh server on ``path``; time the curl upload of the tar, then its curl download."""
    server = servers.start_server(path.backend, path.strategy, work / "server")
    back = work / "curl-back.tar"
    try:
        manifest = {"bentoml_version": "1.4.40", "size_bytes": archive.stat().st_size, "module": "", "metadata": {}}
        registry.create_version(server, "model", CURL_TAG, manifest, "pending")
        with RssSampler(server.process.pid) as rss:
            push = timed(curl_push, server, archive, parts)
            uploaded = registry.get_version(server, "model", CURL_TAG)
            assert uploaded["upload_status"] == "success", f"{path.name}: curl upload did not finish: {uploaded}"
            # Timed into /dev/null, like the network peers: what the server and the wire give,
            # not how fast this disk takes 1 GiB of dirty pages. Then fetched again and checked.
            pull = timed(curl_pull, server, Path("/dev/null"))
            curl_pull(server, back)
        check_same(back, archive, digest, f"{path.name}, curl")
        return Measure(push, pull, rss.peak)
    finally:
        server.stop()
        back.unlink(missing_ok=True)
        shutil.rmtree(work / "server", ignore_errors=True)


# -- cold start ------------------------------------------------------------------------
def spawn_until_ready(argv: list[str], env: dict[str, str], endpoint: str, log: Path, timeout: float = 120) -> tuple[subprocess.Popen, float]:
    """Spawn ``yatai serve``; seconds until ``/readyz`` first answers 200 (polled every 5 ms)."""
    host, port = urllib.parse.urlsplit(endpoint).netloc.rsplit(":", 1)
    with open(log, "ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: yatai exited with {proc.returncode} before /readyz:\n{log.read_text()[-3000:]}")
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, time.perf_counter() - start
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    proc.kill()
    raise SystemExit(f"bench: /readyz not 200 after {timeout}s:\n{log.read_text()[-3000:]}")


def first_start(backend: str, workdir: Path) -> tuple[servers.YataiServer, float]:
    """Start a server on a brand-new database (it creates its schema) and time it to ready;
    then bootstrap it (setup, login, token) as ``servers.start_server`` does."""
    env_extra, cleanups = servers.backend_env(backend)
    port = servers.free_port()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    init_token = os.urandom(18).hex()
    # As servers.start_server: nothing inherited may pick the backend behind the benchmark's back.
    env = {k: v for k, v in os.environ.items() if k not in servers._SERVER_KNOBS}
    env.update(env_extra, YATAI_INITIALIZATION_TOKEN=init_token)
    argv = servers.serve_argv(port, data_dir)
    endpoint = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    try:
        proc, seconds = spawn_until_ready(argv, env, endpoint, log)
    except BaseException:
        for cleanup in cleanups:
            cleanup()
        raise
    server = servers.YataiServer(
        backend=backend, strategy=None, process=proc, endpoint=endpoint, log_path=log, data_dir=data_dir,
        settings=env_extra, cleanups=cleanups, argv=argv, env=env,
    )  # fmt: skip
    try:
        server.token = servers.bootstrap(server, init_token)
    except BaseException:
        server.stop()
        raise
    return server, seconds


def restart_until_ready(server: servers.YataiServer) -> float:
    """Stop the server (SIGTERM) and start it again on the same database, storage and port;
    seconds from the spawn to the first 200 of ``/readyz``."""
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    server.process, seconds = spawn_until_ready(server.argv, server.env, server.endpoint, server.log_path)
    return seconds


def cold_start(backend: str, work: Path) -> dict[str, float]:
    """Seconds to ready: first start on a new database, restarts on it empty and with 10,000 bentos."""
    server, first = first_start(backend, work / f"cold-{backend}")
    try:
        empty = statistics.median(restart_until_ready(server) for _ in range(COLD_REPEATS))
        api.seed(server)
        total = server.api_with_token("GET", "/api/v1/bentos?start=0&count=1").json()["total"]
        assert total == api.N_REPOS * api.PER_REPO, f"the seed left {total} bentos"
        seeded = statistics.median(restart_until_ready(server) for _ in range(COLD_REPEATS))
        total = server.api_with_token("GET", "/api/v1/bentos?start=0&count=1").json()["total"]
        assert total == api.N_REPOS * api.PER_REPO, f"after the restarts the server lists {total} bentos"
        return {"first": first, "empty": empty, "seeded": seeded}
    finally:
        server.stop()
        shutil.rmtree(work / f"cold-{backend}", ignore_errors=True)


# -- report ------------------------------------------------------------------------------
def ratio(peer: Measure, m: Measure) -> str:
    """``push / pull`` of peer time over path time (1.00 = as fast as the peer)."""
    return f"{peer.push_s / m.push_s:.2f} / {peer.pull_s / m.pull_s:.2f}"


def rss_cells(peak: int | None) -> str:
    """Peak RSS in MiB and whether it meets the < 100 MiB goal."""
    if peak is None:
        return "– | –"
    return f"{peak / MIB:.0f} | " + ("met" if peak < RSS_GOAL else "**NOT met**")


def transfer_table(results: dict[tuple[TransferPath, str], Measure], peers: dict[str, Measure]) -> str:
    """Every path with both clients and every peer; ratios against the peers of the same run."""
    columns = [LOOPBACK, DISK, DOCKER_REGISTRY, S3]
    lines = [
        "| path | client | push MB/s | pull MB/s | "
        + " | ".join(f"vs {SHORT[c]}" for c in columns)
        + " | server peak RSS MiB | RSS < 100 MiB |",
        "|---|---|---:|---:|" + "---:|" * len(columns) + "---:|---|",
    ]
    for (path, client), m in results.items():
        compared = [LOOPBACK, *PEERS_OF[path.backend]]
        cells = [ratio(peers[c], m) if c in compared else "–" for c in columns]
        lines.append(
            f"| {path.name} | {client} | {mb_per_s(m.push_s):.0f} | {mb_per_s(m.pull_s):.0f} | "
            + " | ".join(cells)
            + f" | {rss_cells(m.peak_rss)} |"
        )
    for name, m in peers.items():
        cells = [ratio(peers[LOOPBACK], m) if c == LOOPBACK else "–" for c in columns]
        peak = f"{m.peak_rss / MIB:.0f} (registry)" if m.peak_rss else "–"
        lines.append(
            f"| peer: {name} | – | {mb_per_s(m.push_s):.0f} | {mb_per_s(m.pull_s):.0f} | "
            + " | ".join(cells)
            + f" | {peak} | – |"
        )
    return "\n".join(lines)


def cold_table(cold: dict[str, dict[str, float]]) -> str:
    """Milliseconds from spawn to the first 200 of ``/readyz``."""
    bentos = f"{api.N_REPOS * api.PER_REPO:,} bentos in {api.N_REPOS} repositories"
    lines = [
        f"| backend pair | empty database, first start (creates the schema) | empty database, restart | {bentos}, restart |",
        "|---|---:|---:|---:|",
    ]
    for backend, t in cold.items():
        lines.append(
            f"| {api.BACKENDS[backend]} | {t['first'] * 1000:.0f} ms | {t['empty'] * 1000:.0f} ms | {t['seeded'] * 1000:.0f} ms |"
        )
    return "\n".join(lines)


#: What a path does beyond moving the bytes once, per direction: the "why" of the slowest.
EXTRA_WORK = {
    (CLI, "push"): "the CLI starts Python, then writes a whole tar of the model to disk before the upload starts",
    (CLI, "pull"): "the CLI starts Python, downloads the tar to a temporary file, then extracts it into its store",
    ("proxy, local", "push"): "every byte crosses the server, which checks the tar as it streams and writes it to the data directory",
    ("proxy, local", "pull"): "every byte is read from the data directory and streamed by the server",
    ("presigned, local", "push"): "the parts arrive side by side and the archive's SHA-256 is one pass in order: the server "
    "hashes each part as soon as the parts before it are in and holds back parts more than two ahead, so the last two or "
    "three parts are hashed at finish_upload; each part's URL is asked for in its own API call",
    ("presigned, local", "pull"): "the server serves its own presigned URL: the bytes still cross the server",
    ("proxy, PostgreSQL+S3", "push"): "it makes two hops, client to server, then server to S3 (moto, a Python server)",
    ("proxy, PostgreSQL+S3", "pull"): "it makes two hops, S3 (moto) to the server, then the server to the client",
    ("presigned, PostgreSQL+S3", "push"): "the parts go to moto, which joins them at complete, then the server reads the whole "
    "object back from S3 at finish_upload to check the archive",
    ("presigned, PostgreSQL+S3", "pull"): "the bytes come straight from moto, which serves them from Python",
}


def slowest(results: dict[tuple[TransferPath, str], Measure], peers: dict[str, Measure], client: str | None = None) -> str:
    """Name the path with the longest push + pull (optionally of one client) and say why."""
    rows = {k: m for k, m in results.items() if client is None or k[1] == client}
    (path, who), m = max(rows.items(), key=lambda kv: kv[1].push_s + kv[1].pull_s)
    direction = "push" if m.push_s >= m.pull_s else "pull"
    took = m.push_s if direction == "push" else m.pull_s
    why = EXTRA_WORK[(path.name, direction)]
    bare = results.get((path, CURL))
    if who == CLI and bare:
        # The curl row of the same path is the transfer without the CLI's own work: whichever
        # of the two parts is larger is the reason.
        transfer = bare.push_s if direction == "push" else bare.pull_s
        own = max(0.0, took - transfer)
        if own > transfer:
            why = f"{EXTRA_WORK[(CLI, direction)]} ({own:.2f} s beyond the {transfer:.2f} s curl takes on this path)"
        else:
            why = f"{why} (curl takes {transfer:.2f} s of it on this path; the CLI's own work, {EXTRA_WORK[(CLI, direction)]}, adds {own:.2f} s)"
    notes = []
    for name in PEERS_OF[path.backend]:
        peer = peers[name]
        peer_s = peer.push_s if direction == "push" else peer.pull_s
        notes.append(f"{name} alone takes {peer_s:.2f} s ({mb_per_s(peer_s):.0f} MB/s)")
    return (
        f"{path.name} with {who}: {m.push_s + m.pull_s:.2f} s for push + pull "
        f"(push {m.push_s:.2f} s, pull {m.pull_s:.2f} s); most of it in the {direction}: {why}; "
        f"for comparison {', '.join(notes)}"
    )


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or ``unknown CPU``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


# -- main ------------------------------------------------------------------------------------
def preflight() -> None:
    """Fail before any work when a binary, a tool or a service the run needs is missing."""
    missing = [tool for tool in ("curl", "socat", "docker-registry", "tar", "split") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"bench: cannot run: {', '.join(missing)} missing; install with: apt-get install docker-registry socat curl"
        )
    try:
        servers.yatai_bin()
        servers.check_postgres()
        servers.s3_endpoint()
    except servers.MissingService as e:
        raise SystemExit(f"bench: cannot run:\n{e}") from None


CLIENTS_MAP = {CLI: "cli", CURL: "curl"}


def main() -> None:
    preflight()
    work = Path(tempfile.mkdtemp(prefix="yatai-bench-"))
    print(f"bench: {SIZE_MB} MiB model, server {servers.yatai_bin()}, work dir {work}", flush=True)
    load_before = os.getloadavg()[0]
    started = datetime.datetime.now(datetime.timezone.utc)
    cold: dict[str, dict[str, float]] = {}
    try:
        pusher = bentoml14(work, "pusher")
        tag = pusher.create_model("bench-model", labels={}, random_files={WEIGHTS: SIZE_MB * MIB})
        print(f"bench: model {tag} saved", flush=True)
        # One uncompressed tar of the model, as the CLI makes it; curl and every peer move it.
        archive = work / "bench.tar"
        run(["tar", "-cf", str(archive), "-C", str(pusher.model_dir(tag)), "."])
        digest = sha256_of(archive)
        (work / "parts").mkdir()
        run(["split", "-b", str(PART_SIZE), "-a", "4", "-d", str(archive), str(work / "parts" / "part.")])
        parts = sorted((work / "parts").iterdir())
        print(f"bench: tar of {archive.stat().st_size:,} bytes, {len(parts)} part(s) of at most 100 MiB", flush=True)

        peers = measure_peers(archive, work, digest, "before the paths")
        runs: dict[tuple[TransferPath, str], list[Measure]] = {}
        # Round after round over every path, so that a slow spell of the machine is shared.
        for _ in range(REPEATS):
            for path in (p for p in PATHS if p.backend in BACKENDS_RUN):
                for client in (c for c in (CLI, CURL) if CLIENTS_MAP[c] in CLIENTS_RUN):
                    if client == CLI:
                        m = measure_cli(path, pusher, tag, work)
                    else:
                        m = measure_curl(path, archive, digest, parts, work)
                    runs.setdefault((path, client), []).append(m)
                    print(
                        f"bench: {path.name}, {client}: push {m.push_s:.2f}s, pull {m.pull_s:.2f}s, "
                        f"peak RSS {m.peak_rss / MIB:.0f} MiB",
                        flush=True,
                    )
        results = {key: median_of(ms) for key, ms in runs.items()}
        # Once more after the paths, keeping the faster of the two: a peer is the bar, and one
        # slow sample (moto pausing, the load moving) would flatter every path against it.
        peers = best_of(peers, measure_peers(archive, work, digest, "after the paths"))
        if COLD_START:
            for backend in (b for b in ("local", "pg_s3") if b in BACKENDS_RUN):
                print(f"bench: cold start, {api.BACKENDS[backend]}", flush=True)
                cold[backend] = cold_start(backend, work)
                t = cold[backend]
                print(
                    f"bench: cold start, {api.BACKENDS[backend]}: first {t['first']:.3f}s, "
                    f"empty {t['empty']:.3f}s, 10k bentos {t['seeded']:.3f}s",
                    flush=True,
                )
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()[0]
    machine = f"{os.cpu_count()} CPUs, {cpu_model()}, load {load_before:.1f}/{load_after:.1f}, {platform.machine()}"
    sections = [
        f"### {started:%Y-%m-%d %H:%M} UTC, transfer, {SIZE_MB} MiB ({machine})",
        transfer_table(results, peers),
        f"Slowest path: {slowest(results, peers)}.",
        f"Slowest with curl (the server's part alone): {slowest(results, peers, CURL)}.",
        f"Presigned as fast as proxy (proxy time / presigned time, 1.00 = as fast; the goal on the local backend is "
        f"0.80 or more): {presigned_vs_proxy(results)}.",
        f"MB = MiB (2^20 bytes), {SIZE_MB} MiB per transfer, median of {REPEATS} run(s) of each path and client; "
        "ratio = peer time / path time, push / pull (1.00 = as fast as the peer); "
        "CLI rows time the whole command, curl rows the curl commands of the flow (their downloads, and the network peers', "
        "into /dev/null); "
        "each peer ran before and after the paths, the faster run is shown; "
        "peak RSS is the server's (VmHWM/VmRSS, polled every 100 ms); load average before/after the run.",
    ]
    if cold:
        sections += [
            f"Cold start: spawn of `yatai serve` to the first 200 of `/readyz`, median of {COLD_REPEATS} restarts "
            "(page cache warm; the first start is one sample).",
            cold_table(cold),
        ]
    report = "\n\n".join(sections) + "\n"
    print("\n" + report)
    if APPEND:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write("\n" + report)
        print(f"bench: appended to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()

"""Push/pull throughput of a big model with the real bentoml 1.4 CLI, against raw copies.

Run through ``bench/run`` (it builds the release server and picks the venv).
For each transfer path (backend pair x transmission strategy) a fresh server
is started; ``bentoml models push`` and then ``bentoml models pull`` (into an
empty store) of one model of ``BENCH_MB`` MiB of random bytes are timed, and
the server's peak resident memory is sampled from /proc every 100 ms.

Each path is compared with a peer measured in the same run on the same file:

* local backend: ``cp`` of the file into a temporary directory and back (the
  disk baseline: what storing and reading the bytes costs at least);
* PostgreSQL + S3: ``curl -T`` of the file straight to the S3 server (moto) and
  ``curl`` GET of it back (what the object store itself can take and give).

The server, its database, bucket and every temporary file are removed at the
end (``BENCH_KEEP=1`` keeps the work directory).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import clients  # noqa: E402  (the e2e helpers are reused, not copied)
import registry  # noqa: E402
import servers  # noqa: E402

MIB = 1 << 20
SIZE_MB = int(os.environ.get("BENCH_MB", "1024"))
WEIGHTS = "weights.bin"


@dataclass(frozen=True)
class TransferPath:
    """One transfer path: a backend pair and the strategy the server announces."""

    name: str
    backend: str
    strategy: str

    @property
    def peer(self) -> str:
        return "disk (cp)" if self.backend == "local" else "S3 (curl)"


PATHS = [
    TransferPath("proxy, local", "local", "proxy"),
    TransferPath("presigned, local", "local", "presigned_url"),
    TransferPath("proxy, PostgreSQL+S3", "pg_s3", "proxy"),
    TransferPath("presigned, PostgreSQL+S3", "pg_s3", "presigned_url"),
]


@dataclass
class Measure:
    """Seconds to move the file there and back, and the server's peak RSS (bytes) if any."""

    push_s: float
    pull_s: float
    peak_rss: int | None = None


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


def run(argv: list[str]) -> None:
    """Run a command; a failure stops the benchmark with its output."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"$ {' '.join(argv)}\n(exit {proc.returncode})\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


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
def disk_peer(source: Path, work: Path) -> Measure:
    """``cp`` the file into a temporary directory and back out."""
    there, back = work / "peer-disk" / "there", work / "peer-disk" / "back"
    there.mkdir(parents=True)
    back.mkdir(parents=True)
    push = timed(run, ["cp", str(source), str(there / source.name)])
    pull = timed(run, ["cp", str(there / source.name), str(back / source.name)])
    shutil.rmtree(work / "peer-disk")
    return Measure(push, pull)


def s3_peer(source: Path, work: Path) -> Measure:
    """``curl -T`` the file to a fresh bucket on the S3 server and ``curl`` it back."""
    endpoint = servers.s3_endpoint()
    bucket = servers.create_bucket(endpoint)
    url = f"{endpoint}/{bucket}/peer/{source.name}"
    auth = [f"-H{k}: {v}" for k, v in servers.MOTO_AUTH.items()]
    back = work / "peer-s3" / source.name
    back.parent.mkdir(parents=True)
    try:
        push = timed(run, ["curl", "-fsS", *auth, "-T", str(source), url])
        pull = timed(run, ["curl", "-fsS", *auth, "-o", str(back), url])
        assert back.stat().st_size == source.stat().st_size, "the S3 peer got back a different size"
    finally:
        shutil.rmtree(back.parent)
        servers.delete_bucket(endpoint, bucket)
    return Measure(push, pull)


PEERS = {"disk (cp)": disk_peer, "S3 (curl)": s3_peer}


# -- the real thing -----------------------------------------------------------------
def bentoml14(work: Path, name: str) -> clients.BentoML:
    """A bentoml 1.4 client with its own store under ``work/name``."""
    venv = clients.find_venvs(REPO)["BENTOML14"]
    kind = clients.CLIENT_KINDS["bentoml14"]
    return clients.BentoML(kind, venv, home=work / name / "home", workdir=work / name / "work")


def measure_path(path: TransferPath, pusher: clients.BentoML, tag: str, work: Path) -> Measure:
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


def table(results: dict[TransferPath, Measure], peers: dict[str, Measure]) -> str:
    """The results as a Markdown table, ratios against each path's peer."""
    lines = [
        "| path | push MB/s | pull MB/s | ratio to peer (push / pull) | peak RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for path, m in results.items():
        peer = peers[path.peer]
        ratio = f"{peer.push_s / m.push_s:.2f} / {peer.pull_s / m.pull_s:.2f}"
        lines.append(
            f"| {path.name} | {mb_per_s(m.push_s):.0f} | {mb_per_s(m.pull_s):.0f} | {ratio} | {m.peak_rss / MIB:.0f} |"
        )
    for name, m in peers.items():
        lines.append(f"| peer: {name} | {mb_per_s(m.push_s):.0f} | {mb_per_s(m.pull_s):.0f} | 1.00 / 1.00 | – |")
    return "\n".join(lines)


def preflight() -> None:
    """Fail before any work when the server binary, PostgreSQL or the S3 server is missing."""
    try:
        servers.yatai_bin()
        if any(p.backend == "pg_s3" for p in PATHS):
            servers.check_postgres()
            servers.s3_endpoint()
    except servers.MissingService as e:
        raise SystemExit(f"bench: cannot run:\n{e}") from None


def main() -> None:
    preflight()
    work = Path(tempfile.mkdtemp(prefix="yatai-bench-"))
    print(f"bench: {SIZE_MB} MiB model, server {servers.yatai_bin()}, work dir {work}", flush=True)
    load_before = os.getloadavg()[0]
    try:
        pusher = bentoml14(work, "pusher")
        tag = pusher.create_model("bench-model", labels={}, random_files={WEIGHTS: SIZE_MB * MIB})
        source = pusher.model_dir(tag) / WEIGHTS
        print(f"bench: model {tag} saved", flush=True)
        peers = {}
        for name in sorted({p.peer for p in PATHS}):
            peers[name] = PEERS[name](source, work)
            print(f"bench: peer {name}: push {peers[name].push_s:.2f}s, pull {peers[name].pull_s:.2f}s", flush=True)
        results = {}
        for path in PATHS:
            results[path] = measure_path(path, pusher, tag, work)
            m = results[path]
            print(
                f"bench: {path.name}: push {m.push_s:.2f}s, pull {m.pull_s:.2f}s, peak RSS {m.peak_rss / MIB:.0f} MiB",
                flush=True,
            )
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results, peers))
    print(
        f"\nMB = MiB (2^20 bytes); {SIZE_MB} MiB per transfer; times are wall-clock of the whole CLI command;"
        f" {os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."
    )


if __name__ == "__main__":
    main()

"""Tools of the reliability suite: processes killed and restarted, memory read from /proc,
requests sent byte by byte, archives made to order, and what the storage and the database
really hold.

The servers themselves are started by ``tests/e2e/servers.py`` (imported, not copied): the
same binary, the same two backend pairs, the same bootstrap. What is added here is what a
test that breaks the server on purpose needs on top of that.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import secrets
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import requests

E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

import registry  # noqa: E402  (tests/e2e)
import servers  # noqa: E402  (tests/e2e)

HERE = Path(__file__).resolve().parent

#: Headers of every bentoml 1.4 request (the server tells client generations apart by it).
CLIENT_HEADERS = {"X-Bentoml-Version": "1.4.40"}

#: How long a test waits for the server to clean up after a crash before it calls the
#: leftovers permanent. The cleanup "on start and periodically" of issue 9 must fit in it.
CLEANUP_WAIT = float(os.environ.get("YATAI_RELIABILITY_CLEANUP_WAIT", "30"))


# -- processes -----------------------------------------------------------------------
def server_env(server: servers.YataiServer) -> dict[str, str]:
    """The environment :func:`servers.start_server` gave the server (backend, strategy)."""
    env = {k: v for k, v in os.environ.items() if k not in servers._SERVER_KNOBS}
    env.update(server.settings)
    if server.strategy:
        env["TRANSMISSION_STRATEGY"] = server.strategy
    # A restarted server tidies up after the crash within seconds, not minutes.
    env.setdefault("YATAI_UPLOAD_STALE_AFTER", "3")
    env.setdefault("YATAI_PRESIGNED_UPLOAD_STALE_AFTER", "3")
    env.setdefault("YATAI_JANITOR_INTERVAL", "1")
    return env


def _port(server: servers.YataiServer) -> int:
    return urllib.parse.urlsplit(server.endpoint).port or 80


def spawn(server: servers.YataiServer) -> None:
    """Start ``yatai serve`` again for ``server``: same storage, same port, same settings;
    its output is appended to the server's log. Waits until ``/healthz`` answers."""
    argv = servers.serve_argv(_port(server), server.data_dir)
    with open(server.log_path, "ab") as log:
        log.write(f"\n===== restarted: {' '.join(argv)}\n".encode())
        log.flush()
        server.process = subprocess.Popen(
            argv, env=server_env(server), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    servers._wait_healthy(server, argv)


def kill9(server: servers.YataiServer) -> None:
    """``kill -9`` the server process and reap it."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)


def restart_after_crash(server: servers.YataiServer) -> None:
    """``kill -9`` (if still alive), then start on the same storage and port."""
    kill9(server)
    spawn(server)


def replica(server: servers.YataiServer, workdir: Path) -> servers.YataiServer:
    """A second ``yatai serve`` on the same PostgreSQL database and S3 bucket, on its own port.
    It shares the first one's token; stopping it drops nothing (the first one owns the storage)."""
    assert server.backend == "pg_s3", "replicas share PostgreSQL + S3; the local backend is one process"
    workdir.mkdir(parents=True, exist_ok=True)
    port = servers.free_port()
    other = servers.YataiServer(
        backend=server.backend,
        strategy=server.strategy,
        process=server.process,  # replaced by spawn()
        endpoint=f"http://127.0.0.1:{port}",
        log_path=workdir / "server.log",
        data_dir=workdir / "data",
        settings=dict(server.settings),
        token=server.token,
        cleanups=[],
    )
    other.data_dir.mkdir(parents=True, exist_ok=True)
    other.log_path.write_text("", "utf-8")
    spawn(other)
    return other


# -- memory ----------------------------------------------------------------------------
def memory_mib(pid: int) -> dict[str, float]:
    """``VmRSS`` (now) and ``VmHWM`` (peak since start or the last :func:`reset_peak`) in MiB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def reset_peak(pid: int) -> None:
    """Reset ``VmHWM`` to the current RSS (``echo 5 > /proc/PID/clear_refs``)."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def settle_rss(pid: int, below_mib: float, wait: float = 20.0) -> float:
    """Poll ``VmRSS`` for up to ``wait`` seconds until it is below ``below_mib``; returns the last value."""
    deadline = time.monotonic() + wait
    while True:
        now = memory_mib(pid)["VmRSS"]
        if now < below_mib or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


# -- archives --------------------------------------------------------------------------
def tar_bytes(files: dict[str, bytes], gz: bool = True) -> bytes:
    """A tar (gzip-compressed unless ``gz`` is false) holding ``files``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def marked_archive(marker: str, random_bytes: int = 4096, gz: bool = True) -> bytes:
    """A whole archive whose ``marker.txt`` says which push made it, with ``random_bytes`` of noise."""
    return tar_bytes({"marker.txt": marker.encode(), "payload.bin": os.urandom(random_bytes)}, gz=gz)


def archive_marker(data: bytes) -> str:
    """The ``marker.txt`` of an archive made by :func:`marked_archive`."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        member = tar.extractfile("marker.txt")
        assert member is not None, "the archive has no marker.txt"
        return member.read().decode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(marker: str, size: int = 0) -> dict:
    """A small manifest of the shape the clients send, carrying ``marker`` as an unknown key."""
    return {
        "service": "service:Echo",
        "bentoml_version": "1.4.40",
        "size_bytes": size,
        "apis": {},
        "models": [],
        "marker": marker,
    }


# -- HTTP ------------------------------------------------------------------------------
@dataclass
class RawResponse:
    """What came back to a request sent by :func:`raw_request` (or why nothing did)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""
    sent: int = 0

    def describe(self) -> str:
        if self.status is None:
            return f"no answer after sending {self.sent} bytes ({self.error})"
        return f"{self.status} {self.headers} {self.body[:600]!r}"

    def json(self) -> dict:
        return json.loads(self.body)


def raw_request(
    endpoint: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    chunks: Iterable[bytes] = (),
    *,
    declared_length: int | None = None,
    rate: float | None = None,
    half_close: bool = False,
    timeout: float = 120,
    progress: list | None = None,
) -> RawResponse:
    """Send a request exactly as told: ``Content-Length`` = ``declared_length`` whatever the
    chunks add up to, at most ``rate`` bytes/s, and with ``half_close`` the sending side of the
    socket is shut after the last chunk (a client that stops short). ``progress`` (a list)
    gets the running count of bytes sent in its first slot. When the server answers before
    the body is all sent, sending stops and its answer is read (as a careful client does)."""
    url = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    out = RawResponse(None)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if declared_length is not None:
            conn.putheader("Content-Length", str(declared_length))
        conn.endheaders()
        start = time.monotonic()
        try:
            for chunk in chunks:
                if conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
                    break  # the server answered (or closed) early
                conn.send(chunk)
                out.sent += len(chunk)
                if progress is not None:
                    progress[0] = out.sent
                if rate:
                    delay = start + out.sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            if half_close and conn.sock is not None:
                conn.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            # The server stopped reading (it answered and closed): its answer may still be
            # waiting in the socket, so read it before giving up.
            out.error = f"sending stopped: {type(e).__name__}: {e}"
        resp = conn.getresponse()
        out.status = resp.status
        out.headers = {k.lower(): v for k, v in resp.getheaders()}
        out.body = resp.read()
    except (OSError, http.client.HTTPException) as e:
        out.error = "; ".join(filter(None, [out.error, f"{type(e).__name__}: {e}"]))
    finally:
        conn.close()
    return out


def chunked(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def auth(server: servers.YataiServer, token: str | None = None) -> dict[str, str]:
    return {"X-YATAI-API-TOKEN": token or server.token, **CLIENT_HEADERS}


# -- the registry over plain HTTP --------------------------------------------------------
def version_path(kind: str, tag: str) -> str:
    return registry.version_path(kind, tag)


def ensure_version(server: servers.YataiServer, kind: str, tag: str, marker: str = "", token: str | None = None) -> dict:
    """Create the repository and the version when missing (200), as ``bentoml push`` does."""
    name, version = tag.split(":", 1)
    h = auth(server, token)
    resp = requests.post(
        f"{server.endpoint}/api/v1/{kind}_repositories", json={"name": name, "description": ""}, headers=h, timeout=60
    )
    assert resp.status_code == 200, f"create repository {name}: {resp.status_code} {resp.text[:500]}"
    body = {"version": version, "description": "", "manifest": manifest(marker), "build_at": registry.BUILD_AT, "labels": []}
    resp = requests.post(
        f"{server.endpoint}/api/v1/{kind}_repositories/{name}/{kind}s", json=body, headers=h, timeout=60
    )
    if resp.status_code == 409:
        return get_version(server, kind, tag, token)
    assert resp.status_code == 200, f"create {kind} {tag}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def get_version(server: servers.YataiServer, kind: str, tag: str, token: str | None = None) -> dict:
    resp = requests.get(f"{server.endpoint}{version_path(kind, tag)}", headers=auth(server, token), timeout=60)
    assert resp.status_code == 200, f"GET {kind} {tag}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def proxy_upload(server: servers.YataiServer, kind: str, tag: str, data: bytes, token: str | None = None) -> requests.Response:
    """``start_upload`` then ``PUT .../upload`` with the archive, as bentoml does on a proxy server."""
    path = version_path(kind, tag)
    h = auth(server, token)
    resp = requests.patch(f"{server.endpoint}{path}/start_upload", headers=h, timeout=60)
    if resp.status_code != 200:
        return resp
    return requests.put(
        f"{server.endpoint}{path}/upload",
        data=data,
        headers={**h, "Content-Type": "application/octet-stream"},
        timeout=300,
    )


def push(server: servers.YataiServer, kind: str, tag: str, data: bytes, marker: str = "") -> dict:
    """Create (when missing) and upload through the proxy; asserts 200; returns the version."""
    ensure_version(server, kind, tag, marker)
    resp = proxy_upload(server, kind, tag, data)
    assert resp.status_code == 200, f"proxy upload of {kind} {tag}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def multipart_upload(
    server: servers.YataiServer, kind: str, tag: str, data: bytes, part_size: int = 5 << 20, token: str | None = None
) -> requests.Response:
    """The presigned multipart flow of bentoml 1.4 (start, presign + PUT each part, complete,
    finish_upload success); returns the answer to ``finish_upload`` (or the first failure)."""
    path = version_path(kind, tag)
    base = f"{server.endpoint}{path}"
    h = auth(server, token)
    resp = requests.patch(f"{base}/start_multipart_upload", headers=h, timeout=60)
    if resp.status_code != 200:
        return resp
    upload_id = resp.json().get("upload_id")
    assert upload_id, f"start_multipart_upload gave no upload_id: {resp.text[:500]}"
    parts = []
    for number, start in enumerate(range(0, len(data), part_size), start=1):
        resp = requests.patch(
            f"{base}/presign_multipart_upload_url",
            json={"upload_id": upload_id, "part_number": number},
            headers=h,
            timeout=60,
        )
        if resp.status_code != 200:
            return resp
        url = resp.json().get("presigned_upload_url")
        assert url, f"presign_multipart_upload_url gave no URL: {resp.text[:500]}"
        put = put_part(server, url, data[start : start + part_size])
        if put.status_code != 200:
            return put
        parts.append({"part_number": number, "etag": put.headers.get("ETag", "")})
    resp = requests.patch(
        f"{base}/complete_multipart_upload", json={"upload_id": upload_id, "parts": parts}, headers=h, timeout=300
    )
    if resp.status_code != 200:
        return resp
    return requests.patch(f"{base}/finish_upload", json={"status": "success", "reason": ""}, headers=h, timeout=300)


def put_part(server: servers.YataiServer, url: str, data: bytes, **kw) -> requests.Response:
    """PUT one part to a presigned URL. A URL of the S3 server (not of Yatai) is tried up to three
    times when the S3 server itself fails (moto answers 500 now and then under concurrent load):
    that is the test S3 server's flakiness, not Yatai's behaviour, which the test is about."""
    for attempt in range(3):
        resp = requests.put(url, data=data, timeout=300, **kw)
        if resp.status_code < 500 or url.startswith(server.endpoint):
            return resp
        time.sleep(0.5 * (attempt + 1))
    return resp


def download(server: servers.YataiServer, kind: str, tag: str, headers: dict | None = None, token: str | None = None):
    return requests.get(
        f"{server.endpoint}{version_path(kind, tag)}/download",
        headers={**auth(server, token), **(headers or {})},
        timeout=300,
    )


# -- what the storage and the database hold -----------------------------------------------
def s3_location(server: servers.YataiServer) -> tuple[str, str]:
    s3 = server._s3()
    assert s3, "this server does not use S3"
    return s3


def incomplete_multipart_uploads(server: servers.YataiServer) -> list[str]:
    """``KEY (uploadId)`` of every multipart upload not completed nor aborted: on S3 the bucket's
    ListMultipartUploads, on the local backend the part files under ``objects/.uploads``."""
    if server.backend != "pg_s3":
        return [k for k in server.object_keys() if k.startswith(".uploads/")]
    endpoint, bucket = s3_location(server)
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    resp = requests.get(f"{endpoint}/{bucket}?uploads", headers=servers.MOTO_AUTH, timeout=60)
    assert resp.status_code == 200, f"ListMultipartUploads {bucket}: {resp.status_code} {resp.text[:300]}"
    root = ET.fromstring(resp.content)
    return [
        f"{u.findtext('s3:Key', namespaces=ns)} ({u.findtext('s3:UploadId', namespaces=ns)})"
        for u in root.findall("s3:Upload", ns)
    ]


def staging_files(server: servers.YataiServer) -> list[str]:
    """Files the local backend writes before an object is whole (``KEY#N``), and multipart
    parts; on S3, the incomplete multipart uploads."""
    if server.backend == "pg_s3":
        return incomplete_multipart_uploads(server)
    return [k for k in server.object_keys() if "#" in k.rsplit("/", 1)[-1] or k.startswith(".uploads/")]


def storage_state(server: servers.YataiServer) -> dict[str, list[str]]:
    """Every stored object and every unfinished upload, to compare before and after."""
    return {"objects": server.object_keys(), "unfinished uploads": incomplete_multipart_uploads(server)}


def psql(database: str, sql: str) -> str:
    proc = subprocess.run(
        ["psql", "-h", servers.PG["host"], "-p", servers.PG["port"], "-U", servers.PG["user"], "-d", database,
         "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )  # fmt: skip
    assert proc.returncode == 0, f"psql -d {database} -c {sql!r}: {proc.stderr.strip()}"
    return proc.stdout


def row_counts(server: servers.YataiServer) -> dict[str, int]:
    """Rows of every table of the server's database, read straight from it."""
    if server.backend == "pg_s3":
        database = server.settings["PG_DATABASE"]
        tables = psql(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
        sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM \"{t}\"" for t in tables)
        return {line.split("|")[0]: int(line.split("|")[1]) for line in psql(database, sql).splitlines() if line}
    db = sqlite3.connect(f"file:{server.data_dir / 'yatai.db'}?mode=ro", uri=True, timeout=30)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


def query(server: servers.YataiServer, sql: str) -> list[tuple[str, ...]]:
    """Rows of ``sql`` (text columns) read straight from the server's database."""
    if server.backend == "pg_s3":
        out = psql(server.settings["PG_DATABASE"], sql)
        return [tuple(line.split("|")) for line in out.splitlines() if line]
    db = sqlite3.connect(f"file:{server.data_dir / 'yatai.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [tuple("" if c is None else str(c) for c in row) for row in db.execute(sql)]
    finally:
        db.close()


def differences(before: dict, after: dict) -> dict:
    """``{key: (before, after)}`` for every key whose value changed."""
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def wait_for(what: str, probe, timeout: float, interval: float = 0.5):
    """Call ``probe()`` until it returns a truthy value; returns it, or the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, list]:
    """Run ``fn`` in a daemon thread; the returned list receives its result (or exception)."""
    box: list = []

    def run():
        try:
            box.append(fn(*args, **kwargs))
        except BaseException as e:  # handed to the test, which reports it
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


class Relay:
    """``relay.py`` on a port of its own in front of ``target`` (``host:port``); see relay.py."""

    def __init__(self, target: str, log: Path):
        self.target = target
        self.port = servers.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "relay.py"), str(self.port), self.target],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        assert line == "ready", f"relay.py did not start on port {self.port}: {line!r}, see {self.log}"

    def kill9(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill9()

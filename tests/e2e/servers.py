"""Start the Yatai server under test with a chosen storage backend and bootstrap it.

Backends:

* ``local``: the server's own defaults under ``--data-dir`` (no PG_* / S3_*).
* ``pg_s3``: the production pair, PostgreSQL (a fresh database per server) and
  an S3 endpoint (a moto server; a fresh bucket per server).

When something the tests need is missing, :class:`MissingService` says exactly
how to provide it; the fixtures turn that into a test failure, never a skip.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "yatai"
BACKENDS = ("local", "pg_s3")

#: Every scope api.md lists; the bootstrap token gets them all.
ALL_SCOPES = ["api", "read_organization", "write_organization", "read_cluster", "write_cluster"]

PG = {
    "host": os.environ.get("YATAI_TEST_PG_HOST", "127.0.0.1"),
    "port": os.environ.get("YATAI_TEST_PG_PORT", "5432"),
    "user": os.environ.get("YATAI_TEST_PG_USER", "postgres"),
}

#: `scripts/test --e2e-only` does all of this (build, PostgreSQL, moto, venvs) in one go.
HOW_TO = {
    "binary": (
        "Build the server first: `cargo build --workspace` in {repo} (it must produce {bin}), "
        "or point YATAI_BIN at an already built yatai binary; `scripts/test --e2e-only` builds it too."
    ),
    "postgres": (
        "PostgreSQL is not reachable at {host}:{port} as user {user}. Start it, e.g. "
        "`pg_ctlcluster --skip-systemctl-redirect 15 main start` (Debian) or run `scripts/test --e2e-only`, "
        "which installs and starts it; it must accept `psql -h {host} -p {port} -U {user} -d postgres` "
        "without a password (trust auth). The `psql` client must be on PATH (`apt-get install postgresql-client`)."
    ),
    "moto": (
        "The pg_s3 backend needs an S3 endpoint: start moto (pinned, on port 5055) and export its URL with\n"
        "  source scripts/lib/services.sh && ensure_s3 && echo $YATAI_TEST_S3_ENDPOINT\n"
        "or by hand:\n"
        "  python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]'\n"
        "  /tmp/moto/bin/moto_server -H 127.0.0.1 -p 5055 > /tmp/moto.log 2>&1 &\n"
        "  export YATAI_TEST_S3_ENDPOINT=http://127.0.0.1:5055\n"
        "(`scripts/test --e2e-only` starts moto and sets it) {detail}"
    ),
}


#: Server settings the tests always set themselves (or leave unset on purpose).
_SERVER_KNOBS = {
    "TRANSMISSION_STRATEGY",
    *(f"PG_{k}" for k in ("HOST", "PORT", "USER", "PASSWORD", "DATABASE", "SSLMODE")),
    *(f"S3_{k}" for k in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "REGION", "SECURE", "BUCKET_NAME")),
    # A registry makes the server build images itself: only the tests that want it set one.
    *(f"DOCKER_REGISTRY_{k}" for k in ("SERVER", "IN_CLUSTER_SERVER", "USERNAME", "PASSWORD", "SECURE", "BENTO_REPOSITORY_NAME")),
    "YATAI_IMAGE_BUILDER_BASE_IMAGE",
    "YATAI_READ_CACHE_MB",
    *(f"YATAI_{k}" for k in ("LOCAL_DEPLOYMENTS", "DEPLOYMENTS_DIR", "DEPLOYMENTS_ENVS_DIR", "DEPLOYMENTS_HOST", "DEPLOYMENTS_PUBLIC_HOST")),
}


class MissingService(RuntimeError):
    """A service or binary the tests need is absent; the message says how to fix it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def yatai_bin() -> Path:
    """The server binary (``YATAI_BIN`` or target/debug/yatai), checked to exist."""
    path = Path(os.environ.get("YATAI_BIN", DEFAULT_BIN))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingService(
            f"yatai binary not found or not executable at {path}.\n"
            + HOW_TO["binary"].format(repo=REPO, bin=DEFAULT_BIN)
        )
    return path


# -- backing services -----------------------------------------------------------
def _psql(sql: str) -> None:
    if shutil.which("psql") is None:
        raise MissingService(HOW_TO["postgres"].format(**PG))
    proc = subprocess.run(
        [
            "psql",
            "-h",
            PG["host"],
            "-p",
            PG["port"],
            "-U",
            PG["user"],
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qAtc",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )
    if proc.returncode != 0:
        raise MissingService(f"{HOW_TO['postgres'].format(**PG)}\npsql said: {proc.stderr.strip()}")


def check_postgres() -> None:
    """Raise :class:`MissingService` (saying how to start it) unless PostgreSQL answers."""
    _psql("SELECT 1")


def create_database() -> str:
    """Create a fresh, uniquely named PostgreSQL database; returns its name."""
    name = f"yatai_e2e_{secrets.token_hex(6)}"
    _psql(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    """Drop a database made by :func:`create_database` (best effort: a database left behind is
    dropped by the next run of ``scripts/test``; a teardown that failed here stopped the servers
    still to be stopped, and they kept running)."""
    try:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except (MissingService, subprocess.TimeoutExpired):
        pass


def s3_endpoint() -> str:
    """The moto/S3 endpoint URL from ``YATAI_TEST_S3_ENDPOINT``, checked to answer."""
    url = os.environ.get("YATAI_TEST_S3_ENDPOINT", "").rstrip("/")
    if not url:
        raise MissingService(HOW_TO["moto"].format(detail="(YATAI_TEST_S3_ENDPOINT is not set)"))
    try:
        requests.get(url, timeout=5)
    except requests.RequestException as e:
        raise MissingService(HOW_TO["moto"].format(detail=f"({url} does not answer: {e})")) from None
    return url


def create_bucket(endpoint: str) -> str:
    """Create a fresh bucket with a plain unsigned PUT (moto accepts it)."""
    name = f"yatai-e2e-{secrets.token_hex(6)}"
    resp = requests.put(f"{endpoint}/{name}", timeout=30)
    if resp.status_code != 200:
        raise MissingService(
            HOW_TO["moto"].format(detail=f"(PUT {endpoint}/{name} -> {resp.status_code}: {resp.text[:300]})")
        )
    return name


#: moto checks no signature but treats a request without credentials as anonymous, and
#: anonymous deletes are refused: this header names the moto test key and nothing more.
MOTO_AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


def s3_object_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every key under ``prefix`` in ``bucket`` (ListObjectsV2 on moto)."""
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    keys: list[str] = []
    params = {"list-type": "2", "prefix": prefix}
    while True:
        resp = requests.get(f"{endpoint}/{bucket}", params=params, headers=MOTO_AUTH, timeout=60)
        assert resp.status_code == 200, f"listing {endpoint}/{bucket}: {resp.status_code} {resp.text[:300]}"
        root = ET.fromstring(resp.content)
        keys += [el.text or "" for el in root.findall("s3:Contents/s3:Key", ns)]
        token = root.findtext("s3:NextContinuationToken", namespaces=ns)
        if root.findtext("s3:IsTruncated", namespaces=ns) != "true" or not token:
            return sorted(keys)
        params["continuation-token"] = token


def delete_bucket(endpoint: str, bucket: str) -> None:
    """Delete every object of ``bucket`` and the bucket (best effort; frees moto's memory)."""
    try:
        for key in s3_object_keys(endpoint, bucket):
            requests.delete(f"{endpoint}/{bucket}/{urllib.parse.quote(key)}", headers=MOTO_AUTH, timeout=60)
        requests.delete(f"{endpoint}/{bucket}", headers=MOTO_AUTH, timeout=60)
    except (requests.RequestException, AssertionError):
        pass


def backend_env(backend: str) -> tuple[dict[str, str], list]:
    """Env vars selecting ``backend`` and the clean-up callables for what was made."""
    if backend == "local":
        return {}, []
    if backend != "pg_s3":
        raise ValueError(f"unknown backend {backend!r}")
    s3 = s3_endpoint()
    parsed = urllib.parse.urlsplit(s3)
    bucket = create_bucket(s3)
    database = create_database()
    env = {
        "PG_HOST": PG["host"],
        "PG_PORT": PG["port"],
        "PG_USER": PG["user"],
        "PG_PASSWORD": "",
        "PG_DATABASE": database,
        "PG_SSLMODE": "disable",
        # Yatai's convention: host:port without scheme, TLS chosen by S3_SECURE.
        "S3_ENDPOINT": parsed.netloc,
        "S3_ACCESS_KEY": "testing",
        "S3_SECRET_KEY": "testing",
        "S3_REGION": "us-east-1",
        "S3_SECURE": "true" if parsed.scheme == "https" else "false",
        "S3_BUCKET_NAME": bucket,
    }
    return env, [lambda: drop_database(database), lambda: delete_bucket(s3, bucket)]


# -- the server -----------------------------------------------------------------
@dataclass
class YataiServer:
    """A running server, bootstrapped, with an all-scopes API token."""

    backend: str
    strategy: str | None
    process: subprocess.Popen
    endpoint: str
    log_path: Path
    #: ``--data-dir`` (the local backend keeps its archives in ``objects/`` there).
    data_dir: Path
    #: The backend variables handed to the server (PG_*, S3_*; empty for ``local``).
    settings: dict[str, str] = field(default_factory=dict)
    admin: requests.Session = field(default_factory=requests.Session)
    token: str = ""
    cleanups: list = field(default_factory=list)
    #: How it was started (for :meth:`crash_and_restart`).
    argv: list = field(default_factory=list)
    env: dict = field(default_factory=dict)

    def log_tail(self, n: int = 120) -> str:
        """The last ``n`` lines the server wrote (stdout and stderr)."""
        try:
            lines = self.log_path.read_text("utf-8", errors="replace").splitlines()
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(lines[-n:])

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call the API with the admin session cookie."""
        return self.admin.request(method, f"{self.endpoint}{path}", timeout=30, **kwargs)

    def api_with_token(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        """Call the API as a client does, with ``X-YATAI-API-TOKEN``."""
        headers = {"X-YATAI-API-TOKEN": token or self.token, **kw.pop("headers", {})}
        return requests.request(method, f"{self.endpoint}{path}", headers=headers, timeout=30, **kw)

    def create_token(self, name: str, scopes: list[str]) -> str:
        """Create an API token for the admin with ``scopes``; returns the secret."""
        resp = self.api(
            "POST",
            "/api/v1/api_tokens",
            json={"name": name, "description": "e2e", "scopes": scopes, "expired_at": None},
        )
        assert resp.status_code == 200, f"create api token: {resp.status_code} {resp.text}"
        token = resp.json().get("token")
        assert token, f"api token response has no token: {resp.text}"
        return token

    # -- object storage, looked at directly -------------------------------------
    def _s3(self) -> tuple[str, str] | None:
        """``(endpoint URL, bucket)`` on the pg_s3 backend, else ``None``."""
        if "S3_BUCKET_NAME" not in self.settings:
            return None
        scheme = "https" if self.settings.get("S3_SECURE") == "true" else "http"
        return f"{scheme}://{self.settings['S3_ENDPOINT']}", self.settings["S3_BUCKET_NAME"]

    def object_keys(self, prefix: str = "") -> list[str]:
        """Keys of every stored object under ``prefix``: files below ``DATA_DIR/objects``
        (temporary files included) or keys in the S3 bucket."""
        s3 = self._s3()
        if s3:
            return s3_object_keys(*s3, prefix)
        root = self.data_dir / "objects"
        found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else ()
        return sorted(k for k in found if k.startswith(prefix))

    def object_sha256(self, key: str) -> str:
        """SHA-256 (hex) of the stored object ``key``, streamed."""
        digest = hashlib.sha256()
        s3 = self._s3()
        if s3:
            endpoint, bucket = s3
            url = f"{endpoint}/{bucket}/{urllib.parse.quote(key)}"
            with requests.get(url, headers=MOTO_AUTH, stream=True, timeout=60) as resp:
                assert resp.status_code == 200, f"GET object {key}: {resp.status_code}"
                for chunk in resp.iter_content(1 << 20):
                    digest.update(chunk)
        else:
            with open(self.data_dir / "objects" / key, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def crash_and_restart(self) -> None:
        """``kill -9`` the server, then start it again on the same storage and port, as after
        a crash; nothing else is done (no setup: the database already has it)."""
        self.process.kill()
        self.process.wait(timeout=15)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_healthy(self, self.argv)

    def stop(self) -> None:
        """Stop the server and drop what was created for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        _run_all(self.cleanups)


def _run_all(steps) -> None:
    """Run every step, even when one fails; then raise the first failure. (A failing step once
    cut the rest short: the servers after it kept running, holding their databases.)"""
    errors = []
    for step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - raised below, once every step ran
            errors.append(e)
    if errors:
        raise errors[0]


def stop_all(started) -> None:
    """Stop every server of ``started``, each even when stopping another failed."""
    _run_all([server.stop for server in started])


def serve_argv(port: int, data_dir: Path, binary: Path | None = None) -> list[str]:
    """``yatai serve`` on 127.0.0.1:``port`` with ``data_dir`` (the binary checked by :func:`yatai_bin`)."""
    binary = binary or yatai_bin()
    return [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]


def start_server(backend: str, strategy: str | None, workdir: Path, extra_env: dict[str, str] | None = None) -> YataiServer:
    """Start the binary, wait for ``/healthz`` and bootstrap it (api.md recipe); ``extra_env``
    adds settings (e.g. the ``DOCKER_REGISTRY_*`` that enable image builds)."""
    binary = yatai_bin()
    env_extra, cleanups = backend_env(backend)
    port = free_port()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    init_token = secrets.token_urlsafe(24)
    # Nothing inherited may pick the backend or the strategy behind the test's back.
    env = {k: v for k, v in os.environ.items() if k not in _SERVER_KNOBS}
    env.update(env_extra, YATAI_INITIALIZATION_TOKEN=init_token)
    env.update(extra_env or {})
    if strategy:
        env["TRANSMISSION_STRATEGY"] = strategy
    log_path = workdir / "server.log"
    argv = serve_argv(port, data_dir, binary)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = YataiServer(
        backend=backend,
        strategy=strategy,
        process=process,
        endpoint=f"http://127.0.0.1:{port}",
        log_path=log_path,
        data_dir=data_dir,
        settings=env_extra,
        cleanups=cleanups,
        argv=argv,
        env=env,
    )
    try:
        _wait_healthy(server, argv)
        server.token = bootstrap(server, init_token)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: YataiServer, argv: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"yatai exited with {server.process.returncode} before becoming healthy\n"
                f"$ {' '.join(argv)}\n{server.log_tail()}"
            )
        try:
            if requests.get(f"{server.endpoint}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"yatai not healthy after {timeout}s\n$ {' '.join(argv)}\n{server.log_tail()}")


def bootstrap(server: YataiServer, init_token: str) -> str:
    """setup -> login (cookie) -> all-scopes API token; returns the token secret.

    Exactly the three calls of api.md "Bootstrapping without a browser".
    """
    password = secrets.token_urlsafe(16)
    resp = server.api(
        "POST",
        "/api/v1/setup",
        json={
            "token": init_token,
            "name": "admin",
            "email": "admin@example.com",
            "password": password,
            "first_name": "",
            "last_name": "",
        },
    )
    assert resp.status_code == 200, f"setup: {resp.status_code} {resp.text}"
    resp = server.api("POST", "/api/v1/auth/login", json={"name_or_email": "admin", "password": password})
    assert resp.status_code == 200, f"login: {resp.status_code} {resp.text}"
    assert server.admin.cookies, "login set no session cookie"
    return server.create_token("e2e", ALL_SCOPES)

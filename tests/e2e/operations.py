"""Helpers for the operations tests: ``yatai backup`` / ``restore`` / ``import`` run as
commands, installations that exist without a server, servers started on data that is
already there, and a Yatai 1.x installation holding what a bentoml 1.0 client pushed.

An :class:`Installation` is storage only (a data directory, or a fresh PostgreSQL
database + S3 bucket); :func:`serve` starts ``yatai serve`` on one without the
first-run setup, for installations filled by ``restore`` or ``import``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

import servers
from servers import MissingService, YataiServer

#: Variables that choose the storage or the Yatai 1.x source of a ``yatai`` command:
#: never inherited, always set by the tests themselves.
_STORAGE_ENV = {
    "YATAI_CONFIG",
    "YATAI_DATA_DIR",
    "YATAI_DATABASE_URL",
    "YATAI_INITIALIZATION_TOKEN",
    "TRANSMISSION_STRATEGY",
    "YATAI1_DATABASE_URL",
    "YATAI1_S3_SECRET_KEY",
    *(f"PG_{k}" for k in ("HOST", "PORT", "USER", "PASSWORD", "DATABASE", "SSLMODE")),
    *(f"S3_{k}" for k in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "REGION", "SECURE", "BUCKET_NAME")),
}

HOW_TO_SEED = (
    "The Yatai 1.x fixture program is missing at {path}. Build it with "
    "`cargo build -p yatai-testkit --bin seed-yatai1` in {repo} (`cargo build --workspace --all-targets` "
    "and `scripts/test` build it too), or point YATAI_SEED_YATAI1_BIN at it."
)


@dataclass
class Command:
    """Outcome of one ``yatai`` subcommand."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        """The command, its exit code and output, for assertion messages."""
        return (
            f"$ {' '.join(self.argv)}\n(exit {self.returncode}, {self.seconds:.1f} s)\n"
            f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )


@dataclass
class Installation:
    """The storage of one Yatai installation, with or without a server on it."""

    backend: str
    #: ``--data-dir``: the database and archives of ``local``, unused by ``pg_s3``.
    data_dir: Path
    #: PG_* / S3_* of ``pg_s3`` (empty for ``local``).
    settings: dict[str, str] = field(default_factory=dict)
    #: Drops the database and the bucket made for it.
    cleanups: list = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment of a ``yatai`` command on this installation, nothing inherited
        that could choose another storage."""
        env = {k: v for k, v in os.environ.items() if k not in _STORAGE_ENV}
        env.update(self.settings)
        return env

    def yatai(self, *args: str, check: bool = True, timeout: float = 600) -> Command:
        """Run ``yatai ARGS --data-dir DIR`` on this installation; with ``check`` a non-zero
        exit fails the test with the command's output."""
        argv = [str(servers.yatai_bin()), *args, "--data-dir", str(self.data_dir)]
        started = time.monotonic()
        proc = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        done = Command(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
        if check:
            assert done.returncode == 0, f"yatai {args[0]} failed on the {self.backend} installation\n{done.describe()}"
        return done

    def backup(self, output: Path) -> Command:
        """``yatai backup --output OUTPUT``; checks the file is there."""
        done = self.yatai("backup", "--output", str(output))
        assert output.is_file(), f"backup reported success but wrote no {output}\n{done.describe()}"
        return done

    def restore(self, backup_file: Path) -> Command:
        """``yatai restore --input BACKUP_FILE`` (into an empty installation)."""
        return self.yatai("restore", "--input", str(backup_file))

    def drop(self) -> None:
        """Drop the database and the bucket made for it (best effort)."""
        for cleanup in self.cleanups:
            cleanup()
        self.cleanups = []


def new_installation(backend: str, workdir: Path) -> Installation:
    """An empty installation: a fresh data directory, or a fresh database + bucket."""
    env, cleanups = servers.backend_env(backend)
    workdir.mkdir(parents=True, exist_ok=True)
    return Installation(backend, workdir / "data", env, cleanups)


def installation_of(server: YataiServer) -> Installation:
    """The storage a running test server uses (its clean-up stays with the server)."""
    return Installation(server.backend, server.data_dir, dict(server.settings))


def serve(
    installation: Installation, workdir: Path, token: str, env: dict[str, str] | None = None, timeout: float = 60
) -> YataiServer:
    """Start ``yatai serve`` on an installation that already holds data (no setup, no
    bootstrap) and use ``token`` as the server's client token; ``env`` adds variables
    (e.g. ``YATAI_INITIALIZATION_TOKEN``). Stopping the server leaves the installation's
    storage alone (``Installation.drop`` removes it)."""
    port = servers.free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    argv = servers.serve_argv(port, installation.data_dir)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            env={**installation.env(), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = YataiServer(
        backend=installation.backend,
        strategy=None,
        process=process,
        endpoint=f"http://127.0.0.1:{port}",
        log_path=log_path,
        data_dir=installation.data_dir,
        settings=dict(installation.settings),
        token=token,
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"yatai serve exited with {process.returncode} on the {installation.backend} installation\n"
                f"$ {' '.join(argv)}\n{server.log_tail()}"
            )
        try:
            if requests.get(f"{server.endpoint}/readyz", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"yatai serve not ready after {timeout}s\n$ {' '.join(argv)}\n{server.log_tail()}")
        time.sleep(0.2)


# -- backups -------------------------------------------------------------------
def backup_manifest(path: Path) -> dict:
    """The ``manifest.json`` of a backup file (plain or gzip tar)."""
    with tarfile.open(path, "r:*") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None, f"{path} has no manifest.json"
        return json.load(member)


def backup_contents(path: Path) -> dict:
    """What a backup holds, independent of where and when it was taken: per table its row
    count and SHA-256, per object key its size and SHA-256."""
    manifest = backup_manifest(path)
    return {
        "schema_version": manifest["schema_version"],
        "tables": {t["name"]: (t["rows"], t["sha256"]) for t in manifest["tables"]},
        "objects": {o["key"]: (o["size"], o["sha256"]) for o in manifest["objects"]},
    }


# -- Yatai 1.x ---------------------------------------------------------------------
def legacy_archive(src: Path, dest: Path, *, leave_out_models: bool) -> Path:
    """Pack a bento or model directory the way bentoml 1.0.20 packs it for ``push``
    (``yatai_client._do_push_bento`` / ``_do_push_model``): a gzip tar of the directory as
    ``./``, a bento without its ``./models`` (pushed separately). Yatai 1.x stored these
    bytes as they came at ``<kind>s/<org>/<repo>/<version>.tar.gz``."""

    def leave_out(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if leave_out_models and (info.path == "./models" or info.path.startswith("./models/")):
            return None
        return info

    with tarfile.open(dest, mode="w:gz") as tar:
        tar.add(src, arcname="./", filter=leave_out)
    return dest


def _dir_size(path: Path) -> int:
    """bentoml's ``calc_dir_size``: the bytes of every file below ``path``."""
    return sum(f.stat().st_size for f in path.glob("**/*") if f.is_file())


def legacy_bento_manifest(bento_dir: Path) -> dict:
    """The manifest Yatai 1.x kept for a bento pushed by bentoml 1.0.20: what the client sent
    (service, version, ``apis`` left empty, model tags, runners, size) in the shape of the Go
    server's ``modelschemas.BentoManifestSchema``."""
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text("utf-8"))
    return {
        "service": info["service"],
        "bentoml_version": info["bentoml_version"],
        "apis": {},
        "models": [m["tag"] for m in info.get("models") or []],
        "runners": [
            {
                "name": r["name"],
                "runnable_type": r["runnable_type"],
                "models": r.get("models") or [],
                "resource_config": r.get("resource_config"),
            }
            for r in info.get("runners") or []
        ],
        "size_bytes": _dir_size(bento_dir),
    }


def legacy_model_manifest(model_dir: Path) -> dict:
    """The manifest Yatai 1.x kept for a model pushed by bentoml 1.0.20, in the shape of the
    Go server's ``modelschemas.ModelManifestSchema``."""
    info = yaml.safe_load((model_dir / "model.yaml").read_text("utf-8"))
    return {
        "bentoml_version": info["context"]["bentoml_version"],
        "api_version": info["api_version"],
        "module": info["module"],
        "metadata": info.get("metadata") or {},
        "context": info["context"],
        "options": info.get("options") or {},
        "size_bytes": _dir_size(model_dir),
    }


def seed_program() -> Path:
    """The testkit program that builds a Yatai 1.x installation (crates/testkit/src/bin/seed-yatai1.rs)."""
    path = Path(os.environ.get("YATAI_SEED_YATAI1_BIN") or servers.yatai_bin().with_name("seed-yatai1"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingService(HOW_TO_SEED.format(path=path, repo=servers.REPO))
    return path


@dataclass
class LegacyYatai:
    """A Yatai 1.x installation made by ``seed-yatai1``: its database and its bucket."""

    database_url: str
    s3: dict
    token: str
    deleted_token: str
    #: ``(kind, repo, version)`` -> ``{"key", "size", "sha256"}`` of the archive in the bucket.
    objects: dict[tuple[str, str, str], dict]

    def import_args(self) -> list[str]:
        """The ``--from-yatai-*`` flags of ``yatai import`` naming this installation."""
        return [
            "--from-yatai-postgres",
            self.database_url,
            "--from-yatai-s3-endpoint",
            self.s3["endpoint"],
            "--from-yatai-s3-bucket-name",
            self.s3["bucket"],
            "--from-yatai-s3-access-key",
            self.s3["access_key"],
            "--from-yatai-s3-secret-key",
            self.s3["secret_key"],
            "--from-yatai-s3-region",
            self.s3["region"],
            "--from-yatai-s3-secure",
            "false",
        ]

    def drop(self) -> None:
        """Drop the legacy database and bucket (best effort)."""
        servers.drop_database(self.database_url.rsplit("/", 1)[-1])
        servers.delete_bucket(self.s3["endpoint"], self.s3["bucket"])


def seed_legacy_yatai(archives: list[dict], workdir: Path, organization: str | None = None) -> LegacyYatai:
    """Build a Yatai 1.x installation holding ``archives`` (``kind``, ``repo``, ``version``,
    ``path``, ``manifest``) with ``seed-yatai1``, on the test PostgreSQL and S3 servers.
    Its one organization is ``default`` unless ``organization`` names it otherwise."""
    program = seed_program()
    s3 = servers.s3_endpoint()
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "yatai1-spec.json"
    spec.write_text(json.dumps({"archives": archives, "organization": organization}, ensure_ascii=False), "utf-8")
    pg = servers.PG
    env = {
        **os.environ,
        "YATAI_TEST_PG_URL": f"postgres://{pg['user']}@{pg['host']}:{pg['port']}/postgres",
        "YATAI_TEST_S3_ENDPOINT": s3,
        # A panic of the fixture (e.g. no PostgreSQL) is one line, not a backtrace.
        "RUST_BACKTRACE": "0",
    }
    proc = subprocess.run([str(program), str(spec)], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise MissingService(
            f"{program} {spec} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n"
            + servers.HOW_TO["postgres"].format(**pg)
        )
    out = json.loads(proc.stdout)
    return LegacyYatai(
        database_url=out["database_url"],
        s3=out["s3"],
        token=out["token"],
        deleted_token=out["deleted_token"],
        objects={(o["kind"], o["repo"], o["version"]): o for o in out["objects"]},
    )


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

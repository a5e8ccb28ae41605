"""Operations with the real bentoml CLI (issue 6): ``yatai backup`` -> ``yatai restore``
across backend pairs, and ``yatai import`` of a Yatai 1.x installation.

What the clients pushed before a backup, or what a Yatai 1.x installation held, must come
back byte for byte through ``bentoml pull`` from a server started on the restored or
imported installation, with the API tokens the clients already had.

Needs PostgreSQL and an S3 server (``YATAI_TEST_S3_ENDPOINT``) as the ``pg_s3`` tests do,
and for the import ``target/debug/seed-yatai1`` (``cargo build --workspace --all-targets``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

import artifacts
import flows
import operations
import registry
import servers

#: Client generations whose pushes go through a backup and a restore.
ROUND_TRIP_CLIENTS = ("bentoml14", "bentoml10")


@pytest.fixture
def ops(request):
    """Keeps what a test starts and makes: ``ops.server(s)`` is stopped and
    ``ops.installation(i)`` / ``ops.legacy(l)`` dropped after the test; the log of every
    server is attached to the report of a failing test."""

    class Tracker:
        def __init__(self):
            self.servers: list[servers.YataiServer] = []
            self.drops: list = []

        def server(self, server: servers.YataiServer) -> servers.YataiServer:
            self.servers.append(server)
            request.node.yatai_servers = [*getattr(request.node, "yatai_servers", []), server]
            return server

        def installation(self, installation: operations.Installation) -> operations.Installation:
            self.drops.append(installation.drop)
            return installation

        def legacy(self, legacy: operations.LegacyYatai) -> operations.LegacyYatai:
            self.drops.append(legacy.drop)
            return legacy

    tracker = Tracker()
    yield tracker
    for server in reversed(tracker.servers):
        server.stop()
    for drop in reversed(tracker.drops):
        drop()


def start_fresh_server(ops, backend: str, workdir: Path) -> servers.YataiServer:
    """A new bootstrapped server of its own on ``backend`` (not the session's shared one)."""
    try:
        return ops.server(servers.start_server(backend, None, workdir))
    except servers.MissingService as e:
        problem = str(e)
    pytest.fail(f"cannot start yatai on {backend}:\n{problem}", pytrace=False)


def new_installation(ops, backend: str, workdir: Path) -> operations.Installation:
    """An empty installation on ``backend`` (no server), dropped after the test."""
    try:
        return ops.installation(operations.new_installation(backend, workdir))
    except servers.MissingService as e:
        problem = str(e)
    pytest.fail(f"cannot make an empty {backend} installation:\n{problem}", pytrace=False)


def seed_legacy(ops, archives: list[dict], workdir: Path, organization: str | None = None):
    """A Yatai 1.x installation (see ``operations.seed_legacy_yatai``), dropped after the test."""
    try:
        return ops.legacy(operations.seed_legacy_yatai(archives, workdir, organization))
    except servers.MissingService as e:
        problem = str(e)
    pytest.fail(f"cannot build the Yatai 1.x installation:\n{problem}", pytrace=False)


@pytest.mark.parametrize(
    "source_backend,target_backend,backup_name",
    [("local", "pg_s3", "backup.tar.gz"), ("pg_s3", "local", "backup.tar")],
    ids=["local-to-pg_s3", "pg_s3-to-local"],
)
def test_backup_restore_round_trip(source_backend, target_backend, backup_name, make_client, ops, tmp_path):
    """Push a bento and its model with bentoml 1.4 and 1.0.20, back up the running server,
    restore into an empty installation of the other backend pair, start a server there, and
    with the tokens made before the backup pull everything back byte-identical.

    The restored installation is also backed up at once: it must hold exactly the rows and
    archives of the first backup (same row counts and SHA-256 per table and per archive), so
    nothing was lost or changed in moving between SQLite + directory and PostgreSQL + S3.
    """
    source = start_fresh_server(ops, source_backend, tmp_path / "source")
    pushed = {}
    for kind in ROUND_TRIP_CLIENTS:
        client = make_client(kind)
        client.login(source.endpoint, source.token)
        made = flows.make_bento(client, tmp_path / kind)
        client.push_bento(made.bento_tag)
        pushed[kind] = (
            client,
            made,
            {
                "bento": flows.assert_uploaded(source, "bento", made.bento_tag)["archive_sha256"],
                "model": flows.assert_uploaded(source, "model", made.model_tag)["archive_sha256"],
            },
        )

    # Backed up while the server runs, then the source is gone for good (its database and
    # bucket are dropped): whatever is pulled below comes from the restored installation.
    backup = tmp_path / backup_name
    made_backup = operations.installation_of(source).backup(backup)
    assert "backup written to" in made_backup.stdout, made_backup.describe()
    source.stop()

    target = new_installation(ops, target_backend, tmp_path / "target")
    restored = target.restore(backup)
    assert "restored" in restored.stdout, restored.describe()
    again = tmp_path / "after-restore.tar"
    target.backup(again)
    before, after = operations.backup_contents(backup), operations.backup_contents(again)
    assert after == before, (
        f"the {target_backend} installation restored from a {source_backend} backup differs from it:\n"
        f"backup:   {before}\nrestored: {after}"
    )
    assert len(before["objects"]) == 2 * len(ROUND_TRIP_CLIENTS), f"a bento and a model per client: {before}"

    server = ops.server(operations.serve(target, tmp_path / "target-server", source.token))
    assert "Setup is open" not in server.log_tail(), f"a restored installation offers setup again:\n{server.log_tail()}"
    for kind, (client, made, sha256) in pushed.items():
        client.login(server.endpoint, source.token)
        for what, tag in (("bento", made.bento_tag), ("model", made.model_tag)):
            version = flows.assert_uploaded(server, what, tag)
            assert version["archive_sha256"] == sha256[what], (
                f"{kind}: {what} {tag} is served with sha256 {version['archive_sha256']} after the restore, "
                f"{sha256[what]} before"
            )
        flows.pull_bento_and_compare(client, made)


def without_models(bento_snapshot: Path, dest: Path) -> Path:
    """The bento snapshot without its ``models/`` (bentoml 1.0 bentos carry their models
    inside; bentoml 1.4 pulls them into the model store instead)."""

    def top_level_models(directory: str, names: list[str]) -> list[str]:
        return ["models"] if Path(directory) == bento_snapshot else []

    return Path(shutil.copytree(bento_snapshot, dest, ignore=top_level_models))


def test_import_from_yatai1(make_client, ops, tmp_path):
    """A bento and its model made by bentoml 1.0.20 and held by a Yatai 1.x installation (its
    PostgreSQL schema and rows written as the Go server writes them, by crates/testkit's
    ``yatai1`` fixture through ``seed-yatai1``; the archives packed as the 1.0.20 client
    pushes them, at ``bentos|models/default/<repo>/<version>.tar.gz`` in its bucket) are
    imported with ``yatai import`` into a new PostgreSQL + S3 installation.

    A dry run writes nothing; the import copies both archives unchanged; a second import
    changes nothing (a backup before and after it hold the same rows and archives). A server
    on the result then lets bentoml 1.0.20 and 1.4, logged in with the Yatai 1.x API token,
    pull the bento and its model byte-identical to what the 1.0.20 client built, while the
    token deleted in Yatai 1.x stays refused.
    """
    maker = make_client("bentoml10")
    made = flows.make_bento(maker, tmp_path / "made")
    bento_dir, model_dir = maker.bento_dir(made.bento_tag), maker.model_dir(made.model_tag)
    packed = tmp_path / "yatai1-archives"
    packed.mkdir()
    bento_name, bento_version = made.bento_tag.split(":")
    model_name, model_version = made.model_tag.split(":")
    archives = [
        {
            "kind": "model",
            "repo": model_name,
            "version": model_version,
            "path": str(operations.legacy_archive(model_dir, packed / "model.tar.gz", leave_out_models=False)),
            "manifest": operations.legacy_model_manifest(model_dir),
        },
        {
            "kind": "bento",
            "repo": bento_name,
            "version": bento_version,
            "path": str(operations.legacy_archive(bento_dir, packed / "bento.tar.gz", leave_out_models=True)),
            "manifest": operations.legacy_bento_manifest(bento_dir),
        },
    ]
    legacy = seed_legacy(ops, archives, tmp_path / "yatai1")
    target = new_installation(ops, "pg_s3", tmp_path / "target")
    source = legacy.import_args()

    dry = target.yatai("import", "--dry-run", *source)
    assert "would import" in dry.stdout and "versions 2" in dry.stdout, dry.describe()
    bucket = (servers.s3_endpoint(), target.settings["S3_BUCKET_NAME"])
    assert servers.s3_object_keys(*bucket) == [], f"a dry run copies no archive\n{dry.describe()}"

    first = target.yatai("import", *source)
    assert all(s in first.stdout for s in ("imported", "versions 2", "2 archives")), first.describe()
    assert "missing" not in first.stdout, first.describe()
    once = tmp_path / "after-first-import.tar"
    target.backup(once)

    second = target.yatai("import", *source)
    assert "nothing new" in second.stdout and "0 archives" in second.stdout, second.describe()
    twice = tmp_path / "after-second-import.tar"
    target.backup(twice)
    assert operations.backup_contents(twice) == operations.backup_contents(once), (
        f"the second import changed the installation\n{second.describe()}"
    )

    server = ops.server(operations.serve(target, tmp_path / "server", legacy.token))
    for kind, tag, archive in (
        ("bento", made.bento_tag, archives[1]["path"]),
        ("model", made.model_tag, archives[0]["path"]),
    ):
        version = registry.get_version(server, kind, tag)
        assert version.get("upload_status") == "success", f"imported {kind} {tag}: {version}"
        assert version.get("archive_sha256") == operations.sha256_file(Path(archive)), (
            f"imported {kind} {tag} is served with sha256 {version.get('archive_sha256')}, "
            f"the Yatai 1.x archive has {operations.sha256_file(Path(archive))}"
        )

    # The machine that built it, with its Yatai 1.x era client and its old token.
    refused = maker.login(server.endpoint, legacy.deleted_token, check=False)
    assert refused.returncode != 0, f"a token deleted in Yatai 1.x logged in\n{refused.describe()}"
    maker.login(server.endpoint, legacy.token)
    flows.pull_bento_and_compare(maker, made)

    # A new machine with today's client and the same token.
    modern = make_client("bentoml14")
    modern.login(server.endpoint, legacy.token)
    modern.pull_bento(made.bento_tag)
    artifacts.assert_same_tree(
        without_models(made.bento_snapshot, tmp_path / "bento-without-models"),
        modern.bento_dir(made.bento_tag),
        "legacy bento pulled by bentoml 1.4",
    )
    artifacts.assert_same_tree(
        made.model_snapshot, modern.model_dir(made.model_tag), "legacy model pulled by bentoml 1.4"
    )


class SetupStillOpen(Exception):
    """Raised by the check of the known bug below only, so that nothing else (a missing
    service, a failing import) is taken for the expected failure."""


def test_import_closes_first_run_setup(ops, tmp_path):
    """An imported installation has its users and site admins: a server on it must not offer
    the first-run setup.

    The Yatai 1.x organization is named ``acme`` here (not ``default``), as Yatai 1.x admins
    may name it; with ``default`` the setup request happens to fail on the name of the
    organization it would create, which hides the problem.
    """
    legacy = seed_legacy(ops, [], tmp_path / "yatai1", organization="acme")
    target = new_installation(ops, "local", tmp_path / "target")
    target.yatai("import", *legacy.import_args())
    init_token = "e2e-initialization-token-after-import"
    server = ops.server(
        operations.serve(target, tmp_path / "server", legacy.token, env={"YATAI_INITIALIZATION_TOKEN": init_token})
    )
    log = server.log_tail()
    if "Setup is open" in log:
        raise SetupStillOpen(f"the server offers setup on an imported installation:\n{log}")
    resp = requests.post(
        f"{server.endpoint}/api/v1/setup",
        json={
            "token": init_token,
            "name": "newcomer",
            "email": "newcomer@example.com",
            "password": "a-long-password-1",
            "first_name": "",
            "last_name": "",
        },
        timeout=30,
    )
    if resp.status_code != 409:
        raise SetupStillOpen(f"setup on an imported installation answered {resp.status_code}: {resp.text}")

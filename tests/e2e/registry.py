"""The server's side of a bento or model version: its REST resource and its stored archive.

The tests use this to put a version into states no well-behaved client leaves
behind (an upload still running, a failed upload), and to check what the
object storage really holds after pushes: every upload writes a fresh object
under ``<kind>s/<organization uid>/<name>/<version>/``, and only the archive of
the last successful upload may remain there.
"""

from __future__ import annotations

from servers import YataiServer

#: ``build_at`` in the format the clients send (``%Y-%m-%d %H:%M:%S.%f``, UTC).
BUILD_AT = "2024-01-02 03:04:05.000000"

#: Upload states :func:`create_version` can leave a version in.
STATES = ("pending", "uploading", "failed")


def version_path(kind: str, tag: str) -> str:
    """``/api/v1/<kind>_repositories/NAME/<kind>s/VERSION`` for ``kind`` bento or model."""
    name, version = tag.split(":", 1)
    return f"/api/v1/{kind}_repositories/{name}/{kind}s/{version}"


def call(server: YataiServer, method: str, path: str, **kwargs) -> dict:
    """An API call with the admin token that must answer 200; returns the JSON body."""
    resp = server.api_with_token(method, path, **kwargs)
    assert resp.status_code == 200, f"{method} {path}: {resp.status_code} {resp.text}"
    return resp.json()


def get_version(server: YataiServer, kind: str, tag: str) -> dict:
    """GET the version as the clients do; asserts it exists."""
    return call(server, "GET", version_path(kind, tag))


def create_version(server: YataiServer, kind: str, tag: str, manifest: dict, state: str, reason: str = "") -> dict:
    """Register ``tag`` through the REST API and leave its upload in ``state``.

    ``pending``: created only; ``uploading``: ``start_upload`` called and nothing
    sent; ``failed``: then ``finish_upload`` with status failed and ``reason``.
    The repository is created when missing (the server returns an existing one).
    """
    assert state in STATES, f"unknown state {state!r}"
    name, version = tag.split(":", 1)
    call(server, "POST", f"/api/v1/{kind}_repositories", json={"name": name, "description": ""})
    body = {"version": version, "description": "", "manifest": manifest, "build_at": BUILD_AT, "labels": []}
    call(server, "POST", f"/api/v1/{kind}_repositories/{name}/{kind}s", json=body)
    path = version_path(kind, tag)
    if state in ("uploading", "failed"):
        call(server, "PATCH", f"{path}/start_upload")
    if state == "failed":
        call(server, "PATCH", f"{path}/finish_upload", json={"status": "failed", "reason": reason})
    created = get_version(server, kind, tag)
    assert created["upload_status"] == state, f"{kind} {tag} should be {state}: {created}"
    return created


def archive_keys(server: YataiServer, kind: str, tag: str) -> list[str]:
    """Keys of every stored object that belongs to the version ``tag``."""
    name, version = tag.split(":", 1)
    return [key for key in server.object_keys(f"{kind}s/") if f"/{name}/{version}/" in key]


def assert_one_archive(server: YataiServer, kind: str, tag: str, context: str = "") -> dict:
    """The version is uploaded and the storage holds exactly its one archive.

    The one object must hash to the ``archive_sha256`` the server announces, so
    that it is the archive being served and nothing else (no leftover of a
    replaced or concurrent upload, no temporary file). Returns the version.
    ``context`` prefixes the failure messages.
    """
    what = f"{context}: {kind} {tag}" if context else f"{kind} {tag}"
    version = get_version(server, kind, tag)
    assert version.get("upload_status") == "success", f"{what}: {version}"
    keys = archive_keys(server, kind, tag)
    assert len(keys) == 1, (
        f"{what}: expected exactly one archive in storage, found {len(keys)}: {keys}\n"
        f"all objects: {server.object_keys()}"
    )
    sha = server.object_sha256(keys[0])
    assert sha == version.get("archive_sha256"), (
        f"{what}: stored object {keys[0]} has sha256 {sha}, the server announces {version.get('archive_sha256')}"
    )
    return version

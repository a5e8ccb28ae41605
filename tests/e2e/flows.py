"""Push/pull round trips shared by the tests of every client generation.

A round trip: make the awkward model (and a bento using it), snapshot what the
local store holds, push, check the server's view, delete everything locally,
pull it back and compare the pulled files byte by byte with the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import artifacts
from clients import BentoML
from servers import YataiServer


@dataclass
class Made:
    """A model (and optionally a bento) in the local store, with snapshots."""

    model_tag: str
    model_snapshot: Path
    bento_tag: str | None = None
    bento_snapshot: Path | None = None


def names(client: BentoML, suffix: str = "") -> tuple[str, str]:
    """Model and bento names for a client generation (lower case, as bentoml needs)."""
    return f"e2e-model-{client.kind.id}{suffix}", f"e2e-echo-{client.kind.id}{suffix}"


def make_model(client: BentoML, tmp: Path, *, suffix: str = "", random_files: dict[str, int] | None = None) -> Made:
    """Save the awkward model in the client's store and snapshot its directory."""
    payload = artifacts.write_model_payload(tmp / "payload")
    model_name, _ = names(client, suffix)
    tag = client.create_model(model_name, labels=artifacts.AWKWARD_LABELS, payload=payload, random_files=random_files)
    model_dir = client.model_dir(tag)
    artifacts.assert_contains_files(model_dir, artifacts.payload_names(), "saved model")
    return Made(tag, artifacts.snapshot(model_dir, tmp / "original-model"))


def make_bento(client: BentoML, tmp: Path, **model_kwargs) -> Made:
    """Save the model, build a bento that depends on it (offline) and snapshot both."""
    made = make_model(client, tmp, **model_kwargs)
    _, bento_name = names(client, model_kwargs.get("suffix", ""))
    project = client.write_project(tmp / "project", bento_name, made.model_tag, artifacts.AWKWARD_LABELS)
    artifacts.write_bento_data(project)
    made.bento_tag = client.build(project)
    bento_dir = client.bento_dir(made.bento_tag)
    artifacts.assert_contains_files(bento_dir / "src", artifacts.bento_data_names(), "built bento's src")
    made.bento_snapshot = artifacts.snapshot(bento_dir, tmp / "original-bento")
    return made


def remote_version(server: YataiServer, kind: str, tag: str) -> dict:
    """GET the model or bento version as the clients do; asserts it exists."""
    name, version = tag.split(":", 1)
    path = f"/api/v1/{kind}_repositories/{name}/{kind}s/{version}"
    resp = server.api_with_token("GET", path)
    assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
    return resp.json()


def assert_uploaded(server: YataiServer, kind: str, tag: str) -> dict:
    """The server holds ``tag`` fully uploaded, with the non-ASCII labels intact."""
    version = remote_version(server, kind, tag)
    assert version.get("upload_status") == "success", f"{kind} {tag}: {version}"
    labels = {item["key"]: item["value"] for item in version.get("labels") or []}
    for key, value in artifacts.AWKWARD_LABELS.items():
        assert labels.get(key) == value, f"{kind} {tag}: label {key!r} is {labels.get(key)!r}"
    return version


def bento_round_trip(client: BentoML, server: YataiServer, made: Made) -> None:
    """push bento (pushes its model) -> delete both locally -> pull bento -> compare."""
    client.push_bento(made.bento_tag)
    assert_uploaded(server, "bento", made.bento_tag)
    assert_uploaded(server, "model", made.model_tag)

    client.delete_bento(made.bento_tag)
    client.delete_model(made.model_tag)
    client.pull_bento(made.bento_tag)

    artifacts.assert_same_tree(made.bento_snapshot, client.bento_dir(made.bento_tag), "pulled bento")
    artifacts.assert_same_tree(
        made.model_snapshot, client.bento_model_dir(made.bento_tag, made.model_tag), "pulled model"
    )
    assert made.bento_tag.split(":")[1] in client.list_bentos()
    if client.kind.bento_pull_fills_model_store:
        assert made.model_tag.split(":")[1] in client.list_models()


def model_round_trip(client: BentoML, server: YataiServer, made: Made) -> None:
    """models push -> delete locally -> models pull -> compare."""
    client.push_model(made.model_tag)
    assert_uploaded(server, "model", made.model_tag)

    client.delete_model(made.model_tag)
    client.pull_model(made.model_tag)

    artifacts.assert_same_tree(made.model_snapshot, client.model_dir(made.model_tag), "pulled model")
    assert made.model_tag.split(":")[1] in client.list_models()

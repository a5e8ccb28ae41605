"""Push/pull round trips shared by the tests of every client generation.

A round trip: make the awkward model (and a bento using it), snapshot what the
local store holds, push, check the server's view, delete everything locally,
pull it back and compare the pulled files byte by byte with the snapshot.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import artifacts
import registry
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


def make_bento(client: BentoML, tmp: Path, *, bento_random_files: dict[str, int] | None = None, **model_kwargs) -> Made:
    """Save the model, build a bento that depends on it (offline) and snapshot both.

    ``bento_random_files`` (``{name: size}``) adds files of random bytes to the
    bento's ``src/data/``, to make its own archive big.
    """
    made = make_model(client, tmp, **model_kwargs)
    _, bento_name = names(client, model_kwargs.get("suffix", ""))
    project = client.write_project(tmp / "project", bento_name, made.model_tag, artifacts.AWKWARD_LABELS)
    artifacts.write_bento_data(project)
    for rel, size in (bento_random_files or {}).items():
        artifacts.write_random(project / "data" / rel, size)
    made.bento_tag = client.build(project)
    bento_dir = client.bento_dir(made.bento_tag)
    artifacts.assert_contains_files(bento_dir / "src", artifacts.bento_data_names(), "built bento's src")
    made.bento_snapshot = artifacts.snapshot(bento_dir, tmp / "original-bento")
    return made


def assert_uploaded(server: YataiServer, kind: str, tag: str) -> dict:
    """The server holds ``tag`` fully uploaded, with the non-ASCII labels intact."""
    version = registry.get_version(server, kind, tag)
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
    pull_bento_and_compare(client, made)


def pull_bento_and_compare(client: BentoML, made: Made) -> None:
    """Delete the bento and its model locally, pull the bento back and compare with the snapshots."""
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


#: A file of the bento's build context and one of the model, rewritten by :func:`change_local_copy`.
CHANGED_BENTO_FILE = "src/data/données/fichier naïf.txt"
CHANGED_MODEL_FILE = "README en français.md"


def change_local_copy(client: BentoML, made: Made, tmp: Path, label: str, *, model: bool = True) -> Made:
    """Rewrite a file of the bento (and, with ``model``, of its model) in ``client``'s store.

    The new contents name ``label``, so that copies changed under different
    labels differ. A bento that carries its model inside (1.0) gets the model
    change there too. Returns the same tags with fresh snapshots (under ``tmp/label``).
    """
    content = f"changed by {label}\n".encode()
    bento_dir = client.bento_dir(made.bento_tag)
    artifacts.rewrite(bento_dir / CHANGED_BENTO_FILE, content)
    model_copies = [client.model_dir(made.model_tag), client.bento_model_dir(made.bento_tag, made.model_tag)]
    if model:
        for model_dir in dict.fromkeys(d for d in model_copies if d.is_dir()):
            artifacts.rewrite(model_dir / CHANGED_MODEL_FILE, content)
    return Made(
        made.model_tag,
        artifacts.snapshot(client.model_dir(made.model_tag), tmp / label / "model"),
        made.bento_tag,
        artifacts.snapshot(bento_dir, tmp / label / "bento"),
    )


def copy_store(source: BentoML, dest: BentoML, made: Made) -> None:
    """Copy the bento and its model, as stored, from ``source``'s store into ``dest``'s.

    Whole ``bentos/NAME`` and ``models/NAME`` directories are copied, with their
    ``latest`` pointers, as if the same build had been made on another machine.
    """
    for tag, local_dir in ((made.bento_tag, source.bento_dir), (made.model_tag, source.model_dir)):
        src = local_dir(tag).parent
        shutil.copytree(src, dest.home / src.relative_to(source.home))


def model_round_trip(client: BentoML, server: YataiServer, made: Made) -> None:
    """models push -> delete locally -> models pull -> compare."""
    client.push_model(made.model_tag)
    assert_uploaded(server, "model", made.model_tag)

    client.delete_model(made.model_tag)
    client.pull_model(made.model_tag)

    artifacts.assert_same_tree(made.model_snapshot, client.model_dir(made.model_tag), "pulled model")
    assert made.model_tag.split(":")[1] in client.list_models()

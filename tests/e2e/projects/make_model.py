"""Save a model into the local BentoML store; runs inside a client venv.

Invoked by the e2e tests as ``<venv>/bin/python make_model.py SPEC_JSON`` with
``BENTOML_HOME`` already pointing at the test's own store. The spec is a JSON
object:

* ``name``: model name.
* ``style``: ``"modern"`` (bentoml 1.4: a plain model made with
  ``bentoml.models.create``) or ``"legacy"`` (bentoml 1.0 / 1.1: a model the
  ``bentoml.picklable_model`` runner can load, i.e. ``saved_model.pkl`` written
  with cloudpickle, exactly as ``picklable_model.save_model`` would).
* ``labels``: dict of labels (may hold non-ASCII values).
* ``payload``: optional directory whose whole tree is copied into the model.
* ``random_files``: optional ``{relative name: size in bytes}`` of files filled
  with random bytes, written straight into the model directory.

Prints one line ``MODEL_TAG=<name:version>`` and one ``MODEL_PATH=<dir>``.
The script only uses APIs present in bentoml 1.0.20, 1.1.11 and 1.4.x.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import bentoml

CHUNK = 8 * 1024 * 1024


def write_random(path: str, size: int) -> None:
    """Fill ``path`` with ``size`` random bytes, in chunks."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n


def fill(model_dir: str, spec: dict) -> None:
    """Copy the payload tree and write the random files into ``model_dir``."""
    payload = spec.get("payload")
    if payload:
        shutil.copytree(payload, model_dir, dirs_exist_ok=True)
    for rel, size in (spec.get("random_files") or {}).items():
        write_random(os.path.join(model_dir, rel), int(size))


def create_kwargs(spec: dict) -> dict:
    """Keyword arguments for ``bentoml.models.create`` for the given style."""
    kwargs = {
        "labels": spec.get("labels") or {},
        "metadata": {"purpose": "yatai e2e", "note": spec.get("note", "")},
    }
    if spec["style"] == "legacy":
        import cloudpickle

        kwargs.update(
            module="bentoml.picklable_model",
            api_version="v1",
            signatures={"__call__": {"batchable": False}},
            options=None,
            context=bentoml.models.ModelContext(
                framework_name="cloudpickle",
                framework_versions={"cloudpickle": cloudpickle.__version__},
            ),
        )
    return kwargs


def main() -> None:
    spec = json.loads(sys.argv[1])
    with bentoml.models.create(spec["name"], **create_kwargs(spec)) as model:
        if spec["style"] == "legacy":
            import cloudpickle

            with open(model.path_of("saved_model.pkl"), "wb") as f:
                # Any picklable object will do: the tests never serve it.
                cloudpickle.dump({"echo": True}, f)
        fill(model.path, spec)
        tag = str(model.tag)
    stored = bentoml.models.get(tag)
    print(f"MODEL_TAG={stored.tag}")
    print(f"MODEL_PATH={stored.path}")


if __name__ == "__main__":
    main()

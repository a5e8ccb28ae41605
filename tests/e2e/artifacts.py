"""Test data for the e2e suite: awkward model payloads, snapshots, tree comparison.

The payload is deliberately unfriendly to naive archive or path handling:
nested folders, names with spaces and non-ASCII letters, an empty file and a
binary file holding every byte value. Labels carry non-ASCII values too.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from pathlib import Path

#: Labels put on every model and bento; the values are not ASCII on purpose.
AWKWARD_LABELS = {
    "owner": "Zoë Ångström",
    "stage": "prödüction",
    "team": "日本語チーム",
}

#: Files of the model payload, relative path -> content.
_PAYLOAD_FILES: dict[str, bytes] = {
    "weights/layer 1/Ünïcödé wéights ñ.bin": bytes(range(256)) * 64,
    "weights/layer 1/empty file": b"",
    "config/deeply/nested/tree/params.json": json.dumps(
        {"név": "értékű", "emoji": "🍱", "n": 42}, ensure_ascii=False
    ).encode("utf-8"),
    "vocab/日本語 トークン.txt": "トークン\nmot clé\n".encode(),
    "README en français.md": "Modèle de test — ne pas déployer.\n".encode(),
    "empty.txt": b"",
}

#: Extra files of the bento's build context (included with the ``data/`` rule).
_BENTO_DATA_FILES: dict[str, bytes] = {
    "data/données/fichier naïf.txt": "contenu accentué\n".encode(),
    "data/empty": b"",
}


def _write_files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def write_random(path: Path, size: int, chunk: int = 8 << 20) -> Path:
    """Write ``size`` random bytes to ``path`` (in chunks) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for start in range(0, size, chunk):
            f.write(os.urandom(min(chunk, size - start)))
    return path


def write_model_payload(root: Path) -> Path:
    """Write the awkward model payload tree under ``root`` and return it."""
    return _write_files(root, _PAYLOAD_FILES)


def payload_names() -> list[str]:
    """Relative paths of the payload files, to check they reached a model."""
    return sorted(_PAYLOAD_FILES)


def write_bento_data(project: Path) -> Path:
    """Write the awkward data files into a bento build context."""
    return _write_files(project, _BENTO_DATA_FILES)


def bento_data_names() -> list[str]:
    """Relative paths (inside the build context) of the bento data files."""
    return sorted(_BENTO_DATA_FILES)


def list_files(root: Path) -> list[str]:
    """All regular files under ``root`` as sorted POSIX relative paths.

    Directories are not listed: bentoml 1.0.20 recreates only the directories
    that hold files when it extracts a pulled archive.
    """
    out = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def snapshot(src: Path, dest: Path) -> Path:
    """Copy the tree ``src`` to ``dest`` (bytes preserved) and return ``dest``."""
    shutil.copytree(src, dest)
    return dest


def tree_differences(expected: Path, actual: Path) -> str:
    """How ``actual`` differs from ``expected`` (file set and bytes); ``""`` when identical."""
    if not actual.is_dir():
        return f"{actual} does not exist"
    want, got = list_files(expected), list_files(actual)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        return f"file sets differ between {expected} and {actual}\n  missing: {missing}\n  unexpected: {extra}"
    differing = [rel for rel in want if not filecmp.cmp(expected / rel, actual / rel, shallow=False)]
    if differing:
        return f"contents differ between {expected} and {actual}: {differing}"
    return ""


def assert_same_tree(expected: Path, actual: Path, what: str) -> None:
    """Assert both trees hold the same files with byte-identical contents."""
    problem = tree_differences(expected, actual)
    assert not problem, f"{what}: {problem}"


def identical_to(actual: Path, candidates: dict[str, Path]) -> list[str]:
    """Names of the ``candidates`` trees that ``actual`` is byte-identical to."""
    return [name for name, tree in candidates.items() if not tree_differences(tree, actual)]


def rewrite(path: Path, content: bytes) -> None:
    """Replace a file's bytes in place (e.g. in a local store, to make a changed copy)."""
    assert path.is_file(), f"{path} is not a file"
    path.write_bytes(content)


def assert_contains_files(root: Path, names: list[str], what: str) -> None:
    """Guard against a vacuous comparison: ``root`` must hold all ``names``."""
    present = set(list_files(root))
    absent = [n for n in names if n not in present]
    assert not absent, f"{what}: {root} lacks {absent}"

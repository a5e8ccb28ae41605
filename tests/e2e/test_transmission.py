"""bentoml 1.4 under each upload path the server can choose (api.md):

* ``proxy``: TRANSMISSION_STRATEGY=proxy, archives go through ``PUT .../upload``
  and come back through ``GET .../download``;
* ``presigned_single``: TRANSMISSION_STRATEGY=presigned_url and a small model:
  one PUT to a presigned URL;
* ``presigned_multipart``: the same server and a model with ``YATAI_E2E_BIG_MB``
  MiB of random bytes (default 250, must exceed one 100 MiB part), which the
  server must have the client upload in parts.

The path really taken is read from the client's own HTTP trace (see
projects/client_hooks/sitecustomize.py), not from what the server claims.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

import pytest

import flows
from clients import HttpRequest

BIG_MB = int(os.environ.get("YATAI_E2E_BIG_MB", "250"))

CASES = {
    # case: (TRANSMISSION_STRATEGY, random files added to the model, expected model upload path)
    "proxy": ("proxy", {}, "proxy"),
    "presigned_single": ("presigned_url", {}, "presigned_single"),
    "presigned_multipart": (
        "presigned_url",
        {"big/random weights.bin": BIG_MB * 1024 * 1024},
        "presigned_multipart",
    ),
}


def transfer_paths(http: list[HttpRequest], kind: str, tag: str) -> tuple[str, str, int]:
    """How ``tag`` was uploaded and downloaded, from the client's HTTP trace.

    Returns ``(upload path, download path, number of presigned parts)`` where the
    upload path is ``proxy``, ``presigned_single`` or ``presigned_multipart`` and
    the download path is ``proxy`` or ``presigned``.
    """
    name, version = tag.split(":", 1)
    prefix = f"/api/v1/{kind}_repositories/{name}/{kind}s/{version}/"
    actions = [(r.method, urlsplit(r.url).path[len(prefix) :]) for r in http if urlsplit(r.url).path.startswith(prefix)]
    parts = sum(1 for _m, action in actions if action == "presign_multipart_upload_url")
    if ("PUT", "upload") in actions:
        upload = "proxy"
    elif ("PATCH", "start_multipart_upload") in actions:
        upload = "presigned_multipart"
    elif ("PATCH", "presign_upload_url") in actions:
        upload = "presigned_single"
    else:
        upload = f"none seen in {actions}"
    if ("GET", "download") in actions:
        download = "proxy"
    elif ("PATCH", "presign_download_url") in actions:
        download = "presigned"
    else:
        download = f"none seen in {actions}"
    return upload, download, parts


@pytest.mark.parametrize("case", list(CASES))
def test_bento_push_pull_by_strategy(case, backend, server_for, make_client, tmp_path):
    """The full bento flow of the 1.4 client under one transmission strategy."""
    strategy, random_files, model_upload = CASES[case]
    server = server_for(backend, strategy)
    client = make_client("bentoml14")
    client.login(server.endpoint, server.token)
    made = flows.make_bento(client, tmp_path, suffix=f"-{case.replace('_', '-')}", random_files=random_files)
    client.trace_http(tmp_path / "http-trace.txt")

    flows.bento_round_trip(client, server, made)

    http = client.http_requests()
    download = "proxy" if strategy == "proxy" else "presigned"
    # The bento archive is small, but its manifest's size_bytes counts the
    # model too, so a server deciding on that size may choose either path.
    bento_uploads = {"proxy"} if strategy == "proxy" else {"presigned_single", model_upload}
    expected = {
        ("model", made.model_tag): ({model_upload}, download),
        ("bento", made.bento_tag): (bento_uploads, download),
    }
    for (kind, tag), (want_uploads, want_download) in expected.items():
        upload, got_download, parts = transfer_paths(http, kind, tag)
        assert upload in want_uploads, f"{kind} {tag}: uploaded via {upload}, expected {want_uploads}"
        assert got_download == want_download, f"{kind} {tag}: downloaded via {got_download}"
        if kind == "model" and upload == "presigned_multipart":
            assert parts >= 2, f"{kind} {tag}: multipart upload in {parts} part(s)"
    if random_files:  # hundreds of MiB per copy: do not keep them around
        shutil.rmtree(tmp_path, ignore_errors=True)

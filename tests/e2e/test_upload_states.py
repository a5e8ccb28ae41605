"""Pulling a version whose upload never succeeded, with every client generation.

The server refuses such a pull: GET of the version announces no transmission
strategy, so every client asks ``presign_download_url``, which answers 409 with
``<Kind> "NAME:VERSION" cannot be pulled: <why>``. These tests check that the
real CLIs fail on that and show the server's words, on both backend pairs.
The path is the same under every transmission strategy (it is decided before
any transfer), so the server's default strategy is enough.
"""

from __future__ import annotations

import re
import secrets

import flows
import registry

#: The reason given to ``finish_upload`` for the failed versions (ASCII, so the
#: JSON body that 1.0 / 1.1 print raw shows it unescaped).
FAILURE_REASON = "connection reset by the e2e test"

#: What the refusal must say, by upload state (after "cannot be pulled: ").
WHY = {
    "pending": "it has not been uploaded yet",
    "uploading": "it is still being uploaded",
    "failed": f"its upload failed: {FAILURE_REASON}",
}


def test_pull_of_unfinished_upload_is_refused(client, server, tmp_path):
    """``bentoml pull`` and ``bentoml models pull`` of a pending, uploading and failed version.

    The versions are made through the REST API with the admin token, with the
    manifests of a bento and model this client really pushed (so that each
    generation can read them). Each pull must exit non-zero, print the
    server's refusal with the reason, and leave nothing in the local store.
    """
    client.login(server.endpoint, server.token)
    made = flows.make_bento(client, tmp_path, suffix="-states")
    client.push_bento(made.bento_tag)
    cases = [
        ("bento", made.bento_tag, client.pull_bento, client.bento_dir),
        ("model", made.model_tag, client.pull_model, client.model_dir),
    ]
    for kind, pushed_tag, pull, local_dir in cases:
        manifest = registry.get_version(server, kind, pushed_tag)["manifest"]
        name = pushed_tag.split(":", 1)[0]
        for state, why in WHY.items():
            tag = f"{name}:{state}{secrets.token_hex(4)}"
            registry.create_version(server, kind, tag, manifest, state, reason=FAILURE_REASON)

            result = pull(tag, check=False)

            assert result.returncode != 0, f"{kind} {state}: the pull succeeded\n{result.describe()}"
            expected = f'{kind.title()} \\\\?"{re.escape(tag)}\\\\?" cannot be pulled: {re.escape(why)}'
            assert re.search(expected, result.output), (
                f"{kind} {state}: the server's refusal /{expected}/ is not shown\n{result.describe()}"
            )
            assert not local_dir(tag).exists(), f"{kind} {state}: the refused pull left {local_dir(tag)}"

"""Pushing a version the server already holds, without and with ``--force``."""

from __future__ import annotations

import re

import flows
import registry

#: What each generation prints when it skips an existing bento (it exits 0):
#: 1.4 ``Push skipped: Bento "T" already exists in remote Bento store``,
#: 1.1 ``Push failed: Bento "T" already exists in remote Bento store``,
#: 1.0 ``Push failed: Bento "T" already exists in Yatai``; and before that, for
#: its model, ``Model "T" already exists in (remote model store|Yatai), skipping``.
SKIPPED = 'Bento "{bento}" already exists in (remote Bento store|Yatai)'
MODEL_SKIPPED = 'Model "{model}" already exists in (remote model store|Yatai), skipping'


def archives(server, made: flows.Made) -> dict[str, dict]:
    """``{kind: version}`` of the pushed bento and model, each checked to have one stored archive."""
    return {
        "bento": registry.assert_one_archive(server, "bento", made.bento_tag),
        "model": registry.assert_one_archive(server, "model", made.model_tag),
    }


def test_push_again_skips_then_force_replaces(client, server, tmp_path):
    """Every client generation, both backend pairs.

    1. Push a bento (and its model).
    2. Push it again without ``--force``: the client says "already exists" for
       both, exits 0, and the server's archives are untouched (same
       ``archive_sha256`` and size, still exactly one stored object each).
    3. Rewrite a file of the bento and one of the model in the local store and
       ``push --force`` (1.0, 1.1 and 1.4 all have the flag): both archives are
       replaced (new ``archive_sha256``), the replaced objects are gone from
       storage, and a pull brings back the changed bytes.
    """
    client.login(server.endpoint, server.token)
    made = flows.make_bento(client, tmp_path, suffix="-repush")
    client.push_bento(made.bento_tag)
    first = archives(server, made)

    result = client.push_bento(made.bento_tag)

    for message in (
        SKIPPED.format(bento=re.escape(made.bento_tag)),
        MODEL_SKIPPED.format(model=re.escape(made.model_tag)),
    ):
        assert re.search(message, result.output), f"no /{message}/ in the output\n{result.describe()}"
    again = archives(server, made)
    for kind in first:
        for field in ("archive_sha256", "archive_size", "upload_finished_at"):
            assert again[kind][field] == first[kind][field], (
                f"{kind}: {field} changed by a push that was skipped: {first[kind][field]} -> {again[kind][field]}"
            )

    changed = flows.change_local_copy(client, made, tmp_path, "forced push")
    result = client.push_bento(made.bento_tag, force=True)

    assert not re.search("already exists", result.output), f"--force did not push\n{result.describe()}"
    forced = archives(server, made)
    for kind in first:
        assert forced[kind]["archive_sha256"] != first[kind]["archive_sha256"], (
            f"{kind}: push --force of changed files kept the archive {first[kind]['archive_sha256']}"
        )
    flows.pull_bento_and_compare(client, changed)

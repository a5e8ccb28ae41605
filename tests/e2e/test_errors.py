"""What each client generation shows when the server says no."""

from __future__ import annotations

import re
import secrets

import flows


def test_login_with_wrong_token_fails(client, server):
    """A token the server never issued: login exits non-zero, says 401, stores nothing."""
    bogus = secrets.token_hex(20)
    result = client.login(server.endpoint, bogus, check=False)
    assert result.returncode != 0, result.describe()
    # 1.4: "Error validating token: HTTP 401: Bad credentials" (its clear message
    # exists for 401 only); 1.1 / 1.0: "request failed with status code 401: BODY".
    assert re.search(r"(HTTP|status code) 401\b", result.output), result.describe()
    config = client.config_file
    assert not config.exists() or bogus not in config.read_text("utf-8"), "the bad token was saved"


def test_push_without_api_scope_is_refused(client, server, tmp_path):
    """A token with only ``read_organization`` can log in but cannot push (403)."""
    token = server.create_token(f"read-only-{secrets.token_hex(4)}", ["read_organization"])
    client.login(server.endpoint, token)
    made = flows.make_model(client, tmp_path, suffix="-readonly")

    result = client.push_model(made.model_tag, check=False)

    assert result.returncode != 0, result.describe()
    # Every generation shows the refusal as "request failed with status code 403: BODY".
    assert re.search(r"status code 403\b", result.output), result.describe()
    name, version = made.model_tag.split(":")
    resp = server.api_with_token("GET", f"/api/v1/model_repositories/{name}/models/{version}")
    assert resp.status_code != 200, f"the refused push left a model version behind: {resp.text}"


def test_pull_of_missing_version_says_not_found(client, server, tmp_path):
    """Pulling a version the server does not have gives the client's "not found" message.

    Covers a missing version in an existing repository and a missing repository,
    for bentos and for models. ``bentoml pull`` GETs the version first and says
    ``Bento "TAG" not found``; ``bentoml models pull`` starts with PATCH
    ``presign_download_url`` and every client generation shows that error raw
    (``request failed with status code N: BODY``), so there the server's own
    error text must say "not found".
    """
    client.login(server.endpoint, server.token)
    made = flows.make_bento(client, tmp_path, suffix="-missing")
    client.push_bento(made.bento_tag)
    model_name, bento_name = flows.names(client, "-missing")
    absent = "nosuchversion0001"
    bento_message = 'Bento "{tag}" not found'
    model_message = 'Model "{tag}" not found|request failed with status code 40[04]: .*not found'
    cases = [
        (client.pull_bento, f"{bento_name}:{absent}", bento_message),
        (client.pull_bento, f"e2e-no-such-bento-{secrets.token_hex(3)}:{absent}", bento_message),
        (client.pull_model, f"{model_name}:{absent}", model_message),
        (client.pull_model, f"e2e-no-such-model-{secrets.token_hex(3)}:{absent}", model_message),
    ]
    for pull, tag, message in cases:
        result = pull(tag, check=False)
        assert result.returncode != 0, result.describe()
        pattern = message.replace("{tag}", re.escape(tag))
        assert re.search(pattern, result.output, re.IGNORECASE), result.describe()

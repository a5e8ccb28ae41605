"""Push and pull with every client generation (1.4, 1.1, 1.0) on both backend pairs."""

from __future__ import annotations

import flows


def test_bento_push_pull(client, server, tmp_path):
    """A bento and the model it depends on survive push + pull byte for byte."""
    client.login(server.endpoint, server.token)
    made = flows.make_bento(client, tmp_path)
    flows.bento_round_trip(client, server, made)


def test_model_push_pull(client, server, tmp_path):
    """``bentoml models push`` / ``pull`` alone keeps every file byte for byte."""
    client.login(server.endpoint, server.token)
    made = flows.make_model(client, tmp_path)
    flows.model_round_trip(client, server, made)

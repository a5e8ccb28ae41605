"""Two machines pushing the same bento tag at the same time.

Machine A builds the bento; machine B (another ``BENTOML_HOME``) gets a copy of
A's store, as if it had made the same build. Each then rewrites one file of the
bento's source differently, and both ``push --force`` at once. Whatever the
interleaving, the server must end with one version whose upload succeeded,
exactly one stored archive, and an archive that is entirely A's or entirely
B's: a pull gives files byte-identical to exactly one of the two. A machine
whose push overlapped the other's is told that it lost, with the server's
message, instead of uploading for nothing.

Two rounds per test: the first races on creating the version (neither exists
yet), the second on replacing the archive of an existing version (``--force``
makes both send their manifest and try to upload). The bento carries
``RACE_MB`` MiB of random bytes so that a push takes long enough for the
other to arrive while it runs.
"""

from __future__ import annotations

import os
from urllib.parse import unquote

import pytest

import artifacts
import flows
import registry

RACE_MB = int(os.environ.get("YATAI_E2E_RACE_MB", "24"))
#: Each machine sends at most this fast, so that its bento upload lasts about
#: 1.5 s: far longer than the start-up jitter between the two CLI processes.
PACE = 16 << 20

#: Server messages a losing push may end with (any other failure is a bug):
#: losing the race to create the version (409 ``model version "V" exists already``),
#: arriving while the other push runs (409 ``... this push lost``), or finishing
#: second (409 ``... finished first``).
LOSING_PUSH = ("exists already", "this push lost", "finished first")


def upload_window(client, made: flows.Made) -> tuple[float, float] | None:
    """When ``client`` sent the bento's archive: first start to last end of its PUTs."""
    name, version = made.bento_tag.split(":", 1)
    puts = [
        r for r in client.http_requests() if r.method == "PUT" and name in unquote(r.url) and version in unquote(r.url)
    ]
    return (min(r.start for r in puts), max(r.end for r in puts)) if puts else None


def server_view(server, made: flows.Made) -> str:
    """Upload status and stored objects of the bento and model, for failure messages."""
    lines = []
    for kind, tag in (("bento", made.bento_tag), ("model", made.model_tag)):
        resp = server.api_with_token("GET", registry.version_path(kind, tag))
        status = resp.json().get("upload_status") if resp.status_code == 200 else f"GET -> {resp.status_code}"
        lines.append(f"{kind} {tag}: upload_status {status}, stored objects {registry.archive_keys(server, kind, tag)}")
    return "\n".join(lines)


def race(server, machines: dict, made: flows.Made, tmp_path, round_name: str) -> dict[str, flows.Made]:
    """Change each machine's copy differently, push all at once; returns the snapshots by machine.

    Every push must succeed, or fail with one of the server's clear conflict
    messages; at least one must succeed. Both win only when one push finished
    before the other began uploading (a re-push that replaces it).
    """
    changed = {
        name: flows.change_local_copy(client, made, tmp_path / round_name, f"machine {name}, {round_name}", model=False)
        for name, client in machines.items()
    }
    for name, client in machines.items():
        client.trace_http(tmp_path / f"{round_name} {name}.trace")
        client.pace_uploads(PACE)
    running = {
        name: client.start("push", *client.push_flags(True), made.bento_tag) for name, client in machines.items()
    }
    results = {name: run.wait(check=False) for name, run in running.items()}

    report = "\n".join(
        [f"== server\n{server_view(server, made)}", *(f"== machine {n}\n{r.describe()}" for n, r in results.items())]
    )
    winners = [name for name, r in results.items() if r.returncode == 0]
    assert winners, f"{round_name}: every push failed\n{report}"
    for name, r in results.items():
        if r.returncode != 0:
            assert any(m in r.output for m in LOSING_PUSH), f"{round_name}: machine {name} failed unclearly\n{report}"
    windows = {name: upload_window(client, made) for name, client in machines.items()}
    if len(winners) == len(machines):
        # Both won: only if one push ended before the other began to upload.
        (a0, a1), (b0, b1) = [w or (0.0, 0.0) for w in windows.values()]
        assert a1 <= b0 or b1 <= a0, f"{round_name}: two overlapping uploads both won: {windows}\n{report}"
    return changed


def assert_one_of(server, puller, made: flows.Made, candidates: dict[str, flows.Made], round_name: str) -> None:
    """One successful version, one archive, and a pull identical to exactly one candidate."""
    registry.assert_one_archive(server, "bento", made.bento_tag, round_name)
    registry.assert_one_archive(server, "model", made.model_tag, round_name)
    if puller.bento_dir(made.bento_tag).exists():
        puller.delete_bento(made.bento_tag)
    puller.pull_bento(made.bento_tag)
    pulled = puller.bento_dir(made.bento_tag)
    matches = artifacts.identical_to(pulled, {name: m.bento_snapshot for name, m in candidates.items()})
    differences = {name: artifacts.tree_differences(m.bento_snapshot, pulled) for name, m in candidates.items()}
    assert len(matches) == 1, f"{round_name}: the pulled bento matches {matches or 'no machine'}: {differences}"
    artifacts.assert_same_tree(
        made.model_snapshot, puller.bento_model_dir(made.bento_tag, made.model_tag), "pulled model"
    )


def run_races(server, make_client, kind_id: str, tmp_path) -> None:
    """Both rounds for one client generation against ``server``."""
    machines = {name: make_client(kind_id, f"machine-{name}") for name in ("A", "B")}
    puller = make_client(kind_id, "puller")
    for client in (*machines.values(), puller):
        client.login(server.endpoint, server.token)
    made = flows.make_bento(
        machines["A"], tmp_path / "build", suffix="-race", bento_random_files={"random.bin": RACE_MB << 20}
    )
    flows.copy_store(machines["A"], machines["B"], made)

    for round_name in ("new version", "existing version"):
        changed = race(server, machines, made, tmp_path, round_name)
        assert_one_of(server, puller, made, changed, round_name)


def test_concurrent_push_of_one_tag(client, server, make_client, tmp_path):
    """Every generation, both backend pairs, the server's default strategy (proxy uploads)."""
    run_races(server, make_client, client.kind.id, tmp_path)


@pytest.mark.parametrize("strategy", ["presigned_url"])
def test_concurrent_presigned_push_of_one_tag(strategy, backend, server_for, make_client, tmp_path):
    """bentoml 1.4 with presigned uploads (1.0 / 1.1 get proxy from such a server anyway).

    The archives go straight to storage through URLs the server handed out,
    and each client then calls ``finish_upload``: the server must still keep
    each upload's own object apart and end with one.
    """
    run_races(server_for(backend, strategy), make_client, "bentoml14", tmp_path)

"""Fixtures of the reliability suite: servers that tests may break, and shared ones they may not.

* ``shared(backend, strategy=None)``: one server per (backend, strategy) for the whole session,
  for tests that leave it healthy (bad input, ranges).
* ``fresh(backend, strategy=None)``: a server of the test's own, stopped and dropped at its
  end, for tests that kill it, flood it, measure its memory, or fuzz it (the fuzzer may delete
  its own token).

Environment as for tests/e2e (see its conftest): ``YATAI_BIN``, ``YATAI_TEST_S3_ENDPOINT``,
PostgreSQL on 127.0.0.1:5432. ``scripts/test --reliability-only`` provides all of it.
A missing service fails the test with a message saying how to start it; nothing is skipped.
"""

from __future__ import annotations

import importlib.util

import pytest

import harness  # (puts tests/e2e on sys.path)
import servers

# tests/e2e's conftest, loaded under another name: its ``backend`` fixture and its hook that
# attaches the log of every server a failed test used are the same here.
_spec = importlib.util.spec_from_file_location("e2e_conftest", harness.E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
backend = _e2e.backend
pytest_runtest_makereport = _e2e.pytest_runtest_makereport


def _start(backend: str, strategy: str | None, workdir) -> servers.YataiServer:
    try:
        return servers.start_server(backend, strategy, workdir)
    except (servers.MissingService, RuntimeError, AssertionError) as e:
        pytest.fail(f"cannot start yatai ({backend}, {strategy or 'default strategy'}):\n{e}", pytrace=False)


@pytest.fixture(scope="session")
def _shared_servers(tmp_path_factory):
    started: dict[tuple, servers.YataiServer] = {}
    yield started, tmp_path_factory
    servers.stop_all(started.values())


@pytest.fixture
def shared(_shared_servers, request):
    """Factory ``shared(backend, strategy=None)``: the session's server for that pair."""
    started, factory = _shared_servers

    def get(backend: str, strategy: str | None = None) -> servers.YataiServer:
        key = (backend, strategy)
        if key not in started:
            started[key] = _start(backend, strategy, factory.mktemp(f"shared-{backend}-{strategy or 'default'}"))
        server = started[key]
        assert server.process.poll() is None, (
            f"the shared {backend} server died (exit {server.process.returncode}):\n{server.log_tail()}"
        )
        request.node.yatai_servers = [*getattr(request.node, "yatai_servers", []), server]
        return server

    return get


@pytest.fixture
def fresh(tmp_path, request):
    """Factory ``fresh(backend, strategy=None)``: a server of this test's own."""
    made: list[servers.YataiServer] = []

    def make(backend: str, strategy: str | None = None) -> servers.YataiServer:
        server = _start(backend, strategy, tmp_path / f"server-{len(made)}")
        made.append(server)
        request.node.yatai_servers = [*getattr(request.node, "yatai_servers", []), server]
        return server

    yield make
    servers.stop_all(made)

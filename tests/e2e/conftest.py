"""Fixtures for the end-to-end tests: the real bentoml CLIs against a real server.

Environment:

* ``YATAI_BIN``: the server binary (default ``target/debug/yatai``).
* ``BENTOML14`` / ``BENTOML11`` / ``BENTOML10``: client venvs, as printed by
  ``scripts/venvs.sh`` (the script is run when they are unset).
* ``YATAI_TEST_S3_ENDPOINT``: a moto server URL, for the ``pg_s3`` backend;
  PostgreSQL is expected on 127.0.0.1:5432 (user postgres, trust auth).
* ``YATAI_E2E_BIG_MB``: size of the model that forces a multipart upload.

Servers are started lazily, one per (backend, transmission strategy), and
shared by the session; every test gets its own ``BENTOML_HOME``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import clients
import servers


@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    """Venv path per variable name (BENTOML14, ...)."""
    try:
        return clients.find_venvs(servers.REPO)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def yatai(tmp_path_factory):
    """Factory ``yatai(backend, strategy=None)`` returning a running, bootstrapped server.

    One server per (backend, strategy) for the whole session; a start-up
    failure is remembered so that later tests fail fast with the same message.
    """
    started: dict[tuple, servers.YataiServer] = {}
    failed: dict[tuple, str] = {}

    def get(backend: str, strategy: str | None = None) -> servers.YataiServer:
        key = (backend, strategy)
        if key not in started and key not in failed:
            workdir = tmp_path_factory.mktemp(f"yatai-{backend}-{strategy or 'default'}")
            try:
                started[key] = servers.start_server(backend, strategy, workdir)
            except (servers.MissingService, RuntimeError, AssertionError) as e:
                failed[key] = f"cannot start yatai ({backend}, {strategy or 'default strategy'}):\n{e}"
        if key in failed:
            pytest.fail(failed[key], pytrace=False)
        return started[key]

    yield get
    servers.stop_all(started.values())


@pytest.fixture
def server_for(yatai, request):
    """Like ``yatai`` but records the server so a failing test shows its log."""

    def get(backend: str, strategy: str | None = None) -> servers.YataiServer:
        server = yatai(backend, strategy)
        request.node.yatai_servers = [*getattr(request.node, "yatai_servers", []), server]
        return server

    return get


@pytest.fixture(params=servers.BACKENDS)
def backend(request) -> str:
    """Storage backend pair: ``local`` (server defaults) or ``pg_s3``."""
    return request.param


@pytest.fixture
def server(server_for, backend) -> servers.YataiServer:
    """A server on ``backend`` with the server's default transmission strategy."""
    return server_for(backend)


@pytest.fixture(scope="session")
def checked_kinds() -> set[str]:
    """Client ids whose venv reported the expected version (checked lazily)."""
    return set()


@pytest.fixture
def make_client(venvs, checked_kinds, tmp_path):
    """Factory ``make_client(kind_id, name=kind_id)``: a client with its own BENTOML_HOME.

    Clients made with the same ``name`` in one test share their store; give
    another ``name`` for a second, independent machine of the same generation.
    """

    def make(kind_id: str, name: str | None = None) -> clients.BentoML:
        kind = clients.CLIENT_KINDS[kind_id]
        root = tmp_path / (name or kind_id)
        client = clients.BentoML(kind, venvs[kind.venv_var], home=root / "home", workdir=root / "work")
        if kind_id not in checked_kinds:
            version = client.version()
            assert version.startswith(kind.version_prefix), (
                f"{kind.venv_var}={client.venv} has bentoml {version}, expected {kind.version_prefix}*"
            )
            checked_kinds.add(kind_id)
        return client

    return make


@pytest.fixture(params=list(clients.CLIENT_KINDS))
def client(request, make_client) -> clients.BentoML:
    """Each client generation in turn: bentoml14, bentoml11, bentoml10."""
    return make_client(request.param)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log tail of every server a failed test used to its report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in getattr(item, "yatai_servers", []):
            title = f"yatai server log ({server.backend}, {server.strategy or 'default'})"
            report.sections.append((title, server.log_tail()))

"""Deployments end to end on the local cluster, with the real clients.

bentoml 1.4 (the v2 API: ``bentoml deployment create|update|get|terminate|delete``) and
bentoml 1.1.11 (the v1 API: ``bentoml deployment create|update -f``, ``get``, ``terminate``,
``delete``) each deploy a bento they pushed. The server runs it with its local runtime (a real
``bentoml serve`` in a Python environment it prepared), and the test:

1. waits until the server says ``running``;
2. calls the bento's API through the URL the server reports;
3. updates an env, which makes a new revision and restarts the service with the new value;
4. rolls back (the CLIs have no rollback: the API does it);
5. terminates, after which the URL stops answering;
6. deletes.

Also: a bento that is not uploaded, a bad name and a missing scope each get a clear error and
nothing is created; a killed bento process comes back (``unhealthy`` in between); a killed and
restarted ``yatai serve`` serves the deployment again without anyone acting.

The Python environments are cached outside the clone (``YATAI_E2E_DEPLOYMENT_ENVS``, default
``~/.cache/yatai/local-envs``): the first run installs bentoml from PyPI, later runs reuse it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests

import servers

ENVS_DIR = Path(os.environ.get("YATAI_E2E_DEPLOYMENT_ENVS", Path.home() / ".cache" / "yatai" / "local-envs"))
READY_TIMEOUT = float(os.environ.get("YATAI_E2E_DEPLOY_TIMEOUT", "900"))

SERVICE_14 = '''
import os
import bentoml


@bentoml.service(name="greeter")
class Greeter:
    @bentoml.api
    def greet(self, text: str) -> str:
        return os.environ.get("GREETING", "") + ":" + text
'''

SERVICE_11 = '''
import os
import bentoml
from bentoml.io import Text

svc = bentoml.Service("greeter11")


@svc.api(input=Text(), output=Text())
def greet(text: str) -> str:
    return os.environ.get("GREETING", "") + ":" + text
'''


@pytest.fixture(scope="module")
def deploy_server(tmp_path_factory):
    """A server of its own (the tests kill and restart it), local backend, envs cached."""
    ENVS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = tmp_path_factory.mktemp("yatai-deployments")
    try:
        server = servers.start_server("local", None, workdir, {"YATAI_DEPLOYMENTS_ENVS_DIR": str(ENVS_DIR)})
    except (servers.MissingService, RuntimeError, AssertionError) as e:
        pytest.fail(f"cannot start yatai: {e}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def dserver(deploy_server, request):
    request.node.yatai_servers = [deploy_server]
    return deploy_server


def build_and_push(client, server, source: str, service: str, name: str) -> str:
    client.login(server.endpoint, server.token)
    project = client.workdir / name
    project.mkdir(parents=True, exist_ok=True)
    (project / "service.py").write_text(source, "utf-8")
    bentofile = {"service": service, "include": ["*.py"], "python": {"lock_packages": False}}
    (project / "bentofile.yaml").write_text(json.dumps(bentofile), "utf-8")
    tag = client.build(project)
    client.push_bento(tag)
    return tag


def v1_path(name: str) -> str:
    return f"/api/v1/clusters/default/namespaces/default/deployments/{name}"


def deployment(server, name: str) -> dict:
    resp = server.api_with_token("GET", v1_path(name))
    assert resp.status_code == 200, f"GET deployment {name}: {resp.status_code} {resp.text}"
    return resp.json()


def wait_status(server, name: str, want: str, timeout: float = READY_TIMEOUT, seen: list | None = None) -> dict:
    """Polls until the deployment has status ``want``; records every status seen."""
    deadline = time.monotonic() + timeout
    d = {}
    while time.monotonic() < deadline:
        d = deployment(server, name)
        if seen is not None and (not seen or seen[-1] != d["status"]):
            seen.append(d["status"])
        if d["status"] == want:
            return d
        if d["status"] == "failed":
            pytest.fail(f"deployment {name} failed: {d['status_reason']}\n{logs(server, name)}", pytrace=False)
        time.sleep(0.5)
    pytest.fail(f"deployment {name} is {d.get('status')} ({d.get('status_reason')}), not {want}, after {timeout}s\n{logs(server, name)}", pytrace=False)


def logs(server, name: str) -> str:
    resp = server.api_with_token("GET", f"{v1_path(name)}/logs?lines=60")
    return resp.text if resp.status_code != 200 else "\n".join(resp.json()["lines"])


def call(url: str, generation: str, text: str) -> str:
    if generation == "1.4":
        resp = requests.post(f"{url.rstrip('/')}/greet", json={"text": text}, timeout=30)
    else:
        resp = requests.post(f"{url.rstrip('/')}/greet", data=text, headers={"Content-Type": "text/plain"}, timeout=30)
    assert resp.status_code == 200, f"{url}/greet: {resp.status_code} {resp.text}"
    return resp.text.strip('"')


def wait_answer(url: str, generation: str, want: str, timeout: float = 300) -> None:
    """Polls the deployment's URL until it answers ``want`` (a rollout replaces the process)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = call(url, generation, "x")
            if last == want:
                return
        except (requests.RequestException, AssertionError) as e:
            last = str(e)
        time.sleep(0.5)
    pytest.fail(f"{url} answered {last!r}, not {want!r}, after {timeout}s", pytrace=False)


def wait_gone(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.post(f"{url.rstrip('/')}/greet", json={"text": "x"}, timeout=5)
        except requests.ConnectionError:
            return
        time.sleep(0.5)
    pytest.fail(f"{url} still answers {timeout}s after terminate", pytrace=False)


def revisions(server, name: str) -> list[dict]:
    resp = server.api_with_token("GET", f"{v1_path(name)}/revisions")
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def rollback(server, name: str, revision_uid: str) -> None:
    resp = server.api_with_token("POST", f"{v1_path(name)}/rollback", json={"revision_uid": revision_uid})
    assert resp.status_code == 200, f"rollback: {resp.status_code} {resp.text}"


def test_bentoml14_deploys_updates_rolls_back_terminates_deletes(dserver, make_client):
    c = make_client("bentoml14")
    tag = build_and_push(c, dserver, SERVICE_14, "service:Greeter", "greeter14")
    name = f"greet14-{uuid.uuid4().hex[:6]}"

    created = c.run("deployment", "create", tag, "--name", name, "--env", "GREETING=one",
                    "--scaling-min", "1", "--scaling-max", "1", "--timeout", str(int(READY_TIMEOUT)))
    assert "is ready" in created.output, created.describe()
    d = wait_status(dserver, name, "running", timeout=30)
    got = json.loads(c.run("deployment", "get", name, "-o", "json").stdout)
    assert got["status"]["status"] == "running", got
    url = got["endpoint_urls"][0]
    assert url == d["urls"][0]
    assert call(url, "1.4", "x") == "one:x"

    c.run("deployment", "update", name, "--env", "GREETING=two")
    wait_answer(url, "1.4", "two:x")
    wait_status(dserver, name, "running", timeout=120)
    revs = revisions(dserver, name)
    assert len(revs) == 2 and revs[0]["status"] == "active", revs

    rollback(dserver, name, revs[1]["uid"])
    wait_answer(url, "1.4", "one:x")
    assert len(revisions(dserver, name)) == 3

    c.run("deployment", "terminate", name, "--wait")
    wait_gone(url)
    assert deployment(dserver, name)["status"] == "terminated"
    c.run("deployment", "delete", name)
    assert dserver.api_with_token("GET", v1_path(name)).status_code == 404


def test_bentoml11_deploys_updates_rolls_back_terminates_deletes(dserver, make_client, tmp_path):
    c = make_client("bentoml11")
    tag = build_and_push(c, dserver, SERVICE_11, "service:svc", "greeter11")
    repo, version = tag.split(":")
    name = f"greet11-{uuid.uuid4().hex[:6]}"

    def body(greeting: str) -> dict:
        # The shape bentoml 1.1's `create -f` / `update -f` read (FullDeploymentSchema).
        return {"name": name, "cluster_name": "default", "kube_namespace": "default", "mode": "deployment",
                "targets": [{"type": "stable", "bento_repository": repo, "bento": version,
                             "config": {"hpa_conf": {"min_replicas": 1, "max_replicas": 1},
                                        "envs": [{"key": "GREETING", "value": greeting}]}}]}

    (tmp_path / "create.json").write_text(json.dumps(body("one")))
    out = c.run("deployment", "create", "-f", str(tmp_path / "create.json"), "-o", "json")
    assert json.loads(out.stdout)["name"] == name, out.describe()
    d = wait_status(dserver, name, "running")
    got = json.loads(c.run("deployment", "get", name, "-o", "json").stdout)
    assert got["status"] == "running", got
    url = d["urls"][0]
    assert call(url, "1.1", "x") == "one:x"

    (tmp_path / "update.json").write_text(json.dumps(body("two")))
    c.run("deployment", "update", "-f", str(tmp_path / "update.json"))
    wait_answer(url, "1.1", "two:x")
    revs = revisions(dserver, name)
    assert len(revs) == 2, revs

    rollback(dserver, name, revs[1]["uid"])
    wait_answer(url, "1.1", "one:x")

    listed = json.loads(c.run("deployment", "list", "-o", "json").stdout)
    assert any(item["name"] == name for item in listed["items"]), listed

    c.run("deployment", "terminate", name)
    wait_status(dserver, name, "terminated", timeout=60)
    wait_gone(url)
    c.run("deployment", "delete", name)
    assert dserver.api_with_token("GET", v1_path(name)).status_code == 404


def test_bad_requests_get_clear_errors_and_create_nothing(dserver, make_client):
    c = make_client("bentoml14")
    tag = build_and_push(c, dserver, SERVICE_14, "service:Greeter", "greeter14")
    before = dserver.api_with_token("GET", "/api/v1/deployments").json()["total"]

    # A bento that was registered but never uploaded.
    resp = dserver.api_with_token("POST", "/api/v1/bento_repositories", json={"name": "never-uploaded", "description": ""})
    assert resp.status_code == 200, resp.text
    manifest = {"service": "service:Greeter", "bentoml_version": "1.4.40", "size_bytes": 1, "apis": {}, "models": []}
    resp = dserver.api_with_token("POST", "/api/v1/bento_repositories/never-uploaded/bentos",
                                  json={"version": "v1", "description": "", "manifest": manifest, "labels": []})
    assert resp.status_code == 200, resp.text
    resp = dserver.api_with_token("POST", "/api/v2/deployments", json={"name": "nope", "bento": "never-uploaded:v1", "services": {}})
    assert resp.status_code == 409, resp.text
    assert "uploaded" in resp.json()["message"]

    # A name that is not a DNS-1123 label, through the real CLI.
    bad = c.run("deployment", "create", tag, "--name", "Bad_Name", "--no-wait", check=False)
    assert bad.returncode != 0, bad.describe()
    assert "DNS-1123" in bad.output, bad.describe()

    # A token without the write_cluster scope, through the real CLI.
    registry_only = dserver.create_token(f"registry-{uuid.uuid4().hex[:6]}", ["api", "read_organization", "read_cluster"])
    c2 = make_client("bentoml14", name="registry-only")
    c2.login(dserver.endpoint, registry_only)
    denied = c2.run("deployment", "create", tag, "--name", "denied", "--no-wait", check=False)
    assert denied.returncode != 0, denied.describe()
    assert "write_cluster" in denied.output, denied.describe()

    assert dserver.api_with_token("GET", "/api/v1/deployments").json()["total"] == before


def replica_pids(server, name: str) -> list[int]:
    """The bento processes of a deployment: ``bentoml serve`` leaders whose environment names it."""
    d = deployment(server, name)
    uid = d["uid"]
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if "bentoml" in cmdline and "serve" in cmdline and uid.encode() in environ + cmdline.encode():
            pids.append(int(proc.name))
    return pids


def test_a_crashed_bento_and_a_restarted_server_come_back(dserver, make_client):
    c = make_client("bentoml14")
    tag = build_and_push(c, dserver, SERVICE_14, "service:Greeter", "greeter14")
    name = f"crash-{uuid.uuid4().hex[:6]}"
    c.run("deployment", "create", tag, "--name", name, "--env", "GREETING=hi", "--timeout", str(int(READY_TIMEOUT)))
    d = wait_status(dserver, name, "running")
    url = d["urls"][0]
    assert call(url, "1.4", "x") == "hi:x"

    pids = replica_pids(dserver, name)
    assert pids, f"no bento process found for {name}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    seen: list[str] = []
    wait_status(dserver, name, "unhealthy", timeout=60, seen=seen)
    wait_status(dserver, name, "running", timeout=300, seen=seen)
    assert "unhealthy" in seen, seen
    wait_answer(url, "1.4", "hi:x")

    # kill -9 the server: its children die with it; the new process reconciles from the database.
    dserver.crash_and_restart()
    wait_answer(url, "1.4", "hi:x", timeout=300)
    wait_status(dserver, name, "running", timeout=60)

    c.run("deployment", "terminate", name, "--wait")
    wait_gone(url)
    assert replica_pids(dserver, name) == [], "terminate leaves no process behind"
    c.run("deployment", "delete", name)

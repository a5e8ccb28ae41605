"""Scale-out: two replicas of ``yatai serve`` on one PostgreSQL database and one S3 bucket.

Whatever one replica hands out works on the other: sessions, API tokens, their revocation
(at once), the end of sessions after a password reset, presigned multipart uploads started
on one and finished on the other, and archives pushed through one and pulled through the
other, with plain HTTP and with the real bentoml 1.4 CLI.
"""

from __future__ import annotations

import pytest
import requests

import artifacts
import clients
import flows
import harness
import servers


@pytest.fixture
def replicas(fresh, tmp_path):
    a = fresh("pg_s3", "presigned_url")
    b = harness.replica(a, tmp_path / "replica-b")
    yield a, b
    b.stop()


def session_on(server, name: str, password: str) -> requests.Session:
    s = requests.Session()
    r = s.post(f"{server.endpoint}/api/v1/auth/login", json={"name_or_email": name, "password": password}, timeout=60)
    assert r.status_code == 200, f"login as {name} on {server.endpoint}: {r.status_code} {r.text[:300]}"
    return s


def cookie_of(session: requests.Session) -> dict:
    return {"yatai_session": session.cookies.get("yatai_session")}


def current(server, **kw) -> int:
    return requests.get(f"{server.endpoint}/api/v1/auth/current", timeout=60, **kw).status_code


def test_sessions_tokens_and_revocations_across_replicas(replicas):
    a, b = replicas
    problems = []
    name, password = harness.unique("user"), "first-password-1"
    r = requests.post(
        f"{a.endpoint}/api/v1/users",
        json={"name": name, "email": f"{name}@example.com", "password": password, "role": "developer"},
        headers=harness.auth(a),
        timeout=60,
    )
    assert r.status_code == 200, f"create user on A: {r.status_code} {r.text[:300]}"

    on_b = session_on(b, name, password)
    if (s := current(a, cookies=cookie_of(on_b))) != 200:
        problems.append(f"a session opened on B gets {s} on A")
    r = requests.post(
        f"{a.endpoint}/api/v1/api_tokens",
        json={"name": "across", "description": "", "scopes": ["api", "read_organization", "write_organization"]},
        cookies=cookie_of(on_b),
        timeout=60,
    )
    assert r.status_code == 200, f"create a token on A with B's session: {r.status_code} {r.text[:300]}"
    token, uid = r.json()["token"], r.json()["uid"]
    if (s := current(b, headers={"X-YATAI-API-TOKEN": token})) != 200:
        problems.append(f"a token created on A gets {s} on B")
    r = requests.delete(f"{b.endpoint}/api/v1/api_tokens/{uid}", cookies=cookie_of(on_b), timeout=60)
    if r.status_code != 200:
        problems.append(f"revoking the token on B: {r.status_code} {r.text[:300]}")
    if (s := current(a, headers={"X-YATAI-API-TOKEN": token})) != 401:
        problems.append(f"a token revoked on B still gets {s} on A (expected 401 at once)")

    on_a = session_on(a, name, password)
    r = requests.post(f"{a.endpoint}/api/v1/auth/logout", cookies=cookie_of(on_a), timeout=60)
    if (s := current(b, cookies=cookie_of(on_a))) != 401:
        problems.append(f"a session logged out on A still gets {s} on B (logout answered {r.status_code})")

    r = requests.post(
        f"{b.endpoint}/api/v1/users/{name}/reset_password", json={"new_password": "second-password-2"}, headers=harness.auth(b), timeout=60
    )
    if r.status_code != 200:
        problems.append(f"admin password reset on B: {r.status_code} {r.text[:300]}")
    if (s := current(a, cookies=cookie_of(on_b))) != 401:
        problems.append(f"after a password reset on B, the user's old session still gets {s} on A")
    if (s := current(b, cookies=cookie_of(session_on(a, name, "second-password-2")))) != 200:
        problems.append(f"a session with the new password opened on A gets {s} on B")
    assert not problems, "across two replicas:\n  - " + "\n  - ".join(problems)


def test_transfers_across_replicas(replicas):
    a, b = replicas
    problems = []
    tag = f"{harness.unique('scale')}:v1"
    harness.ensure_version(a, "bento", tag, marker=tag)
    data = harness.marked_archive(tag, 7 << 20, gz=False)
    path = harness.version_path("bento", tag)

    # Multipart: started on A, parts presigned by B, completed on A, finished on B.
    r = requests.patch(f"{a.endpoint}{path}/start_multipart_upload", headers=harness.auth(a), timeout=60)
    assert r.status_code == 200, f"start_multipart_upload on A: {r.status_code} {r.text[:300]}"
    upload_id = r.json()["upload_id"]
    parts = []
    for n, chunk in enumerate((data[: 5 << 20], data[5 << 20 :]), start=1):
        r = requests.patch(
            f"{b.endpoint}{path}/presign_multipart_upload_url", json={"upload_id": upload_id, "part_number": n}, headers=harness.auth(b), timeout=60
        )
        assert r.status_code == 200, f"presign part {n} on B for an upload started on A: {r.status_code} {r.text[:300]}"
        put = harness.put_part(a, r.json()["presigned_upload_url"], chunk)
        assert put.status_code == 200, f"PUT part {n}: {put.status_code} {put.text[:300]}"
        parts.append({"part_number": n, "etag": put.headers.get("ETag", "")})
    r = requests.patch(f"{a.endpoint}{path}/complete_multipart_upload", json={"upload_id": upload_id, "parts": parts}, headers=harness.auth(a), timeout=120)
    if r.status_code != 200:
        problems.append(f"complete_multipart_upload on A: {r.status_code} {r.text[:300]}")
    r = requests.patch(f"{b.endpoint}{path}/finish_upload", json={"status": "success", "reason": ""}, headers=harness.auth(b), timeout=120)
    if r.status_code != 200:
        problems.append(f"finish_upload on B of an upload started on A: {r.status_code} {r.text[:300]}")
    r = requests.patch(f"{b.endpoint}{path}/presign_download_url", headers=harness.auth(b), timeout=60)
    url = r.json().get("presigned_download_url") if r.status_code == 200 else None
    got = requests.get(url, timeout=120) if url else None
    if got is None or got.content != data:
        problems.append(f"presigned download from B: {r.status_code} {url!r} -> {got.status_code if got is not None else None}")
    got = harness.download(a, "bento", tag)
    if got.status_code != 200 or got.content != data:
        problems.append(f"proxy download from A of the multipart upload: {got.status_code}, {len(got.content)} bytes")

    # Proxy: pushed through B, pulled through A.
    other = f"{harness.unique('scale')}:v2"
    harness.ensure_version(b, "bento", other, marker=other)
    second = harness.marked_archive(other, 1 << 20)
    r = harness.proxy_upload(b, "bento", other, second)
    if r.status_code != 200:
        problems.append(f"proxy upload through B: {r.status_code} {r.text[:300]}")
    got = harness.download(a, "bento", other)
    if got.status_code != 200 or got.content != second:
        problems.append(f"proxy download through A of what B received: {got.status_code}, {len(got.content)} bytes")
    assert not problems, "transfers across two replicas:\n  - " + "\n  - ".join(problems)


def test_bentoml_push_through_one_pull_through_the_other(replicas, tmp_path):
    a, b = replicas
    try:
        venvs = clients.find_venvs(servers.REPO)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    kind = clients.CLIENT_KINDS["bentoml14"]
    pusher = clients.BentoML(kind, venvs[kind.venv_var], home=tmp_path / "pusher/home", workdir=tmp_path / "pusher/work")
    puller = clients.BentoML(kind, venvs[kind.venv_var], home=tmp_path / "puller/home", workdir=tmp_path / "puller/work")
    pusher.login(a.endpoint, a.token)
    puller.login(b.endpoint, b.token)
    made = flows.make_bento(pusher, tmp_path / "build", suffix="-scale")

    pusher.push_bento(made.bento_tag)
    puller.pull_bento(made.bento_tag)

    artifacts.assert_same_tree(made.bento_snapshot, puller.bento_dir(made.bento_tag), "bento pushed through A, pulled through B")
    artifacts.assert_same_tree(
        made.model_snapshot, puller.bento_model_dir(made.bento_tag, made.model_tag), "model pushed through A, pulled through B"
    )

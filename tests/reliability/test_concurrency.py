"""Many clients at once: pushes of one tag, downloads of one archive, a flood of bad logins.

Memory is read from ``/proc/PID/status`` of the server: ``VmHWM`` (peak RSS, reset with
``/proc/PID/clear_refs`` before each burst) and ``VmRSS`` (now). The figures are printed
(``pytest -s`` shows them) and named in every failure.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time

import pytest
import requests

import harness
import registry

PUSHERS = 8
#: Each pusher's archive, sent at PUSH_RATE so that all the uploads overlap in time.
PUSH_SIZE = 3 << 20
PUSH_RATE = 1 << 20

DOWNLOADERS = 50
DOWNLOAD_SIZE = 32 << 20
#: How much the server's peak RSS may grow while the downloads run ("flat").
DOWNLOAD_GROWTH_MIB = 100

LOGINS = 256
LOGIN_PEAK_MIB = 300
#: After the flood, RSS must come back to within this much of where it started.
LOGIN_SETTLE_MIB = 64


def _report(line: str) -> None:
    print(f"\n[reliability] {line}", flush=True)


@pytest.mark.parametrize("transfer", ["proxy", "multipart"])
def test_concurrent_pushes_of_one_tag(shared, backend, transfer):
    """8 clients push the same tag with different archives and manifests, all uploads in flight
    together. One whole archive is stored and served, the stored manifest belongs to the same
    push as the archive, and every push that lost is told so with a non-200 conflict answer.

    Each client has its own API token, as separate machines or CI jobs do: the server tells
    pushes apart by their credentials (and, for one token, by the connection its client keeps;
    these pushers open a new connection per request, so with one shared token they would be one
    client to the server)."""
    server = shared(backend, "presigned_url" if transfer == "multipart" else None)
    tag = f"{harness.unique('race')}:v1"
    name, version = tag.split(":")
    archives = {i: harness.marked_archive(f"push-{i}", PUSH_SIZE, gz=False) for i in range(PUSHERS)}
    barrier = threading.Barrier(PUSHERS)
    base = f"{server.endpoint}{harness.version_path('bento', tag)}"
    tokens = [server.create_token(f"{name}-pusher-{i}", ["api", "read_organization", "write_organization"]) for i in range(PUSHERS)]

    def push(i: int) -> dict:
        """What bentoml 1.4 ``push --force`` does, with the upload paced; returns every answer."""
        h = harness.auth(server, tokens[i])
        out = {}
        requests.post(f"{server.endpoint}/api/v1/bento_repositories", json={"name": name, "description": ""}, headers=h, timeout=60)
        barrier.wait(60)
        body = {"version": version, "description": f"push-{i}", "manifest": harness.manifest(f"push-{i}"), "build_at": registry.BUILD_AT, "labels": []}
        r = requests.post(f"{server.endpoint}/api/v1/bento_repositories/{name}/bentos", json=body, headers=h, timeout=60)
        out["create"] = r.status_code
        if r.status_code != 200:
            r = requests.patch(base, json={"description": f"push-{i}", "manifest": harness.manifest(f"push-{i}"), "labels": []}, headers=h, timeout=60)
            out["update"] = r.status_code
        barrier.wait(60)
        data = archives[i]
        if transfer == "proxy":
            requests.patch(f"{base}/start_upload", headers=h, timeout=60)
            put = harness.raw_request(
                server.endpoint, "PUT", f"{harness.version_path('bento', tag)}/upload",
                {**h, "Content-Type": "application/octet-stream"}, harness.chunked(data, 64 << 10),
                declared_length=len(data), rate=PUSH_RATE,
            )  # fmt: skip
            out["final"] = (put.status, put.body[:300])
            return out
        r = requests.patch(f"{base}/start_multipart_upload", headers=h, timeout=60)
        if r.status_code != 200:
            out["final"] = (r.status_code, r.content[:300])
            return out
        upload_id = r.json()["upload_id"]
        r = requests.patch(f"{base}/presign_multipart_upload_url", json={"upload_id": upload_id, "part_number": 1}, headers=h, timeout=60)
        if r.status_code != 200:
            out["final"] = (r.status_code, r.content[:300])
            return out
        url = r.json()["presigned_upload_url"]
        if url.startswith(server.endpoint):  # the server's own part URL: paced like the proxy uploads
            u = requests.utils.urlparse(url)
            put = harness.raw_request(
                server.endpoint, "PUT", f"{u.path}?{u.query}", {}, harness.chunked(data, 64 << 10),
                declared_length=len(data), rate=PUSH_RATE,
            )  # fmt: skip
            status, etag, body = put.status, put.headers.get("etag", ""), put.body
        else:  # the S3 server's: its own speed overlaps the pushes enough (they wait at the barrier)
            put = harness.put_part(server, url, data)
            status, etag, body = put.status_code, put.headers.get("ETag", ""), put.content
        if status != 200:
            out["final"] = (status, body[:300])
            return out
        r = requests.patch(
            f"{base}/complete_multipart_upload",
            json={"upload_id": upload_id, "parts": [{"part_number": 1, "etag": etag}]},
            headers=h, timeout=120,
        )  # fmt: skip
        if r.status_code != 200:
            out["final"] = (r.status_code, r.content[:300])
            return out
        r = requests.patch(f"{base}/finish_upload", json={"status": "success", "reason": ""}, headers=h, timeout=120)
        out["final"] = (r.status_code, r.content[:300])
        return out

    running = [harness.in_thread(push, i) for i in range(PUSHERS)]
    for t, _ in running:
        t.join(300)
    results = {i: box[0] for i, (_, box) in enumerate(running)}
    crashed = {i: r for i, r in results.items() if isinstance(r, BaseException)}
    assert not crashed, f"pushers failed on their side: {crashed}"

    problems = []
    stored = harness.get_version(server, "bento", tag)
    manifest_from = (stored.get("manifest") or {}).get("marker")
    got = harness.download(server, "bento", tag)
    archive_from = harness.archive_marker(got.content) if got.status_code == 200 else f"download -> {got.status_code}"
    keys = registry.archive_keys(server, "bento", tag)
    if stored.get("upload_status") != "success":
        problems.append(f"upload_status is {stored.get('upload_status')!r}, reason {stored.get('upload_finished_reason')!r}")
    if got.status_code == 200 and got.content not in archives.values():
        problems.append("the served archive is none of the pushed ones (a mix?)")
    if manifest_from != archive_from:
        problems.append(f"the stored manifest is from {manifest_from}, the served archive from {archive_from}")
    if len(keys) != 1:
        problems.append(f"expected exactly one stored archive, found {len(keys)}: {keys}")
    winners = [i for i, r in results.items() if r["final"][0] == 200]
    if [f"push-{i}" for i in winners] != [archive_from]:
        problems.append(
            f"expected exactly one push to be told 200, the one whose archive is served ({archive_from}); "
            f"told 200: {[f'push-{i}' for i in winners]}"
        )
    for i, r in results.items():
        status, body = r["final"]
        if status != 200 and status != 409:
            problems.append(f"push-{i} lost with {status} {body!r}, not a 409 conflict")
    summary = {f"push-{i}": {k: v if k != "final" else v[0] for k, v in r.items()} for i, r in results.items()}
    assert not problems, f"{PUSHERS} concurrent {transfer} pushes of {tag} on {backend}: {summary}\n  - " + "\n  - ".join(problems)


def test_concurrent_downloads(fresh, backend):
    """50 clients download one archive at once: every byte right, the server's RSS flat."""
    server = fresh(backend)
    tag = f"{harness.unique('fanout')}:v1"
    data = harness.marked_archive(tag, DOWNLOAD_SIZE, gz=False)
    want = harness.sha256(data)
    harness.push(server, "bento", tag, data, marker=tag)
    pid = server.process.pid
    assert harness.download(server, "bento", tag).content == data, "a single download is already wrong"
    base = harness.memory_mib(pid)["VmRSS"]
    harness.reset_peak(pid)
    barrier = threading.Barrier(DOWNLOADERS)

    def fetch(_i):
        barrier.wait(60)
        digest, size = hashlib.sha256(), 0
        with requests.get(
            f"{server.endpoint}{harness.version_path('bento', tag)}/download", headers=harness.auth(server), stream=True, timeout=300
        ) as r:
            for chunk in r.iter_content(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            return r.status_code, size, digest.hexdigest()

    running = [harness.in_thread(fetch, i) for i in range(DOWNLOADERS)]
    for t, _ in running:
        t.join(600)
    peak = harness.memory_mib(pid)["VmHWM"]
    after = harness.memory_mib(pid)["VmRSS"]
    results = [box[0] if box else "no result" for _, box in running]
    _report(f"{DOWNLOADERS} downloads of {DOWNLOAD_SIZE >> 20} MiB on {backend}: RSS {base:.0f} MiB before, peak {peak:.0f} MiB, {after:.0f} MiB after")
    wrong = [r for r in results if not (isinstance(r, tuple) and r[0] == 200 and r[1] == len(data) and r[2] == want)]
    assert not wrong, f"{len(wrong)} of {DOWNLOADERS} downloads were wrong, e.g. {wrong[:3]}"
    assert peak - base < DOWNLOAD_GROWTH_MIB, (
        f"{DOWNLOADERS} concurrent downloads of {DOWNLOAD_SIZE >> 20} MiB on {backend}: peak RSS {peak:.0f} MiB "
        f"from {base:.0f} MiB before (+{peak - base:.0f} MiB, limit +{DOWNLOAD_GROWTH_MIB} MiB)"
    )


def test_login_flood(fresh, backend):
    """256 concurrent failed logins: peak RSS below 300 MB, memory back down afterwards, every
    answer a 401 or a 429/503 with Retry-After, and the server still serves its users."""
    server = fresh(backend)
    pid = server.process.pid
    requests.post(f"{server.endpoint}/api/v1/auth/login", json={"name_or_email": "admin", "password": "warm-up-wrong"}, timeout=60)
    base = harness.memory_mib(pid)["VmRSS"]
    harness.reset_peak(pid)
    barrier = threading.Barrier(LOGINS)

    def login(i: int):
        who = "admin" if i % 2 == 0 else f"nobody{i}"
        barrier.wait(120)
        try:
            r = requests.post(
                f"{server.endpoint}/api/v1/auth/login", json={"name_or_email": who, "password": f"wrong-password-{i}"}, timeout=300
            )
            return r.status_code, r.headers.get("Retry-After"), r.text[:200]
        except requests.RequestException as e:
            return "no answer", None, str(e)

    started = time.monotonic()
    running = [harness.in_thread(login, i) for i in range(LOGINS)]
    for t, _ in running:
        t.join(600)
    elapsed = time.monotonic() - started
    peak = harness.memory_mib(pid)["VmHWM"]
    settled = harness.settle_rss(pid, base + LOGIN_SETTLE_MIB, wait=30)
    results = [box[0] if box else ("no result", None, "") for _, box in running]
    counts = collections.Counter(r[0] for r in results)
    _report(
        f"{LOGINS} concurrent bad logins on {backend}: RSS {base:.0f} MiB before, peak {peak:.0f} MiB, "
        f"{settled:.0f} MiB 30 s later; answers {dict(counts)} in {elapsed:.1f} s"
    )
    problems = []
    if peak >= LOGIN_PEAK_MIB:
        problems.append(f"peak RSS {peak:.0f} MiB (limit {LOGIN_PEAK_MIB} MiB), from {base:.0f} MiB before")
    if settled >= base + LOGIN_SETTLE_MIB:
        problems.append(f"RSS did not come back down: {settled:.0f} MiB 30 s after the flood, {base:.0f} MiB before (limit +{LOGIN_SETTLE_MIB})")
    odd = [r for r in results if r[0] not in (401, 429, 503)]
    if odd:
        problems.append(f"{len(odd)} answers were not 401/429/503: {odd[:3]}")
    no_retry = [r for r in results if r[0] in (429, 503) and not (r[1] or "").strip().isdigit()]
    if no_retry:
        problems.append(f"{len(no_retry)} 429/503 answers without a Retry-After in seconds: {no_retry[:3]}")
    still = requests.get(f"{server.endpoint}/api/v1/auth/current", headers=harness.auth(server), timeout=60)
    if still.status_code != 200:
        problems.append(f"after the flood the admin's token gets {still.status_code} {still.text[:200]}")
    if server.process.poll() is not None:
        problems.append(f"the server died (exit {server.process.returncode})")
    assert not problems, f"{LOGINS} concurrent bad logins on {backend}: answers {dict(counts)}\n  - " + "\n  - ".join(problems)

"""Lost database connections: every PostgreSQL backend of the server is terminated
(``pg_terminate_backend`` on its database), over and over, while it serves reads and an upload.

Nothing may fail, or fail only with a clean 503 (a JSON error, nothing internal), the upload
either succeeds whole or fails cleanly and leaves nothing half, and once the terminations stop
the server answers everything again without a restart (same process).
"""

from __future__ import annotations

import collections
import threading
import time

import requests

import harness
import registry

#: How long the connections keep being cut, and how often.
CUT_FOR = 8.0
CUT_EVERY = 0.25
#: The upload running meanwhile (sent slowly, so that it spans the cuts).
UPLOAD = 24 << 20
RATE = 4 << 20


def terminate_backends(database: str) -> int:
    out = harness.psql(
        "postgres",
        f"SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()",
    )
    return int(out.strip() or 0)


def test_database_connections_terminated(fresh):
    server = fresh("pg_s3")
    database = server.settings["PG_DATABASE"]
    published, new = f"{harness.unique('dbcut')}:published", f"{harness.unique('dbcut')}:new"
    old = harness.marked_archive(published, 256 << 10)
    harness.push(server, "bento", published, old, marker=published)
    harness.ensure_version(server, "bento", new, marker=new)
    pid = server.process.pid

    stop = threading.Event()
    answers: collections.Counter = collections.Counter()
    bad: list[str] = []
    reads = {
        "GET /api/v1/auth/current": lambda: requests.get(f"{server.endpoint}/api/v1/auth/current", headers=harness.auth(server), timeout=30),
        "GET /api/v1/bentos": lambda: requests.get(f"{server.endpoint}/api/v1/bentos", headers=harness.auth(server), timeout=30),
        "GET version": lambda: requests.get(f"{server.endpoint}{harness.version_path('bento', published)}", headers=harness.auth(server), timeout=30),
        "download": lambda: harness.download(server, "bento", published),
    }  # fmt: skip

    def reader(name, call):
        while not stop.is_set():
            try:
                r = call()
            except requests.RequestException as e:
                answers[(name, "no answer")] += 1
                bad.append(f"{name}: no answer ({e})")
                continue
            answers[(name, r.status_code)] += 1
            if r.status_code == 200:
                if name == "download" and r.content != old:
                    bad.append(f"download: 200 with {len(r.content)} wrong bytes")
            elif r.status_code != 503 or "json" not in r.headers.get("Content-Type", ""):
                bad.append(f"{name}: {r.status_code} {r.text[:300]!r}")

    threads = [threading.Thread(target=reader, args=item, daemon=True) for item in reads.items()]
    for t in threads:
        t.start()
    data = harness.marked_archive(new, UPLOAD, gz=False)
    upload, box = harness.in_thread(
        lambda: (
            requests.patch(f"{server.endpoint}{harness.version_path('bento', new)}/start_upload", headers=harness.auth(server), timeout=60),
            harness.raw_request(
                server.endpoint, "PUT", f"{harness.version_path('bento', new)}/upload",
                {**harness.auth(server), "Content-Type": "application/octet-stream"},
                harness.chunked(data, 256 << 10), declared_length=len(data), rate=RATE,
            ),
        )
    )  # fmt: skip
    terminated = 0
    deadline = time.monotonic() + CUT_FOR
    while time.monotonic() < deadline:
        terminated += terminate_backends(database)
        time.sleep(CUT_EVERY)
    upload.join(120)
    stop.set()
    for t in threads:
        t.join(60)

    problems = []
    if terminated == 0:
        problems.append("no backend was terminated: the test did not cut anything")
    if bad:
        problems.append(f"{len(bad)} answers were neither 200 nor a clean 503, e.g. {bad[:5]}")
    start, put = box[0] if box and isinstance(box[0], tuple) else (None, None)
    if put is None:
        problems.append(f"the upload got no result: {box}")
    elif put.status == 200:
        got = harness.download(server, "bento", new)
        if got.status_code != 200 or got.content != data:
            problems.append(f"the upload answered 200 but download gave {got.status_code}, {len(got.content)} bytes")
    elif put.status != 503:
        problems.append(f"the upload during the cuts: expected 200 or a clean 503, got {put.describe()} (start_upload: {start.status_code if start is not None else None})")

    # Recovery, without a restart.
    recovered = harness.wait_for(
        "recovered",
        lambda: all(call().status_code == 200 for call in reads.values()),
        15,
    )
    if not recovered:
        problems.append(
            "15 s after the last cut, not every read answers 200: "
            + str({name: call().status_code for name, call in reads.items()})
        )
    if server.process.poll() is not None or server.process.pid != pid:
        problems.append(f"the server process died (exit {server.process.returncode})")
    if put is not None and put.status != 200:
        again = harness.proxy_upload(server, "bento", new, data)
        if again.status_code != 200:
            problems.append(f"uploading again after the cuts gave {again.status_code} {again.text[:300]}")
    keys = registry.archive_keys(server, "bento", new)
    if len(keys) != 1:
        problems.append(f"{new}: expected one stored archive at the end, found {keys}")
    summary = ", ".join(f"{n} {s}: {c}" for (n, s), c in sorted(answers.items(), key=str))
    assert not problems, (
        f"terminated {terminated} PostgreSQL backends over {CUT_FOR:.0f} s; answers: {summary}\n  - " + "\n  - ".join(problems)
    )

"""Hostile and broken input: every case gets a 4xx, bounded resources, and nothing written.

For each case, on both backend pairs (one shared server per pair):

* every answer is a 4xx, with a body of at most ``MAX_ERROR_BODY`` bytes (errors may quote
  the input, but not all of a megabyte of it);
* the server's peak RSS (``VmHWM``, reset before the case) grows by less than ``MAX_GROWTH_MIB``;
* nothing is written: the row count of every table, every stored object and every unfinished
  upload are the same before and after, and a published version (``good``) is unchanged,
  resource and served bytes. One thing only may be added: the record of a refused upload
  (``uploads`` row, status ``failed``, with its reason), which is where the issue wants the
  reason of a failed push kept instead of on the version.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from datetime import datetime, timedelta, timezone

import pytest
import requests

import harness
import registry
import servers

MAX_ERROR_BODY = 4096
#: What a refused request must leave as it was on the published version (the time an upload
#: last started may move: a refused re-push still started).
WATCHED = (
    "upload_status", "upload_finished_reason", "upload_finished_at", "archive_sha256", "archive_size",
    "description", "manifest", "labels", "version", "name",
)  # fmt: skip
MAX_GROWTH_MIB = 128


class Context:
    """What the cases of one server work on: a repository with a published version."""

    def __init__(self, server: servers.YataiServer):
        self.server = server
        self.repo = harness.unique("badinput")
        self.good = f"{self.repo}:good"
        self.archive = harness.marked_archive(self.good, 50_000)
        harness.push(server, "bento", self.good, self.archive, marker=self.good)
        self.version_path = harness.version_path("bento", self.good)

    def restore(self) -> None:
        """Put the published version back as it was when an earlier case changed it (so that
        every case starts from the same published version, and says so when it cannot)."""
        version = harness.get_version(self.server, "bento", self.good)
        if version.get("upload_status") != "success" or version.get("archive_sha256") != harness.sha256(self.archive):
            harness.push(self.server, "bento", self.good, self.archive, marker=self.good)
        if version.get("description") or version.get("manifest") != harness.manifest(self.good) or version.get("labels"):
            r = requests.patch(
                self.url(self.version_path),
                json={"description": "", "manifest": harness.manifest(self.good), "labels": []},
                headers=self.headers(),
                timeout=60,
            )
            assert r.status_code == 200, f"restoring {self.good}: {r.status_code} {r.text[:300]}"
        r = requests.patch(self.url(f"/api/v1/bento_repositories/{self.repo}"), json={"description": ""}, headers=self.headers(), timeout=60)
        assert r.status_code == 200, f"restoring repository {self.repo}: {r.status_code} {r.text[:300]}"

    def url(self, path: str) -> str:
        return f"{self.server.endpoint}{path}"

    def headers(self, **extra) -> dict:
        return {**harness.auth(self.server), **extra}

    def snapshot(self) -> dict:
        """Rows per table, stored objects, unfinished uploads, the published version and the
        bytes of its stored archive. Read without downloading (a download records an event)."""
        resp = requests.get(self.url(self.version_path), headers=self.headers(), timeout=60)
        keys = registry.archive_keys(self.server, "bento", self.good)
        counts = harness.row_counts(self.server)
        # Refused uploads are recorded (status failed, with the reason): not counted here, and
        # checked on their own by ``refused_uploads``.
        counts["uploads"] = counts.get("uploads", 0) - len(refused_uploads(self.server)[0])
        return {
            **{f"rows in {t}": n for t, n in counts.items()},
            **harness.storage_state(self.server),
            **{f"published version's {k}": resp.json().get(k) if resp.status_code == 200 else resp.status_code for k in WATCHED},
            "published version's stored archives (sha256)": [self.server.object_sha256(k) for k in keys],
        }


def refused_uploads(server) -> tuple[set[str], set[str]]:
    """The uids of the uploads recorded as failed, and of those among them without a reason."""
    rows = harness.query(server, "SELECT uid, CASE WHEN TRIM(reason) = '' THEN 'none' ELSE 'given' END FROM uploads WHERE status = 'failed'")
    return {uid for uid, _ in rows}, {uid for uid, reason in rows if reason == "none"}


_contexts: dict[str, Context] = {}


def context(server) -> Context:
    if server.endpoint not in _contexts:
        _contexts[server.endpoint] = Context(server)
    return _contexts[server.endpoint]


# -- request helpers -------------------------------------------------------------------------
def post_json(ctx: Context, path: str, body, **kw) -> requests.Response:
    return requests.post(ctx.url(path), json=body, headers=ctx.headers(), timeout=120, **kw)


def raw(
    ctx: Context, method: str, path: str, body: bytes, content_type: str | None, declared: int | None = None, **kw
) -> harness.RawResponse:
    """Send ``body`` with ``Content-Length: declared`` (default: its true length)."""
    headers = ctx.headers()
    if content_type:
        headers["Content-Type"] = content_type
    length = len(body) if declared is None else declared
    return harness.raw_request(ctx.server.endpoint, method, path, headers, harness.chunked(body), declared_length=length, **kw)


def new_repo(ctx: Context, name: str):
    return post_json(ctx, "/api/v1/bento_repositories", {"name": name, "description": ""})


def new_version(ctx: Context, version: str, **fields):
    body = {"version": version, "description": "", "manifest": harness.manifest("x"), "labels": [], **fields}
    return post_json(ctx, f"/api/v1/bento_repositories/{ctx.repo}/bentos", body)


def upload_to_good(ctx: Context, data: bytes, **kw) -> list:
    """A re-push of the published version, as the clients do it (start_upload, then PUT), whose
    archive must be refused. start_upload itself is part of a legitimate re-push: its answer
    is not checked, but what it leaves is (the version must end as it was)."""
    start = requests.patch(ctx.url(f"{ctx.version_path}/start_upload"), headers=ctx.headers(), timeout=60)
    assert start.status_code == 200, f"start_upload of the published version: {start.status_code} {start.text[:300]}"
    return [("PUT upload", raw(ctx, "PUT", f"{ctx.version_path}/upload", data, "application/octet-stream", **kw))]


_bomb: list[bytes] = []


def gzip_bomb() -> bytes:
    """4 GiB of zero bytes in one gzip member of about 4 MiB: no tar inside, only zeros.
    The deflate block of 16 MiB of zeros ends with a full flush, so it can be repeated."""
    if not _bomb:
        zeros = bytes(16 << 20)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
        end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
        crc = 0
        for _ in range(256):
            crc = zlib.crc32(zeros, crc)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        _bomb.append(header + block * 256 + end + struct.pack("<II", crc, 0))
    return _bomb[0]


def token_with(ctx: Context, name: str, **fields) -> tuple[str, str]:
    resp = ctx.server.api(
        "POST", "/api/v1/api_tokens", json={"name": name, "description": "", "scopes": servers.ALL_SCOPES, **fields}
    )
    assert resp.status_code == 200, f"create token {name}: {resp.status_code} {resp.text[:300]}"
    return resp.json()["uid"], resp.json()["token"]


def as_caller(ctx: Context, headers: dict | None = None, cookies: dict | None = None) -> list:
    """Read, create and upload with these credentials (each must be refused with 401)."""
    h = {**harness.CLIENT_HEADERS, **(headers or {})}
    return [
        ("GET /api/v1/auth/current", requests.get(ctx.url("/api/v1/auth/current"), headers=h, cookies=cookies, timeout=60)),
        (
            "POST /api/v1/bento_repositories",
            requests.post(
                ctx.url("/api/v1/bento_repositories"), json={"name": harness.unique("who"), "description": ""},
                headers=h, cookies=cookies, timeout=60,
            ),
        ),
        ("GET /api/v1/api_tokens", requests.get(ctx.url("/api/v1/api_tokens"), headers=h, cookies=cookies, timeout=60)),
        ("PUT upload", raw_with(ctx, {**h, **({"Cookie": f"yatai_session={cookies['yatai_session']}"} if cookies else {})}, ctx.archive)),
    ]  # fmt: skip


def with_token(ctx: Context, token: str) -> list:
    return as_caller(ctx, headers={"X-YATAI-API-TOKEN": token})


def with_cookie(ctx: Context, cookie: str) -> list:
    return as_caller(ctx, cookies={"yatai_session": cookie})


def raw_with(ctx: Context, headers: dict, data: bytes) -> harness.RawResponse:
    return harness.raw_request(
        ctx.server.endpoint, "PUT", f"{ctx.version_path}/upload",
        {**headers, "Content-Type": "application/octet-stream"}, harness.chunked(data), declared_length=len(data),
    )  # fmt: skip


def expired_token(ctx: Context) -> str:
    """A token that expires 2 s after it is made, once it has expired."""
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    _, token = token_with(ctx, harness.unique("expiring"), expired_at=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    time.sleep(max(0.0, soon.timestamp() - time.time()) + 1.5)
    return token


def revoked_token(ctx: Context) -> str:
    uid, token = token_with(ctx, harness.unique("revoked"))
    resp = ctx.server.api("DELETE", f"/api/v1/api_tokens/{uid}")
    assert resp.status_code == 200, f"revoke: {resp.status_code} {resp.text[:300]}"
    return token


def token_in_query(ctx: Context) -> list:
    out = []
    for param in ("api_token", "token", "X-YATAI-API-TOKEN", "x-yatai-api-token", "access_token"):
        q = f"?{param}={ctx.server.token}"
        out.append((f"GET /api/v1/auth/current{q[:12]}...", requests.get(ctx.url(f"/api/v1/auth/current{q}"), timeout=60)))
        out.append(
            (
                f"POST /api/v1/bento_repositories?{param}=...",
                requests.post(
                    ctx.url(f"/api/v1/bento_repositories{q}"), json={"name": harness.unique("q"), "description": ""}, timeout=60
                ),
            )
        )
        out.append(
            (
                f"PUT upload?{param}=...",
                harness.raw_request(
                    ctx.server.endpoint, "PUT", f"{ctx.version_path}/upload{q}",
                    {"Content-Type": "application/octet-stream"}, harness.chunked(ctx.archive), declared_length=len(ctx.archive),
                ),
            )
        )  # fmt: skip
    return out


_other_sessions: dict[str, str] = {}


def other_servers_session(ctx: Context, tmp_path) -> str:
    """A real session cookie of another installation (its own setup, its own admin)."""
    if not _other_sessions:
        other = servers.start_server("local", None, tmp_path / "other-installation")
        try:
            cookie = other.admin.cookies.get("yatai_session")
            assert cookie, f"the other server set no yatai_session cookie: {other.admin.cookies}"
            check = requests.get(f"{other.endpoint}/api/v1/auth/current", cookies={"yatai_session": cookie}, timeout=30)
            assert check.status_code == 200, f"the cookie does not even work on its own server: {check.status_code}"
            _other_sessions["cookie"] = cookie
        finally:
            other.stop()
    return _other_sessions["cookie"]


def names_in_paths(ctx: Context) -> list:
    out = []
    for label, segment in {
        "slash": "a%2Fb",
        "dot-dot": "..%2F..%2Fetc",
        "NUL": "a%00b",
        "10,000 characters": "a" * 10_000,
        "unicode": "mod%C3%A8le-%F0%9F%8D%B1",
    }.items():
        out.append((f"GET repository named by {label}", requests.get(ctx.url(f"/api/v1/bento_repositories/{segment}"), headers=ctx.headers(), timeout=60)))
        out.append(
            (
                f"PUT upload to version named by {label}",
                raw(ctx, "PUT", f"/api/v1/bento_repositories/{ctx.repo}/bentos/{segment}/upload", ctx.archive, "application/octet-stream"),
            )
        )  # fmt: skip
    return out


BAD_NAMES = {
    "slash": "a/b",
    "dot-dot": "..",
    "dot-dot slash": "../etc",
    "NUL": "a\x00b",
    "10,000 characters": "a" * 10_000,
    "unicode": "modèle-🍱",
    "empty": "",
    "spaces": "  ",
}


def deep_json(depth: int) -> bytes:
    return b'{"version": "deep", "manifest": ' + b"[" * depth + b"]" * depth + b"}"


CASES = {
    **{f"repository name: {k}": (lambda c, v=v: [("POST repository", new_repo(c, v))]) for k, v in BAD_NAMES.items()},
    **{f"version name: {k}": (lambda c, v=v: [("POST version", new_version(c, v))]) for k, v in BAD_NAMES.items()},
    **{
        f"user name: {k}": (
            lambda c, v=v: [
                (
                    "POST user",
                    post_json(c, "/api/v1/users", {"name": v, "email": "x@example.com", "password": "long-enough-1"}),
                )
            ]
        )
        for k, v in BAD_NAMES.items()
    },
    "names in paths": names_in_paths,
    "label key of 1 MB": lambda c: [("POST version", new_version(c, "biglabelkey", labels=[{"key": "k" * (1 << 20), "value": "v"}]))],
    "label value of 1 MB": lambda c: [("POST version", new_version(c, "biglabelvalue", labels=[{"key": "k", "value": "v" * (1 << 20)}]))],
    "20,000 labels": lambda c: [
        ("POST version", new_version(c, "manylabels", labels=[{"key": f"k{i}", "value": "v"} for i in range(20_000)]))
    ],
    "repository description of 1.5 MB": lambda c: [
        ("POST repository", post_json(c, "/api/v1/bento_repositories", {"name": harness.unique("desc"), "description": "d" * 1_500_000})),
        ("PATCH repository", requests.patch(c.url(f"/api/v1/bento_repositories/{c.repo}"), json={"description": "d" * 1_500_000}, headers=c.headers(), timeout=60)),
    ],
    "version description of 1.5 MB": lambda c: [
        ("POST version", new_version(c, "bigdesc", description="d" * 1_500_000)),
        ("PATCH version", requests.patch(c.url(c.version_path), json={"description": "d" * 1_500_000}, headers=c.headers(), timeout=60)),
    ],
    "manifest of 16 MB": lambda c: [
        ("POST version", new_version(c, "bigmanifest", manifest={"blob": "m" * (16 << 20)})),
        ("PATCH version", requests.patch(c.url(c.version_path), json={"manifest": {"blob": "m" * (16 << 20)}}, headers=c.headers(), timeout=120)),
    ],
    "manifest nested 100,000 deep": lambda c: [
        ("POST version", raw(c, "POST", f"/api/v1/bento_repositories/{c.repo}/bentos", deep_json(100_000), "application/json"))
    ],
    "malformed JSON": lambda c: [
        (f"POST repository {body[:30]!r}", raw(c, "POST", "/api/v1/bento_repositories", body, "application/json"))
        for body in (b'{"name": "x"', b"[1, 2]", b'{"name": 5}', b'{"name": "\xff\xfe"}', b"", b"null", b'"name"', b'{"name": "x",}')
    ],
    "wrong content types": lambda c: [
        (f"POST repository as {ct}", raw(c, "POST", "/api/v1/bento_repositories", body, ct))
        for ct, body in (
            ("text/plain", json.dumps({"name": harness.unique("ct"), "description": ""}).encode()),
            ("application/x-www-form-urlencoded", f"name={harness.unique('ct')}&description=".encode()),
            (None, json.dumps({"name": harness.unique("ct"), "description": ""}).encode()),
            ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nct\r\n--x--\r\n"),
        )
    ],
    "upload longer than declared": lambda c: upload_to_good(c, harness.marked_archive("longer", 50_000), declared=30_000),
    "upload shorter than declared": lambda c: upload_to_good(c, harness.marked_archive("shorter", 50_000), declared=80_000, half_close=True),
    "empty upload": lambda c: upload_to_good(c, b""),
    "upload of garbage": lambda c: upload_to_good(c, b"this is not an archive at all\n" * 1000),
    "gzip bomb (4 GiB of zeros)": lambda c: upload_to_good(c, gzip_bomb()),
    "../ tar members": lambda c: upload_to_good(c, harness.tar_bytes({"bento.yaml": b"name: x\n", "../evil.txt": b"pwned\n"})),
    "nested ../ tar members": lambda c: upload_to_good(c, harness.tar_bytes({"bento.yaml": b"name: x\n", "src/../../evil.txt": b"pwned\n"})),
    "absolute tar members": lambda c: upload_to_good(c, harness.tar_bytes({"bento.yaml": b"name: x\n", "/tmp/evil.txt": b"pwned\n"})),
    "token in the query string": token_in_query,
    "expired token": (with_token, expired_token),
    "revoked token": (with_token, revoked_token),
    "forged session cookie": (with_cookie, lambda c: "ys_" + "0" * 40),
    "session from another server": (with_cookie, other_servers_session),
}


def _status_and_body(resp) -> tuple[int | None, bytes, str]:
    if isinstance(resp, harness.RawResponse):
        return resp.status, resp.body, resp.describe()
    return resp.status_code, resp.content, f"{resp.status_code} {resp.content[:600]!r}"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(shared, backend, case, tmp_path_factory):
    server = shared(backend)
    ctx = context(server)
    ctx.restore()
    pid = server.process.pid
    run = CASES[case]
    if isinstance(run, tuple):  # (run, prepare): what prepare makes is not the case's doing
        run, prepare = run
        made = prepare(ctx) if prepare is not other_servers_session else prepare(ctx, tmp_path_factory.mktemp("other"))
        run = lambda c, run=run, made=made: run(c, made)  # noqa: E731
    before = ctx.snapshot()
    refused_before = refused_uploads(server)[0]
    harness.reset_peak(pid)
    start_rss = harness.memory_mib(pid)["VmRSS"]

    answers = run(ctx)

    peak = harness.memory_mib(pid)["VmHWM"]
    after = ctx.snapshot()
    problems = []
    for what, resp in answers:
        status, body, shown = _status_and_body(resp)
        if status is None or not 400 <= status < 500:
            problems.append(f"{what}: expected a 4xx, got {shown}")
        elif len(body) > MAX_ERROR_BODY:
            problems.append(f"{what}: {status} with a body of {len(body)} bytes (at most {MAX_ERROR_BODY}): {body[:200]!r}...")
    if peak - start_rss >= MAX_GROWTH_MIB:
        problems.append(f"peak RSS grew from {start_rss:.0f} MiB to {peak:.0f} MiB (limit +{MAX_GROWTH_MIB} MiB)")
    for uid in refused_uploads(server)[1] - refused_before:
        problems.append(f"the refused upload {uid} is recorded without a reason")
    changed = harness.differences(before, after)
    if changed:
        problems.append(f"something was written: {json.dumps(changed, default=str)[:3000]}")
    assert server.process.poll() is None, f"the server died (exit {server.process.returncode})"
    assert not problems, f"{case} on {backend}:\n  " + "\n  ".join(problems)

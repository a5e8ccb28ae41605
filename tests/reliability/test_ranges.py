"""Range requests on archive downloads, each answered as RFC 9110 section 14 says.

The rules used (RFC 9110):

* 14.1.2 / 14.4: a satisfiable single byte range -> 206, ``Content-Range: bytes FIRST-LAST/LEN``,
  the body is exactly those bytes; a last-pos past the end is cut at LEN-1; a suffix longer
  than the archive is the whole archive; the range unit is case-insensitive (14.1).
* 14.1.1 + 15.5.17: a valid ranges-specifier none of whose ranges is satisfiable (a first-pos
  at or past the end, a suffix of length zero) -> 416 with ``Content-Range: bytes */LEN``.
* 14.2: an invalid ranges-specifier (last-pos below first-pos, garbage, an empty set) and a
  range unit the server does not know are ignored -> 200 with the whole archive.
* 14.2 / 14.6: several ranges may be answered with 206 ``multipart/byteranges`` holding exactly
  the satisfiable ranges, or the header may be ignored (200, whole archive).

Checked on the proxy download of both backend pairs, and on the server's own presigned
download URL (local backend; on S3 the presigned URL is the S3 server's, not ours).
"""

from __future__ import annotations

import re

import pytest
import requests

import harness

#: Size of the noise in the archive: big enough that ranges land inside it.
PAYLOAD = 200_000

_archives: dict[tuple, tuple[str, bytes]] = {}


def _serve(server, how: str) -> tuple[str, bytes, dict]:
    """(URL, archive bytes, headers) of one pushed archive on ``server``, pushed once per server."""
    key = (server.endpoint, how)
    if key not in _archives:
        tag = f"{harness.unique('ranges')}:v1"
        data = harness.marked_archive(tag, PAYLOAD)
        harness.push(server, "bento", tag, data, marker=tag)
        _archives[key] = (tag, data)
    tag, data = _archives[key]
    if how == "proxy":
        return f"{server.endpoint}{harness.version_path('bento', tag)}/download", data, harness.auth(server)
    resp = requests.patch(
        f"{server.endpoint}{harness.version_path('bento', tag)}/presign_download_url",
        headers=harness.auth(server),
        timeout=60,
    )
    assert resp.status_code == 200, f"presign_download_url: {resp.status_code} {resp.text[:300]}"
    url = resp.json().get("presigned_download_url")
    assert url and url.startswith(server.endpoint), f"expected a URL of the server itself, got {url!r}"
    return url, data, {}


def _byteranges(resp: requests.Response) -> list[tuple[str, bytes]]:
    """``[(Content-Range, bytes)]`` of a multipart/byteranges body."""
    m = re.search(r'boundary="?([^";]+)"?', resp.headers.get("Content-Type", ""))
    assert m, f"multipart answer without a boundary: {resp.headers}"
    delim = b"--" + m.group(1).encode()
    body = resp.content
    parts = []
    pos = body.find(delim)
    while pos != -1:
        pos += len(delim)
        if body[pos : pos + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", pos)
        assert head_end != -1, f"a part without headers: {body[pos:pos + 200]!r}"
        headers = body[pos:head_end].decode("latin-1")
        nxt = body.find(b"\r\n" + delim, head_end + 4)
        assert nxt != -1, "a part that never ends"
        cr = re.search(r"(?im)^content-range:\s*(.+?)\s*$", headers)
        parts.append((cr.group(1) if cr else "", body[head_end + 4 : nxt]))
        pos = body.find(delim, nxt)
    return parts


def _describe(resp: requests.Response) -> str:
    shown = resp.content[:200] if resp.status_code != 200 else f"<{len(resp.content)} bytes>".encode()
    return (
        f"status {resp.status_code}, Content-Range {resp.headers.get('Content-Range')!r}, "
        f"Content-Type {resp.headers.get('Content-Type')!r}, Content-Length {resp.headers.get('Content-Length')!r}, "
        f"body {shown!r}"
    )


def expect_partial(resp, data: bytes, first: int, last: int, what: str) -> None:
    n = len(data)
    want = f"bytes {first}-{last}/{n}"
    assert resp.status_code == 206 and resp.headers.get("Content-Range") == want, (
        f"{what}: expected 206 with Content-Range {want!r} (archive of {n} bytes); got {_describe(resp)}"
    )
    assert resp.content == data[first : last + 1], (
        f"{what}: 206 body is {len(resp.content)} bytes, not bytes {first}-{last} of the archive"
    )
    assert resp.headers.get("Content-Length") == str(last - first + 1), f"{what}: {_describe(resp)}"


def expect_whole(resp, data: bytes, what: str) -> None:
    assert resp.status_code == 200, f"{what}: expected 200 with the whole archive (Range ignored); got {_describe(resp)}"
    assert "Content-Range" not in resp.headers, f"{what}: a 200 must not carry Content-Range: {_describe(resp)}"
    assert resp.content == data, f"{what}: 200 body is {len(resp.content)} bytes, the archive has {len(data)}"


def expect_unsatisfiable(resp, data: bytes, what: str) -> None:
    want = f"bytes */{len(data)}"
    assert resp.status_code == 416 and resp.headers.get("Content-Range") == want, (
        f"{what}: expected 416 with Content-Range {want!r}; got {_describe(resp)}"
    )


def expect_whole_or_parts(resp, data: bytes, ranges: list[tuple[int, int]], what: str) -> None:
    """200 with everything, or 206 with exactly ``ranges`` (one part alone, or multipart/byteranges)."""
    n = len(data)
    if resp.status_code == 200:
        return expect_whole(resp, data, what)
    assert resp.status_code == 206, f"{what}: expected 200 (whole) or 206 (the ranges {ranges}); got {_describe(resp)}"
    if len(ranges) == 1 and "multipart/byteranges" not in resp.headers.get("Content-Type", ""):
        return expect_partial(resp, data, *ranges[0], what)
    assert "multipart/byteranges" in resp.headers.get("Content-Type", ""), (
        f"{what}: a 206 for several ranges must be multipart/byteranges; got {_describe(resp)}"
    )
    got = _byteranges(resp)
    want = [(f"bytes {a}-{b}/{n}", data[a : b + 1]) for a, b in ranges]
    assert [g[0] for g in got] == [w[0] for w in want] and all(g[1] == w[1] for g, w in zip(got, want)), (
        f"{what}: multipart parts {[(g[0], len(g[1])) for g in got]} differ from {[(w[0], len(w[1])) for w in want]}"
    )


def expect_whole_or_unsatisfiable(resp, data: bytes, what: str) -> None:
    if resp.status_code == 200:
        return expect_whole(resp, data, what)
    expect_unsatisfiable(resp, data, what)


# name -> (Range header as a function of the length, check)
CASES = {
    "first bytes": (lambda n: "bytes=0-99", lambda r, d, w: expect_partial(r, d, 0, 99, w)),
    "first byte": (lambda n: "bytes=0-0", lambda r, d, w: expect_partial(r, d, 0, 0, w)),
    "last byte": (lambda n: f"bytes={n - 1}-{n - 1}", lambda r, d, w: expect_partial(r, d, len(d) - 1, len(d) - 1, w)),
    "middle": (lambda n: "bytes=1000-1999", lambda r, d, w: expect_partial(r, d, 1000, 1999, w)),
    "open end": (lambda n: "bytes=1000-", lambda r, d, w: expect_partial(r, d, 1000, len(d) - 1, w)),
    "from zero": (lambda n: "bytes=0-", lambda r, d, w: expect_partial(r, d, 0, len(d) - 1, w)),
    "suffix": (lambda n: "bytes=-500", lambda r, d, w: expect_partial(r, d, len(d) - 500, len(d) - 1, w)),
    "suffix longer than the archive": (
        lambda n: f"bytes=-{n + 1000}",
        lambda r, d, w: expect_partial(r, d, 0, len(d) - 1, w),
    ),
    "last-pos past the end": (lambda n: f"bytes=100-{n + 5000}", lambda r, d, w: expect_partial(r, d, 100, len(d) - 1, w)),
    "unit in capitals": (lambda n: "Bytes=0-9", lambda r, d, w: expect_partial(r, d, 0, 9, w)),
    "first-pos at the end": (lambda n: f"bytes={n}-", lambda r, d, w: expect_unsatisfiable(r, d, w)),
    "past the end": (lambda n: f"bytes={n + 10}-{n + 20}", lambda r, d, w: expect_unsatisfiable(r, d, w)),
    "zero-length suffix": (lambda n: "bytes=-0", lambda r, d, w: expect_unsatisfiable(r, d, w)),
    "reversed": (lambda n: "bytes=500-100", lambda r, d, w: expect_whole(r, d, w)),
    "garbage": (lambda n: "bytes=abc-def", lambda r, d, w: expect_whole(r, d, w)),
    "no range at all": (lambda n: "bytes=", lambda r, d, w: expect_whole(r, d, w)),
    "no dash": (lambda n: "bytes=100", lambda r, d, w: expect_whole(r, d, w)),
    "negative first-pos": (lambda n: "bytes=-5-10", lambda r, d, w: expect_whole(r, d, w)),
    "unknown unit": (lambda n: "items=0-9", lambda r, d, w: expect_whole(r, d, w)),
    "not a range header value": (lambda n: "\u00e9\u00e9\u00e9", lambda r, d, w: expect_whole(r, d, w)),
    "multi-range": (
        lambda n: "bytes=0-9,100-199",
        lambda r, d, w: expect_whole_or_parts(r, d, [(0, 9), (100, 199)], w),
    ),
    "multi-range with one unsatisfiable": (
        lambda n: f"bytes=0-9,{n + 10}-{n + 20}",
        lambda r, d, w: expect_whole_or_parts(r, d, [(0, 9)], w),
    ),
    "multi-range none satisfiable": (
        lambda n: f"bytes={n}-,{n + 10}-{n + 20}",
        lambda r, d, w: expect_whole_or_unsatisfiable(r, d, w),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "backend,how",
    [("local", "proxy"), ("pg_s3", "proxy"), ("local", "presigned")],
    ids=["local-proxy download", "pg_s3-proxy download", "local-presigned download URL"],
)
def test_range_request(shared, backend, how, case):
    server = shared(backend, "presigned_url" if how == "presigned" else None)
    url, data, headers = _serve(server, how)
    make_header, check = CASES[case]
    value = make_header(len(data))
    resp = requests.get(url, headers={**headers, "Range": value.encode("utf-8").decode("latin-1")}, timeout=120)
    check(resp, data, f"Range: {value!r} on {backend} ({how}), archive of {len(data)} bytes")

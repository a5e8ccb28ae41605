"""API latency at 10,000 bentos in 100 repositories, on SQLite and on PostgreSQL (issue 11).

Run through ``bench/api`` (it builds the release server and picks the venv). For each backend
pair a fresh release server is started and bootstrapped, then 100 bento repositories with 100
versions each (labels ``team`` and ``stage`` on every version) are written straight into its
database in one transaction (the rows the API would write, without the API's cost). Then:

* the query plan of each list query the server sends is recorded in ``bench/EXPLAIN.md``
  (SQLite: ``EXPLAIN QUERY PLAN``; PostgreSQL: ``EXPLAIN ANALYZE``, after ``ANALYZE``);
* each endpoint is loaded with ``wrk`` (16 connections, ``BENCH_SECONDS`` seconds, 10 % of it
  warm-up first) and p50, p99 and requests per second are printed: first as served (a repeated
  read is answered from the answers the server keeps until the next write), then with the
  server restarted with ``YATAI_READ_CACHE_MB=0``, so that every read runs its queries (the cost
  of the first read after a write);
* the table, with the date and the machine, is appended to ``bench/RESULTS.md``.

Needs ``wrk`` (``apt-get install wrk``), PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust)
with ``psql``, and an S3 server at ``YATAI_TEST_S3_ENDPOINT`` for the PostgreSQL + S3 server
(none of its objects are touched). ``BENCH_BACKENDS=local`` or ``=pg_s3`` runs one pair only.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import servers  # noqa: E402  (the e2e helpers are reused, not copied)

N_REPOS = int(os.environ.get("BENCH_REPOS", "100"))
PER_REPO = int(os.environ.get("BENCH_VERSIONS", "100"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = 16
GOAL_P99_MS = 10.0
GOAL_RPS = 2000.0

MANIFEST = json.dumps(
    {
        "service": "service:Svc",
        "name": "svc",
        "size_bytes": 123456,
        "bentoml_version": "1.4.0",
        "python_version": "3.11",
        "apis": [{"name": "predict", "input_type": "JSON", "output_type": "JSON"}],
        "models": [],
        "runners": [],
        "labels": {},
    }
)


def repo_name(i: int) -> str:
    return f"svc-{i:03d}"


def version_name(j: int) -> str:
    return f"v{j:04d}"


@dataclass(frozen=True)
class Case:
    """One endpoint under load."""

    name: str
    path: str


# The middle repository and version, a label that 10 % of the versions carry (spread over every
# repository), and a search that matches 10 repositories.
CASES = [
    Case("get bento", f"/api/v1/bento_repositories/{repo_name(N_REPOS // 2)}/bentos/{version_name(PER_REPO // 2)}"),
    Case("list bentos, page of 20", "/api/v1/bentos?start=0&count=20"),
    Case("list bentos, label filter", "/api/v1/bentos?start=0&count=20&q=label:stage=prod"),
    Case("list bentos, search", "/api/v1/bentos?start=0&count=20&search=svc-04"),
    Case("list bento repositories, page of 20", "/api/v1/bento_repositories?start=0&count=20"),
    Case("list bento repositories, label filter", "/api/v1/bento_repositories?start=0&count=20&q=label:team=t3"),
    Case("list bento repositories, search", "/api/v1/bento_repositories?start=0&count=20&search=svc-04"),
]

# The peer, loaded in the same run on the same server: the cheapest authenticated request (the
# token's one lookup, no registry read). Its req/s is what this machine gives a request at all
# today, so each case's share of it reads the same on a fast machine and on a slow one, where the
# absolute goal moves with the machine (issue 11's table, when the goal was set: this peer at
# 14k req/s, so 2,000 req/s was a share of 0.14).
PEER = Case("peer: current user (token lookup only)", "/api/v1/auth/current")


def q(s: str) -> str:
    """A SQL string literal (the values are the benchmark's own)."""
    return "'" + s.replace("'", "''") + "'"


def seed_sql(org: str, user: str) -> str:
    """Portable SQL (SQLite and PostgreSQL) writing the repositories, versions and labels."""
    base = 1_700_000_000_000_000  # microseconds
    out = ["BEGIN;"]
    repos, versions, labels = [], [], []
    for i in range(N_REPOS):
        ruid = f"benchrepo{i:05d}"
        created = base + i * 1_000_000
        repos.append(f"({q(ruid)}, {q(org)}, 'bento', {q(repo_name(i))}, 'bench', {q(user)}, {created})")
        for j in range(PER_REPO):
            vuid = f"benchver{i:05d}{j:05d}"
            at = base + (j * N_REPOS + i) * 1_000_000
            versions.append(
                f"({q(vuid)}, {q(ruid)}, 'bento', {q(version_name(j))}, '', {q(MANIFEST)}, {at}, 'success', "
                f"{at}, {at}, 'pending', {q('bentos/' + org + '/' + repo_name(i) + '/' + version_name(j) + '/x')}, "
                f"1000, 'ab', {q(user)}, {at})"
            )
            labels.append(f"({q(vuid)}, {q(org)}, 'team', 't{i % 10}')")
            labels.append(f"({q(vuid)}, {q(org)}, 'stage', {q('prod' if j % 10 == 0 else 'dev')})")

    def chunks(rows: list[str], n: int = 500):
        for k in range(0, len(rows), n):
            yield rows[k : k + n]

    for c in chunks(repos):
        out.append(
            "INSERT INTO repositories (uid, organization_uid, kind, name, description, creator_uid, created_at) VALUES "
            + ",\n".join(c)
            + ";"
        )
    for c in chunks(versions):
        out.append(
            "INSERT INTO versions (uid, repository_uid, kind, version, description, manifest, build_at, upload_status, "
            "upload_started_at, upload_finished_at, image_build_status, object_key, archive_size, archive_sha256, "
            "creator_uid, created_at) VALUES " + ",\n".join(c) + ";"
        )
    for c in chunks(labels):
        out.append(
            "INSERT INTO labels (resource_uid, organization_uid, label_key, label_value) VALUES " + ",\n".join(c) + ";"
        )
    out.append("COMMIT;")
    return "\n".join(out)


VERSION_COLUMNS = (
    "v.uid, v.repository_uid, v.kind, v.version, v.description, v.manifest, v.build_at, v.upload_status, "
    "v.upload_finished_reason, v.upload_started_at, v.upload_finished_at, v.image_build_status, v.object_key, "
    "v.archive_size, v.archive_sha256, v.creator_uid, v.created_at, v.updated_at, v.push_manifest, "
    "v.push_claimed_at, v.push_claim_holder"
)
REPO_COLUMNS = "r.uid, r.organization_uid, r.kind, r.name, r.description, r.creator_uid, r.created_at, r.updated_at"
NEWEST = "v.build_at DESC, v.created_at DESC, v.uid DESC"


def list_queries(org: str, engine: str) -> list[tuple[str, str]]:
    """The parts of the statements the server sends for the list cases (crates/store/src/db/versions.rs
    and repositories.rs), with the benchmark's values written in: (what, SQL). The server sends each
    list as one statement: the page as a common table expression, the total as a scalar subquery
    beside it, and the rows shown beside the page (repositories, labels, image builds, users) as JSON
    aggregates over it (crates/store/src/db/related.rs); each part keeps the plan shown here."""
    o = q(org)
    scope = f"r.uid = v.repository_uid AND r.organization_uid = {o} AND r.kind = 'bento'"
    page_from = f"FROM versions v CROSS JOIN repositories r WHERE {scope}"
    repos_from = f"FROM repositories r WHERE r.organization_uid = {o} AND r.kind = 'bento'"
    # The page of a label is read from the index of labelled versions the triggers keep
    # (crates/store/src/db/counts.rs), in list order.
    labelled = (
        f"x.organization_uid = {o} AND x.kind = 'bento' AND x.label_key = 'stage' AND x.label_value = 'prod' "
        "AND v.uid = x.version_uid"
    )
    search = "(r.name LIKE '%svc-04%' ESCAPE '\\' OR v.version LIKE '%svc-04%' ESCAPE '\\')"
    # PostgreSQL's page of a search keeps one plan, its filter written as a CASE (versions.rs).
    page_search = f"(CASE WHEN {search} THEN TRUE ELSE FALSE END)" if engine == "PostgreSQL" else search
    # A search's total: the counts of the repositories whose name matches, and the versions of the
    # others whose string matches, found from the needle's rarest trigram the triggers keep
    # (counts.rs `trigram_search`; the server writes `v.uid = ANY(ARRAY(...))` on PostgreSQL).
    each = " UNION ALL ".join(f"SELECT lower('{t}') AS g" for t in sorted({"svc-04"[i : i + 3] for i in range(4)}))
    rarest = (
        f"SELECT x.g FROM ({each}) x ORDER BY (SELECT COUNT(*) FROM (SELECT 1 FROM _yatai_version_trigrams u "
        f"WHERE u.organization_uid = {o} AND u.kind = 'bento' AND u.trigram = x.g LIMIT 500) y), x.g LIMIT 1"
    )
    trigrams = (
        f"SELECT t.version_uid FROM _yatai_version_trigrams t WHERE t.organization_uid = {o} AND t.kind = 'bento' "
        f"AND t.trigram = ({rarest}) UNION SELECT t.version_uid FROM _yatai_version_trigrams t "
        f"WHERE t.organization_uid = {o} AND t.kind = 'bento' AND t.trigram = ''"
    )
    search_total = (
        "SELECT (SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) FROM repositories r JOIN _yatai_version_counts c "
        f"ON c.repository_uid = r.uid WHERE r.organization_uid = {o} AND r.kind = 'bento' AND r.name LIKE '%svc-04%' ESCAPE '\\') "
        f"+ (SELECT COUNT(*) FROM versions v CROSS JOIN repositories r WHERE v.uid IN ({trigrams}) AND {scope} "
        "AND NOT (r.name LIKE '%svc-04%' ESCAPE '\\') AND v.version LIKE '%svc-04%' ESCAPE '\\')"
    )
    # The totals kept by triggers (crates/store/src/db/counts.rs), summed over the repositories.
    kept_total = (
        "SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) FROM repositories r JOIN _yatai_version_counts c "
        f"ON c.repository_uid = r.uid WHERE r.organization_uid = {o} AND r.kind = 'bento'"
    )
    kept_label_total = (
        "SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) FROM repositories r JOIN _yatai_label_counts c "
        "ON c.repository_uid = r.uid AND c.label_key = 'stage' AND c.label_value = 'prod' "
        f"WHERE r.organization_uid = {o} AND r.kind = 'bento'"
    )
    repo_label = (
        "EXISTS (SELECT 1 FROM _yatai_label_counts c WHERE c.repository_uid = r.uid "
        "AND c.label_key = 'team' AND c.label_value = 't3' AND c.n > 0)"
    )
    page = "LIMIT 20 OFFSET 0"
    some_repos = ", ".join(q(f"benchrepo{i:05d}") for i in range(min(20, N_REPOS)))
    return [
        ("list bentos: total", kept_total),
        ("list bentos: page", f"SELECT {VERSION_COLUMNS} {page_from} ORDER BY {NEWEST} {page}"),
        ("list bentos, label filter: total", kept_label_total),
        (
            "list bentos, label filter: page",
            f"SELECT {VERSION_COLUMNS} FROM _yatai_labelled_versions x CROSS JOIN versions v CROSS JOIN repositories r "
            f"WHERE {scope} AND {labelled} ORDER BY x.build_at DESC, x.created_at DESC, x.version_uid DESC {page}",
        ),
        ("list bentos, search: total", search_total),
        ("list bentos, search: page", f"SELECT {VERSION_COLUMNS} {page_from} AND {page_search} ORDER BY {NEWEST} {page}"),
        (
            "list bentos of one repository: total",
            f"{kept_total} AND r.uid = 'benchrepo00042'",
        ),
        (
            "list bentos of one repository: page",
            f"SELECT {VERSION_COLUMNS} {page_from} AND v.repository_uid = 'benchrepo00042' ORDER BY {NEWEST} {page}",
        ),
        (
            "list bentos, sorted by name: page",
            f"SELECT {VERSION_COLUMNS} FROM repositories r CROSS JOIN versions v WHERE {scope} "
            f"ORDER BY r.name, {NEWEST} {page}",
        ),
        ("list bento repositories: total", f"SELECT COUNT(*) {repos_from}"),
        ("list bento repositories: page", f"SELECT {REPO_COLUMNS} {repos_from} ORDER BY r.created_at DESC, r.name {page}"),
        ("list bento repositories, label filter: total", f"SELECT COUNT(*) {repos_from} AND {repo_label}"),
        (
            "list bento repositories, label filter: page",
            f"SELECT {REPO_COLUMNS} {repos_from} AND {repo_label} ORDER BY r.created_at DESC, r.name {page}",
        ),
        (
            "list bento repositories, search: page",
            f"SELECT {REPO_COLUMNS} {repos_from} AND r.name LIKE '%svc-04%' ESCAPE '\\' "
            f"ORDER BY r.created_at DESC, r.name {page}",
        ),
        (
            "list bento repositories: latest version and count of a page of 20",
            f"SELECT {VERSION_COLUMNS}, COALESCE((SELECT c.n FROM _yatai_version_counts c WHERE c.repository_uid = r.uid), 0) AS n_versions "
            "FROM repositories r JOIN versions v ON v.uid = (SELECT w.uid FROM versions w WHERE w.repository_uid = r.uid "
            f"ORDER BY w.build_at DESC, w.created_at DESC, w.uid DESC LIMIT 1) WHERE r.uid IN ({some_repos})",
        ),
    ]


# -- the database, reached directly ----------------------------------------------------------------
class Database:
    """The server's database: SQLite file of the local pair or the PostgreSQL database of pg_s3."""

    def __init__(self, server: servers.YataiServer):
        self.pg = server.settings.get("PG_DATABASE")
        self.sqlite = None if self.pg else server.data_dir / "yatai.db"

    @property
    def engine(self) -> str:
        return "PostgreSQL" if self.pg else "SQLite"

    def psql(self, sql: str) -> str:
        proc = subprocess.run(
            ["psql", "-h", servers.PG["host"], "-p", servers.PG["port"], "-U", servers.PG["user"], "-d", self.pg]
            + ["-v", "ON_ERROR_STOP=1", "-qAt"],
            input=sql,
            text=True,
            capture_output=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def script(self, sql: str) -> None:
        if self.pg:
            self.psql(sql)
        else:
            with sqlite3.connect(self.sqlite, timeout=30, isolation_level=None) as c:
                c.executescript(sql)

    def one(self, sql: str) -> str:
        if self.pg:
            return self.psql(sql).strip().splitlines()[0]
        with sqlite3.connect(self.sqlite, timeout=30) as c:
            return str(c.execute(sql).fetchone()[0])

    def settle(self) -> None:
        """What a database that has been running a while has: PostgreSQL's autovacuum has set the
        visibility map and gathered statistics. SQLite is left as the server leaves it (it runs
        no ANALYZE), so its plans are the ones the server gets."""
        if self.pg:
            self.psql("VACUUM ANALYZE;")

    def plan(self, sql: str) -> str:
        if self.pg:
            return self.psql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql).rstrip()
        with sqlite3.connect(self.sqlite, timeout=30) as c:
            rows = c.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[node] - 1) + detail)
        return "\n".join(lines)

    def timed(self, sql: str, n: int = 20) -> float:
        """Mean milliseconds of the statement, run in the engine (no HTTP, no pool)."""
        if self.pg:
            out = self.psql("\n".join(["\\timing on"] + [sql + ";"] * n))
            times = [float(m) for m in re.findall(r"Time: ([0-9.]+) ms", out)]
            return sum(times[1:]) / max(1, len(times) - 1)
        with sqlite3.connect(self.sqlite, timeout=30) as c:
            c.execute(sql).fetchall()
            t = time.perf_counter()
            for _ in range(n):
                c.execute(sql).fetchall()
            return (time.perf_counter() - t) / n * 1000


def seed(server: servers.YataiServer) -> Database:
    db = Database(server)
    org = db.one("SELECT uid FROM organizations ORDER BY created_at LIMIT 1")
    user = db.one("SELECT uid FROM users WHERE name = 'admin'")
    t = time.monotonic()
    db.script(seed_sql(org, user))
    db.settle()
    n = db.one("SELECT COUNT(*) FROM versions")
    print(f"  seeded {n} bentos in {N_REPOS} repositories in {time.monotonic() - t:.1f} s", file=sys.stderr)
    db.org = org  # type: ignore[attr-defined]
    return db


# -- load ------------------------------------------------------------------------------------------
@dataclass
class Load:
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int


def parse_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read the latency {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, token: str, seconds: float) -> Load:
    """``wrk`` with 16 connections on 2 threads; p50/p99 from its latency distribution."""
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "-H", f"X-YATAI-API-TOKEN: {token}", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    return Load(parse_ms(pct["50"]), parse_ms(pct["99"]), rps, errors)


def check_answers(server: servers.YataiServer) -> None:
    """Every case answers 200 with what the seed wrote, before it is timed."""
    for case in [PEER, *CASES]:
        resp = server.api_with_token("GET", case.path)
        assert resp.status_code == 200, f"{case.path}: {resp.status_code} {resp.text[:300]}"
    body = server.api_with_token("GET", "/api/v1/bento_repositories?start=0&count=20").json()
    assert body["total"] == N_REPOS, body["total"]
    first = body["items"][0]
    assert first["name"] == repo_name(N_REPOS - 1), first["name"]
    assert first["latest_bento"]["version"] == version_name(PER_REPO - 1), first["latest_bento"]
    assert first["n_bentos"] == PER_REPO, first["n_bentos"]
    body = server.api_with_token("GET", "/api/v1/bentos?start=0&count=20&q=label:stage=prod").json()
    assert body["total"] == N_REPOS * ((PER_REPO + 9) // 10), body["total"]


# -- one backend pair --------------------------------------------------------------------------------
BACKENDS = {"local": "SQLite + directory", "pg_s3": "PostgreSQL + S3"}


# How the reads are answered: "kept", the server as shipped (a repeated read is answered from the
# answers kept until the next write), and "fresh" (YATAI_READ_CACHE_MB=0: every read runs its
# queries, as the first read after a write does).
MODES = ("kept", "fresh")


def run_backend(backend: str, work: Path) -> tuple[dict[tuple[str, str], Load], str]:
    print(f"bench/api: {BACKENDS[backend]}: starting a release server", file=sys.stderr)
    server = servers.start_server(backend, None, work / backend)
    try:
        db = seed(server)
        check_answers(server)
        explain = [f"## {db.engine} ({BACKENDS[backend]})", ""]
        for what, sql in list_queries(db.org, db.engine):  # type: ignore[attr-defined]
            ms = db.timed(sql)
            explain += [f"### {what} ({ms:.2f} ms in the engine)", "", "```sql", sql, "```", "", "```", db.plan(sql), "```", ""]
        results = {}
        for mode in MODES:
            if mode == "fresh":
                # The same data, every read running its queries.
                server.env["YATAI_READ_CACHE_MB"] = "0"
                server.crash_and_restart()
            for case in [PEER, *CASES]:
                url = server.endpoint + case.path
                wrk(url, server.token, max(1.0, SECONDS / 10))  # warm-up
                results[(case.name, mode)] = load = wrk(url, server.token, SECONDS)
                print(
                    f"  {case.name} ({mode}): p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, {load.rps:,.0f} req/s"
                    + (f", {load.errors} errors" if load.errors else ""),
                    file=sys.stderr,
                )
        return results, "\n".join(explain)
    finally:
        server.stop()


# -- report --------------------------------------------------------------------------------------------
def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()[:2])
    return f"{cpus} CPUs{', ' + model if model else ''}, load {load}, {platform.machine()}"


def table(results: dict[str, dict[tuple[str, str], Load]]) -> str:
    lines = [
        "| case | backend | answers | p50 ms | p99 ms | req/s | share of peer req/s | goal (p99 < 10 ms, >= 2,000 req/s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in [PEER, *CASES]:
        for mode in MODES:
            for backend, by_case in results.items():
                r = by_case[(case.name, mode)]
                peer = by_case[(PEER.name, mode)]
                ok = r.p99_ms < GOAL_P99_MS and r.rps >= GOAL_RPS and not r.errors
                errors = f" ({r.errors} errors)" if r.errors else ""
                verdict = "(peer)" if case is PEER else "met" if ok else "not met"
                share = f"{r.rps / peer.rps:.2f}" if peer.rps > 0 else "-"
                lines.append(
                    f"| {case.name} | {BACKENDS[backend]} | {mode} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.rps:,.0f} | "
                    f"{share} | {verdict}{errors} |"
                )
    return "\n".join(lines)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench/api: wrk is missing: apt-get install wrk")
    backends = [b for b in os.environ.get("BENCH_BACKENDS", "local pg_s3").replace(",", " ").split()]
    results: dict[str, dict[tuple[str, str], Load]] = {}
    explains: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="yatai-bench-api-") as tmp:
        for backend in backends:
            results[backend], explains[backend] = run_backend(backend, Path(tmp))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"API latency, {N_REPOS * PER_REPO:,} bentos in {N_REPOS} repositories, {CONNECTIONS} connections, wrk"
    report = (
        f"### {when}, {title} ({machine()})\n\n{table(results)}\n\n"
        "answers: kept = the server as shipped (a repeated read is answered from what it keeps until the next "
        "write, from any replica); fresh = YATAI_READ_CACHE_MB=0, every read runs its queries (the first read "
        "after a write); share of peer req/s = the case's req/s over the peer's, same backend and answers "
        "(the peer: the current user, one token lookup; in issue 11's table, when the goal was set, it ran 14k req/s, "
        "so 2,000 was a share of 0.14).\n"
    )
    print("\n" + report)
    with open(REPO / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write("\n" + report)
    write_explain(explains, when)


def write_explain(explains: dict[str, str], when: str) -> None:
    """Rewrites ``bench/EXPLAIN.md`` with the plans of the pairs just run, each headed with the
    time of the run; a pair not run keeps its section from the file (``BENCH_BACKENDS=pg_s3``
    once wiped SQLite's)."""
    path = REPO / "bench" / "EXPLAIN.md"
    kept: dict[str, str] = {}
    if path.exists():
        for section in re.split(r"^(?=## )", path.read_text("utf-8"), flags=re.M):
            for backend, label in BACKENDS.items():
                if section.startswith("## ") and f"({label})" in section.splitlines()[0]:
                    kept[backend] = section.rstrip("\n") + "\n"
    sections = []
    for backend in BACKENDS:
        if backend in explains:
            heading, _, rest = explains[backend].partition("\n")
            sections.append(f"{heading}, run {when}\n{rest}")
        elif backend in kept:
            sections.append(kept[backend])
    path.write_text(
        "# Query plans of the list queries\n\n"
        f"Written by `bench/api` (each section heading says when) on its seeded database ({N_REPOS * PER_REPO:,} bentos in {N_REPOS} "
        "repositories; 10 % of the versions carry `stage=prod`, each repository one `team` label of 10), "
        "for the parts of the one statement the server sends per list (`crates/store/src/db/versions.rs`, "
        "`repositories.rs`: the page, its total, and for repositories the newest version and count of each). "
        "SQLite: `EXPLAIN QUERY PLAN` without statistics (the server runs no `ANALYZE`); "
        "PostgreSQL: `EXPLAIN ANALYZE` after `VACUUM ANALYZE` (what autovacuum leaves). "
        "The time in each heading is the statement alone, run in the engine.\n\n"
        + "\n".join(sections),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()

"""Fuzzing the API from its own OpenAPI document with schemathesis, authenticated with a real
API token of the site admin, a bounded number of cases per operation and a fixed seed.

Pass: zero 5xx answers, zero answers that break the response schemas the document declares,
and every operation of the document exercised (schemathesis reports an operation it cannot
generate requests for, e.g. a path parameter the document does not declare, as an error).

The command is ``fuzz_command()`` below; to replay a run by hand against a running server::

    source scripts/lib/services.sh && ensure_schemathesis
    $YATAI_TEST_SCHEMATHESIS run http://127.0.0.1:PORT/api/v1/openapi.json \\
        --checks not_a_server_error,response_schema_conformance --phases examples,coverage,fuzzing \\
        --max-examples 25 --seed 90210 --workers 1 -H "X-YATAI-API-TOKEN: TOKEN"
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

SEED = 90210
MAX_EXAMPLES = int(os.environ.get("YATAI_FUZZ_EXAMPLES", "25"))
CHECKS = "not_a_server_error,response_schema_conformance"
PHASES = "examples,coverage,fuzzing"


def schemathesis() -> str:
    st = os.environ.get("YATAI_TEST_SCHEMATHESIS", "")
    if not (st and Path(st).is_file()):
        pytest.fail(
            f"schemathesis not found (YATAI_TEST_SCHEMATHESIS={st!r}). Install it, pinned and cached, with\n"
            "  source scripts/lib/services.sh && ensure_schemathesis\n"
            "(scripts/test --reliability-only does it).",
            pytrace=False,
        )
    return st


def fuzz_command(st: str, endpoint: str, token: str, junit: Path) -> list[str]:
    return [
        st, "run", f"{endpoint}/api/v1/openapi.json",
        "--checks", CHECKS, "--phases", PHASES,
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "60", "--no-shrink",
        "-H", f"X-YATAI-API-TOKEN: {token}", "-H", "X-Bentoml-Version: 1.4.40",
        "--report", "junit", "--report-junit-path", str(junit),
        "--suppress-health-check", "all", "--output-truncate", "true",
    ]  # fmt: skip


def test_fuzz_openapi(fresh, backend, tmp_path):
    st = schemathesis()
    # A server of its own: schemathesis reuses values it read in answers (token uids, names)
    # and may legitimately delete its own API token or change the organization; no later test
    # may depend on what it leaves.
    server = fresh(backend)
    doc = requests.get(f"{server.endpoint}/api/v1/openapi.json", timeout=60).json()
    operations = {(m.upper(), p) for p, item in doc.get("paths", {}).items() for m in item if m in ("get", "post", "put", "patch", "delete")}
    tags = {t for item in doc["paths"].values() for op in item.values() if isinstance(op, dict) for t in op.get("tags", [])}
    assert {"bentos", "models"} <= tags, f"the OpenAPI document lacks the registry routes (tags {sorted(tags)})"

    junit = tmp_path / "junit.xml"
    argv = fuzz_command(st, server.endpoint, server.token, junit)
    # Run in the test's own directory: schemathesis keeps a cache (.schemathesis/) where it runs.
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=1800, cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )  # fmt: skip
    shown = " ".join("'X-YATAI-API-TOKEN: <admin token>'" if server.token in a else a for a in argv)
    out = proc.stdout[-8000:] + proc.stderr[-3000:]
    assert junit.is_file(), f"schemathesis wrote no report (exit {proc.returncode})\n$ {shown}\n{out}"
    # One <testcase> per operation and phase; the same problem shows up once per phase.
    problems: dict[str, set[str]] = {}
    ran = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        ran.add(case.get("name", ""))
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            text = " ".join((bad.get("message") or bad.text or "").split())[:500]
            problems.setdefault(case.get("name", "?"), set()).add(text)
    not_run = sorted(f"{m} {p}" for m, p in operations if f"{m} {p}" not in ran)
    listing = "\n".join(f"  {op}: {' | '.join(sorted(texts))}" for op, texts in sorted(problems.items()))
    assert proc.returncode == 0 and not problems and not not_run, (
        f"schemathesis on {backend} (seed {SEED}, {MAX_EXAMPLES} cases per operation and phase, {len(operations)} "
        f"operations): exit {proc.returncode}, {len(problems)} operations with failures or errors, "
        f"{len(not_run)} not exercised {not_run[:10]}\n{listing}\n$ {shown}\n--- schemathesis output (tail) ---\n{out}"
    )

"""The operations commands end to end: dashboard, metrics, cleanup, maintain, and the
thin scripts, against a live database (typer's CliRunner or a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from unified_db import UnifiedDB
from unified_db.cli import app

from .ops_features import Written, expected_after_cleanup, expected_before_cleanup, fill, remaining
from .ops_sweep import CREATE, FILL

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

# A process that works and flushes its figures, until its stdin closes.
LOAD = textwrap.dedent("""
    import asyncio, sys
    from unified_db import UnifiedDB
    async def main():
        async with UnifiedDB(sys.argv[1], stats_flush_interval=0.1, max_size=3) as db:
            for _ in range(5):
                await db.get_connection_diagnostics()
            await asyncio.sleep(0.3)
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)
    asyncio.run(main())
""")


def env() -> dict[str, str]:
    # The caller's UNIFIED_DB_* settings stay out of the commands, but for the statement
    # cache: behind PgBouncer it must stay 0 (named prepared statements break there).
    keep = {"UNIFIED_DB_STATEMENT_CACHE_SIZE"}
    out = {k: v for k, v in os.environ.items() if not k.startswith("UNIFIED_DB_") or k in keep}
    out["PYTHONPATH"] = str(ROOT)
    out["COLUMNS"] = "160"
    return out


def start_load(dsn: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD, dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.communicate("", timeout=60)
    assert proc.returncode == 0


def sql(dsn: str, statement: str, args: tuple = ()) -> object:
    """The first value of *statement*'s first row (None for a statement without rows)."""

    async def go() -> object:
        con = await asyncpg.connect(dsn)
        try:
            return await con.fetchval(statement, *args)
        finally:
            await con.close()

    return asyncio.run(go())


def test_dashboard_once_and_json_show_a_live_process(db_dsn: str):
    w, _ = fill_features(db_dsn)
    proc = start_load(db_dsn)
    try:
        once = runner.invoke(app, ["dashboard", "--once", "--dsn", db_dsn])
        as_json = runner.invoke(app, ["dashboard", "--json", "--dsn", db_dsn])
    finally:
        stop(proc)
    assert once.exit_code == 0, once.output
    for text in ("1 instance(s) reporting", "get_connection_diagnostics", "Recommendations", "pool in use"):
        assert text in once.output
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert len(data["instances"]) == 1 and data["instances"][0]["pool"]["max_size"] == 3
    (op,) = [o for o in data["operations"] if o["operation"] == "get_connection_diagnostics"]
    assert op["count"] == 5 and op["feature"] == "pool"
    assert data["namespace"] == "default" and "recommendations" in data
    # the feature tables, as the features wrote them
    assert data["cache_entries"] == 5 and data["active_sessions"] == 4
    assert (data["snapshots"], data["snapshot_bytes"]) == (5, w.snapshot_bytes)
    assert (data["workflow_runs_pending"], data["workflow_runs_running"]) == (1, 1)
    expired = {t["name"]: t["expired"] for t in data["tables"]}
    assert (expired["cache_entries"], expired["sessions"], expired["workflow_runs"]) == (3, 1, 2)
    assert "cache entries (live)" in once.output and "workflow runs pending / running" in once.output
    assert "snapshots / bytes" in once.output


def test_dashboard_of_another_namespace_sees_no_instance(db_dsn: str):
    proc = start_load(db_dsn)
    try:
        result = runner.invoke(app, ["dashboard", "--json", "--dsn", db_dsn, "--namespace", "other"])
    finally:
        stop(proc)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["instances"] == [] and data["operations"] == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_endpoint_is_scraped_over_http(db_dsn: str):
    fill_features(db_dsn)
    load = start_load(db_dsn)
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-c", "from unified_db.cli import main; main()", "metrics", "--dsn", db_dsn,
         "--port", str(port), "--addr", "127.0.0.1", "--interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                assert exporter.poll() is None, exporter.communicate()
                time.sleep(0.2)
        assert body is not None
    finally:
        exporter.terminate()
        exporter.communicate(timeout=30)
        stop(load)
    samples = {s.name: s for fam in text_string_to_metric_families(body) for s in fam.samples}
    assert samples["unified_db_instances"].value == 1
    assert samples["unified_db_pool_max_size"].value == 3
    assert samples["unified_db_operations_total"].labels["operation"] == "get_connection_diagnostics"
    assert samples["unified_db_operations_total"].value == 5
    assert samples["unified_db_operation_seconds_count"].value == 5
    assert "unified_db_table_bytes" in samples and "unified_db_requests_total" in samples
    assert samples["unified_db_cache_entries"].value == 5
    assert samples["unified_db_sessions_active"].value == 4
    assert samples["unified_db_snapshots"].value == 5
    expired = {
        s.labels["table"]: s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
        if s.name == "unified_db_expired_rows"
    }
    assert expired == {"cache_entries": 3, "sessions": 1, "workflow_runs": 2}


def cleanup_cmd(db_dsn: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from unified_db.cli import main; main()", "cleanup", "--dsn", db_dsn,
         "--db-class", "tests.integration.ops_sweep:SweepDB", *extra],
        capture_output=True, text=True, env=env(), timeout=120,
    )  # fmt: skip


@pytest.mark.needs_owner("creates its own table (ops_sweep) for its setup")
def test_cleanup_command_exit_codes_dry_run_and_summary(db_dsn: str):
    sql(db_dsn, CREATE)
    sql(db_dsn, FILL, args=("default", 40, -60))
    dry = cleanup_cmd(db_dsn, "--dry-run")
    assert dry.returncode == 3, dry.stdout + dry.stderr
    # the test step and the four the features declare, which find nothing here
    assert "would delete 40 row(s) in 5 step(s)" in dry.stdout
    assert sql(db_dsn, "SELECT count(*) FROM public.ops_sweep") == 40
    real = cleanup_cmd(db_dsn, "--batch-size", "7", "--step", "ops_sweep")
    assert real.returncode == 3 and "deleted 40 row(s) in 1 step(s)" in real.stdout
    again = cleanup_cmd(db_dsn)
    assert again.returncode == 0 and "deleted 0 row(s) in 5 step(s)" in again.stdout
    sql(db_dsn, FILL, args=("default", 2, -60))
    assert cleanup_cmd(db_dsn, "--exit-zero").returncode == 0
    assert sql(db_dsn, "SELECT count(*) FROM public.ops_sweep") == 0


RETENTION_ENV = {"UNIFIED_DB_MEMORY_RETENTION_KEEP_LAST": "1", "UNIFIED_DB_MEMORY_RETENTION_DAYS": "1"}


def real_cleanup(db_dsn: str, *extra: str) -> subprocess.Popen[str]:
    """`unified-db cleanup --json` of the plain UnifiedDB, with snapshot retention set."""
    return subprocess.Popen(
        [sys.executable, "-c", "from unified_db.cli import main; main()", "cleanup", "--dsn", db_dsn,
         "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env(), **RETENTION_ENV},
    )  # fmt: skip


def report_of(proc: subprocess.Popen[str]) -> dict[str, int]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 3), out + err
    return {s["step"]: s["deleted"] for s in json.loads(out)["steps"] if not s["error"]}


def fill_features(db_dsn: str, namespace: str = "default", **counts: int) -> tuple[Written, dict]:
    async def go() -> tuple[Written, dict]:
        async with UnifiedDB(db_dsn, namespace=namespace, max_size=8) as db:
            w = await fill(db, **counts)
            return w, await remaining(db)

    return asyncio.run(go())


def rows_of(db_dsn: str, namespace: str = "default") -> dict:
    async def go() -> dict:
        async with UnifiedDB(db_dsn, namespace=namespace, max_size=1) as db:
            return await remaining(db)

    return asyncio.run(go())


def test_cleanup_command_deletes_the_expired_rows_of_each_feature(db_dsn: str):
    w, before = fill_features(db_dsn)
    theirs, their_rows = fill_features(db_dsn, "other")
    assert before == expected_before_cleanup(w)
    expected = {"cache": 3, "sessions": 1, "snapshots": 2, "workflow_runs": 2}
    dry = real_cleanup(db_dsn, "--dry-run")
    assert report_of(dry) == expected and dry.returncode == 3
    assert rows_of(db_dsn) == before  # a dry run deletes nothing
    real = real_cleanup(db_dsn)
    assert report_of(real) == expected and real.returncode == 3
    assert rows_of(db_dsn) == expected_after_cleanup(w)  # exactly the expired rows went
    assert rows_of(db_dsn, "other") == their_rows == expected_before_cleanup(theirs)
    again = real_cleanup(db_dsn)
    assert report_of(again) == dict.fromkeys(expected, 0) and again.returncode == 0

    # Two commands at once: every expired row is deleted by exactly one of them.
    w2, _ = fill_features(db_dsn, cache_live=0, cache_expired=3000, sessions_live=0, sessions_expired=400,
                          runs_old=150)  # fmt: skip
    procs = [real_cleanup(db_dsn, "--batch-size", "50") for _ in range(2)]
    reports = [report_of(p) for p in procs]
    assert {k: reports[0][k] + reports[1][k] for k in expected} == {
        "cache": 3000,
        "sessions": 400,
        "snapshots": 2,  # a's v4 and v5 (aged); a's v3 and b's are younger than a day
        "workflow_runs": 150,
    }
    left = rows_of(db_dsn)
    assert left["cache_entries"] == w.cache_live and left["sessions"] == w.sessions_live
    assert left["workflow_runs"] == w.runs_kept | w2.runs_kept
    assert left["memory_snapshots"] == w.snapshots_kept | w2.snapshots_kept
    assert rows_of(db_dsn, "other") == their_rows


@pytest.mark.needs_owner("creates its own table (ops_sweep) for its setup")
def test_two_concurrent_cleanup_commands_delete_each_row_once(db_dsn: str):
    sql(db_dsn, CREATE)
    sql(db_dsn, FILL, args=("default", 4000, -60))
    sql(db_dsn, FILL, args=("other", 100, -60))
    cmd = [sys.executable, "-c", "from unified_db.cli import main; main()", "cleanup", "--dsn", db_dsn,
           "--db-class", "tests.integration.ops_sweep:SweepDB", "--batch-size", "50", "--json"]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())]
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode in (0, 3) for p in procs), outs
    totals = [json.loads(o[0])["total"] for o in outs]
    assert sum(totals) == 4000
    assert sql(db_dsn, "SELECT count(*) FROM public.ops_sweep WHERE namespace = 'other'") == 100
    assert sql(db_dsn, "SELECT count(*) FROM public.ops_sweep WHERE namespace = 'default'") == 0


@pytest.mark.needs_owner("creates its own table (ops_sweep) for its setup")
def test_cleanup_command_rejects_bad_input_and_deletes_nothing(db_dsn: str):
    sql(db_dsn, CREATE)
    sql(db_dsn, FILL, args=("default", 5, -60))
    assert cleanup_cmd(db_dsn, "--batch-size", "0").returncode == 2
    unknown = cleanup_cmd(db_dsn, "--step", "nope")
    assert unknown.returncode == 2 and "unknown --step ['nope']" in unknown.stdout
    bad_class = runner.invoke(app, ["cleanup", "--dsn", db_dsn, "--db-class", "json:loads"])
    assert bad_class.exit_code == 2 and "not a subclass" in bad_class.output
    assert sql(db_dsn, "SELECT count(*) FROM public.ops_sweep") == 5


def test_cleanup_with_nothing_expired_exits_zero(db_dsn: str):
    result = runner.invoke(app, ["cleanup", "--dsn", db_dsn])
    assert result.exit_code == 0, result.output
    for step in ("cache", "sessions", "snapshots", "workflow_runs"):
        assert step in result.output
    assert "deleted 0 row(s) in 4 step(s)" in result.output


def test_maintain_vacuums_the_churn_tables(db_dsn: str):
    result = runner.invoke(app, ["maintain", "--vacuum", "--dsn", db_dsn])
    assert result.exit_code == 0, result.output
    assert "instance_stats" in result.output and "VACUUM" in result.output
    assert runner.invoke(app, ["maintain", "--dsn", db_dsn]).exit_code == 2


def test_thin_scripts_run_the_same_commands(empty_dsn: str):
    init = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "initialize.py"), "--dsn", empty_dsn],
        capture_output=True, text=True, env=env(), timeout=120,
    )  # fmt: skip
    assert init.returncode == 0 and "schema ready" in init.stdout, init.stderr
    assert sql(empty_dsn, "SELECT count(*) FROM unified_db.schema_migrations") >= 1
    dash = subprocess.run(
        [sys.executable, str(ROOT / "monitoring" / "postgresql_performance_dashboard.py"), "--json",
         "--dsn", empty_dsn],
        capture_output=True, text=True, env=env(), timeout=120,
    )  # fmt: skip
    assert dash.returncode == 0 and json.loads(dash.stdout)["instances"] == [], dash.stderr
    clean = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cleanup.py"), "--dsn", empty_dsn],
        capture_output=True, text=True, env=env(), timeout=120,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_the_diagnostics_example_in_docs_runs(db_dsn: str):
    text = (ROOT / "docs" / "operations.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True, text=True, env={**env(), "UNIFIED_DB_DSN": db_dsn}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ended " in result.stdout and result.stdout.strip().splitlines()[-1].endswith(" 0")

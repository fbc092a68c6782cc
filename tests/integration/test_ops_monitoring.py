"""Dashboard figures, Prometheus metrics and the cleanup runner against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from unified_db import InvalidInputError, UnifiedDB
from unified_db.monitoring.collect import Collector
from unified_db.monitoring.dashboard import render, run_dashboard
from unified_db.monitoring.maintenance import run_cleanup, vacuum
from unified_db.monitoring.metrics import UnifiedDBCollector, snapshot_families

from .ops_sweep import CREATE, FILL, SweepDB

# The tables other features own, in the shape their issues give (not on this branch).
FEATURE_TABLES = """
CREATE TABLE __schema__.cache_entries (namespace text NOT NULL, key text NOT NULL,
    expires_at timestamptz, size_bytes int NOT NULL DEFAULT 0, PRIMARY KEY (namespace, key));
CREATE TABLE __schema__.sessions (namespace text NOT NULL, id text PRIMARY KEY, user_id text,
    expires_at timestamptz NOT NULL, absolute_expires_at timestamptz NOT NULL);
CREATE TABLE __schema__.memory_snapshots (namespace text NOT NULL, id bigserial PRIMARY KEY,
    agent_id text NOT NULL, size_bytes int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO __schema__.cache_entries SELECT 'default', 'live' || g, now() + interval '1 hour', 10
    FROM generate_series(1, 5) g;
INSERT INTO __schema__.cache_entries SELECT 'default', 'old' || g, now() - interval '1 hour', 10
    FROM generate_series(1, 3) g;
INSERT INTO __schema__.cache_entries SELECT 'other', 'old' || g, now() - interval '1 hour', 10
    FROM generate_series(1, 7) g;
INSERT INTO __schema__.sessions SELECT 'default', 's' || g, 'u', now() + interval '1 hour',
    now() + interval '8 hours' FROM generate_series(1, 4) g;
INSERT INTO __schema__.sessions
    VALUES ('default', 'gone', 'u', now() - interval '1 s', now() + interval '1 h');
INSERT INTO __schema__.sessions VALUES ('other', 'o1', 'u', now() + interval '1 h', now() + interval '1 h');
INSERT INTO __schema__.memory_snapshots (namespace, agent_id, size_bytes)
    VALUES ('default', 'a', 1000), ('default', 'a', 2000), ('other', 'b', 5);
ANALYZE __schema__.cache_entries;
"""


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_snapshot_reads_other_features_tables_when_present(db: UnifiedDB, other_ns: UnifiedDB):
    bare = await Collector(db).collect()
    assert bare.active_sessions is None and bare.snapshots is None
    assert [t.name for t in bare.tables] == ["instance_stats"]

    await db._execute(FEATURE_TABLES)
    snap = await Collector(db).collect()
    assert snap.active_sessions == 4
    assert (snap.snapshots, snap.snapshot_bytes) == (2, 3000)
    tables = {t.name: t for t in snap.tables}
    assert set(tables) == {"cache_entries", "sessions", "memory_snapshots", "instance_stats"}
    assert tables["cache_entries"].expired == 3 and tables["sessions"].expired == 1
    assert tables["memory_snapshots"].expired is None
    assert tables["cache_entries"].total_bytes > 0
    # Row counts come from the statistics, which backends report up to a second late.
    for _ in range(40):
        tables = {t.name: t for t in (await Collector(db).collect()).tables}
        if tables["cache_entries"].live_rows == 15:
            break
        await asyncio.sleep(0.1)
    assert tables["cache_entries"].live_rows == 15

    theirs = await Collector(other_ns).collect()
    assert theirs.active_sessions == 1 and (theirs.snapshots, theirs.snapshot_bytes) == (1, 5)
    assert {t.name: t.expired for t in theirs.tables}["cache_entries"] == 7


async def test_snapshot_sums_flushed_instances_of_the_namespace_only(db_dsn: str, db: UnifiedDB):
    async with (
        UnifiedDB(db_dsn, stats_flush_interval=0.1, max_size=2) as a,
        UnifiedDB(db_dsn, stats_flush_interval=0.1, max_size=3) as b,
        UnifiedDB(db_dsn, stats_flush_interval=0.1, namespace="other") as elsewhere,
    ):
        for _ in range(3):
            await a.get_connection_diagnostics()
        await b.get_connection_diagnostics()
        await elsewhere.get_connection_diagnostics()
        await asyncio.sleep(0.35)
        snap = await Collector(db).collect()
        assert {i.instance_id for i in snap.instances} == {a.instance_id, b.instance_id}
        (row,) = [r for r in snap.operations if r.operation == "get_connection_diagnostics"]
        assert row.count == 4 and row.feature == "pool"
        assert snap.pool.max_size == 5
        assert snap.histograms["get_connection_diagnostics"]["count"] == 4
        mine = await Collector(db, include_self=True).collect()
        assert db.instance_id in {i.instance_id for i in mine.instances}
        frame = render(snap)
        assert frame.renderables  # renders without error


async def test_in_process_collector_is_scraped_over_http(db: UnifiedDB):
    db._stats.incr("cache_hits", 7)
    await db.get_connection_diagnostics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UnifiedDBCollector(db))
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        url = f"http://127.0.0.1:{port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }
    ns = (("namespace", "default"),)
    assert samples[("unified_db_cache_hits_total", ns)] == 7
    op = (("namespace", "default"), ("operation", "get_connection_diagnostics"))
    assert samples[("unified_db_operations_total", op)] == 1
    assert samples[("unified_db_operation_seconds_count", op)] == 1
    inf = (("le", "+Inf"), ("namespace", "default"), ("operation", "get_connection_diagnostics"))
    assert samples[("unified_db_operation_seconds_bucket", inf)] == 1
    assert samples[("unified_db_pool_max_size", ns)] == 10
    assert samples[("unified_db_requests_total", ns)] >= 1


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_snapshot_families_cover_database_figures(db: UnifiedDB):
    await db._execute(FEATURE_TABLES)
    names = {m.name for m in snapshot_families(await Collector(db).collect())}
    for expected in (
        "unified_db_instances",
        "unified_db_table_bytes",
        "unified_db_expired_rows",
        "unified_db_sessions_active",
        "unified_db_snapshot_bytes",
        "unified_db_operation_seconds",
        "unified_db_cache_hits",  # exposed as unified_db_cache_hits_total
    ):
        assert expected in names


async def sweep_setup(db: UnifiedDB, expired: int, live: int) -> None:
    await db._execute(CREATE)
    await db._execute(FILL, "default", expired, -60)
    await db._execute(FILL, "default", live, 3600)
    await db._execute(FILL, "other", expired, -60)


async def count(db: UnifiedDB, namespace: str) -> int:
    return await db._fetchval("SELECT count(*) FROM public.ops_sweep WHERE namespace = $1", namespace)


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_two_concurrent_cleanups_delete_each_row_once(db_dsn: str):
    async with SweepDB(db_dsn) as one, SweepDB(db_dsn) as two:
        await sweep_setup(one, expired=3000, live=10)
        dry = await run_cleanup(one, dry_run=True)
        assert dry.total == 3000 and await count(one, "default") == 3010
        first, second = await asyncio.gather(
            run_cleanup(one, batch_size=100), run_cleanup(two, batch_size=100)
        )
        assert not first.failed and not second.failed
        assert first.total + second.total == 3000
        assert first.total > 0 and second.total > 0  # both did work, neither waited for the other
        assert await count(one, "default") == 10 and await count(one, "other") == 3000
        again = await run_cleanup(one)
        assert again.total == 0 and [s.step for s in again.steps] == ["ops_sweep"]


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_cleanup_rejects_bad_arguments_before_deleting(db_dsn: str):
    async with SweepDB(db_dsn) as db:
        await sweep_setup(db, expired=5, live=0)
        for kwargs in ({"batch_size": 0}, {"batch_size": "10"}, {"steps": ["nope"]}):
            with pytest.raises(InvalidInputError):
                await run_cleanup(db, **kwargs)
        assert await count(db, "default") == 5


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_cleanup_without_steps_does_nothing(db: UnifiedDB):
    report = await run_cleanup(db)
    assert report.steps == [] and report.total == 0 and not report.failed


@pytest.mark.needs_owner("VACUUM and ANALYZE are the owner's")
async def test_vacuum_runs_on_the_churn_tables_that_exist(db: UnifiedDB):
    await db._execute(FEATURE_TABLES)
    await db._execute("DELETE FROM __schema__.cache_entries WHERE namespace = 'other'")
    done = await vacuum(db)
    assert [r.table for r in done] == ["cache_entries", "sessions", "memory_snapshots", "instance_stats"]
    vacuumed = await db._fetchval(
        "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables"
        " WHERE relid = to_regclass('unified_db.cache_entries')"
    )
    assert vacuumed is True
    assert [r.table for r in await vacuum(db, analyze_only=True)][0] == "cache_entries"


async def test_scrapes_during_load_read_the_figures_on_the_loop(db: UnifiedDB):
    registry = CollectorRegistry(auto_describe=False)
    collector = UnifiedDBCollector(db)
    assert collector.loop is asyncio.get_running_loop()
    registry.register(collector)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            await db.get_connection_diagnostics()

    await db.get_connection_diagnostics()  # so the first scrape has a sample
    tasks = [asyncio.create_task(worker()) for _ in range(8)]
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        bodies = []
        for _ in range(10):
            bodies.append(
                await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
            )
            await asyncio.sleep(0.05)  # let the workers run between scrapes
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        server.shutdown()
        server.server_close()
        thread.join(5)
    counts = [
        s.value
        for body in bodies
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
        if s.name == "unified_db_operations_total"
    ]
    assert len(counts) == 10 and counts == sorted(counts) and counts[-1] > counts[0]


async def test_live_dashboard_refreshes_frames(db_dsn: str, db: UnifiedDB):
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True)
    async with UnifiedDB(db_dsn, stats_flush_interval=0.1, max_size=2) as watched:
        await watched.get_connection_diagnostics()
        await asyncio.sleep(0.25)
        last = await run_dashboard(db, console, interval=0.2, frames=3)
    assert len(last.instances) == 1 and last.pool.max_size == 2
    text = buffer.getvalue()
    assert "get_connection_diagnostics" in text and "Recommendations" in text

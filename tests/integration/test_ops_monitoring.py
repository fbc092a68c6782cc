"""Dashboard figures, Prometheus metrics and the cleanup runner against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from unified_db import InvalidInputError, UnifiedDB
from unified_db.extensions._pool_logic import CHURN_TABLES, WATCHED_TABLES
from unified_db.monitoring.collect import Collector
from unified_db.monitoring.dashboard import render, run_dashboard
from unified_db.monitoring.maintenance import cleanup_steps, run_cleanup, vacuum
from unified_db.monitoring.metrics import UnifiedDBCollector, snapshot_families

from .ops_features import expected_after_cleanup, expected_before_cleanup, fill, remaining
from .ops_sweep import CREATE, FILL, SweepDB

HAS_VECTOR_ITEMS = "SELECT to_regclass('__schema__.vector_items') IS NOT NULL"


async def test_snapshot_reads_the_feature_tables(db: UnifiedDB, other_ns: UnifiedDB):
    bare = await Collector(db).collect()
    assert (bare.cache_entries, bare.active_sessions, bare.snapshots, bare.snapshot_bytes) == (0, 0, 0, 0)
    assert (bare.workflow_runs_pending, bare.workflow_runs_running) == (0, 0)
    # vector_items is created with the first pgvector collection (or by `init --app-role`):
    # listed only when it is there
    items = await db._fetchval(HAS_VECTOR_ITEMS)
    assert [t.name for t in bare.tables] == [t for t in WATCHED_TABLES if items or t != "vector_items"]

    w = await fill(db)
    await fill(other_ns, cache_live=2, cache_expired=7, sessions_live=1, sessions_expired=0, runs_old=0)
    snap = await Collector(db).collect()
    assert snap.cache_entries == len(w.cache_live) == 5  # one without TTL, four with
    assert snap.active_sessions == len(w.sessions_live) == 4
    assert (snap.snapshots, snap.snapshot_bytes) == (5, w.snapshot_bytes)
    assert (snap.workflow_runs_pending, snap.workflow_runs_running) == (1, 1)
    tables = {t.name: t for t in snap.tables}
    assert tables["cache_entries"].expired == 3 and tables["sessions"].expired == 1
    assert tables["workflow_runs"].expired == 2  # finished 40 days ago, retention 30 days
    assert tables["memory_snapshots"].expired is None and tables["personas"].expired is None
    assert tables["cache_entries"].total_bytes > 0 and tables["sessions"].total_bytes > 0
    # Row counts come from the statistics: ANALYZE sets them (backends report theirs late).
    await vacuum(db, analyze_only=True)
    for _ in range(40):
        tables = {t.name: t for t in (await Collector(db).collect()).tables}
        if tables["cache_entries"].live_rows == 17:
            break
        await asyncio.sleep(0.1)
    assert tables["cache_entries"].live_rows == 17  # the table's rows: both namespaces

    theirs = await Collector(other_ns).collect()
    assert (theirs.cache_entries, theirs.active_sessions, theirs.snapshots) == (2, 1, 5)
    assert {t.name: t.expired for t in theirs.tables}["cache_entries"] == 7
    assert {t.name: t.expired for t in theirs.tables}["workflow_runs"] == 0


async def test_snapshot_lists_vector_items_once_a_pgvector_collection_exists(db: UnifiedDB):
    available = await db._fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
    )
    if not available:
        pytest.skip("this server has no pgvector")
    listed = "vector_items" in {t.name for t in (await Collector(db).collect()).tables}
    assert listed is await db._fetchval(HAS_VECTOR_ITEMS)  # made beforehand by `init --app-role`
    await db.vector_collection_create("docs", 4)
    tables = {t.name: t for t in (await Collector(db).collect()).tables}
    assert tables["vector_items"].total_bytes > 0 and tables["vector_items"].expired is None


@pytest.mark.needs_owner("drops a feature table")
async def test_snapshot_leaves_out_a_missing_feature_table(db: UnifiedDB):
    await db.session_create("u")
    await db._execute("DROP TABLE __schema__.sessions")
    snap = await Collector(db).collect()
    assert "sessions" not in {t.name for t in snap.tables}
    assert snap.active_sessions is None and snap.cache_entries is None and snap.snapshots is None


async def test_snapshot_reads_hits_and_operations_of_the_real_features(db_dsn: str, db: UnifiedDB):
    async with UnifiedDB(db_dsn, stats_flush_interval=0.1, cache_local_size=100) as app:
        await app.cache_set("k", 1)
        assert await app.cache_get("missing") is None
        reads = 1
        # Re-read until the near-cache answers (a read racing the set's invalidation is not cached).
        while app._stats.counters.get("local_hits", 0) == 0 and reads < 50:
            assert await app.cache_get("k") == 1
            reads += 1
            await asyncio.sleep(0.02)
        session = await app.session_create("u")
        assert await app.session_get_by_token(session.token) is not None
        await app.memory_snapshot_create("a", {"n": 1})
        await asyncio.sleep(0.35)
        snap = await Collector(db).collect()
    ops = {r.operation: r for r in snap.operations}
    assert ops["cache_get"].count == reads and ops["cache_get"].feature == "cache"
    assert ops["session_get_by_token"].count == 1 and ops["session_get_by_token"].feature == "sessions"
    assert ops["memory_snapshot_create"].feature == "memory"
    assert snap.histograms["cache_get"]["count"] == reads
    assert snap.counters["cache_hits"] == reads - 1 and snap.counters["cache_misses"] == 1
    assert snap.cache_hit_ratio == (reads - 1) / reads  # near-cache hits count as hits
    assert snap.counters["local_hits"] >= 1
    assert snap.counters["local_hits"] + snap.counters["local_misses"] == reads
    assert snap.near_cache_hit_ratio == snap.counters["local_hits"] / reads
    assert (snap.active_sessions, snap.snapshots) == (1, 1)


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


async def test_snapshot_families_cover_database_figures(db: UnifiedDB):
    w = await fill(db)
    families = {m.name: m for m in snapshot_families(await Collector(db).collect())}
    for expected in (
        "unified_db_instances",
        "unified_db_table_bytes",
        "unified_db_expired_rows",
        "unified_db_operation_seconds",
        "unified_db_cache_hits",  # exposed as unified_db_cache_hits_total
    ):
        assert expected in families

    def value(name: str, **labels: str) -> float:
        (v,) = [s.value for s in families[name].samples if s.labels == {"namespace": "default", **labels}]
        return v

    assert value("unified_db_cache_entries") == 5
    assert value("unified_db_sessions_active") == 4
    assert value("unified_db_snapshots") == 5
    assert value("unified_db_snapshot_bytes") == w.snapshot_bytes
    assert value("unified_db_workflow_runs", status="pending") == 1
    assert value("unified_db_workflow_runs", status="running") == 1
    assert value("unified_db_expired_rows", table="cache_entries") == 3
    assert value("unified_db_expired_rows", table="sessions") == 1
    assert value("unified_db_expired_rows", table="workflow_runs") == 2


#: The cleanup steps the merged features declare, in the order `unified-db cleanup` runs them.
REAL_STEPS = ["cache", "sessions", "snapshots", "workflow_runs"]


async def sweep_setup(db: UnifiedDB, expired: int, live: int) -> None:
    await db._execute(CREATE)
    await db._execute(FILL, "default", expired, -60)
    await db._execute(FILL, "default", live, 3600)
    await db._execute(FILL, "other", expired, -60)


async def count(db: UnifiedDB, namespace: str) -> int:
    return await db._fetchval("SELECT count(*) FROM public.ops_sweep WHERE namespace = $1", namespace)


@pytest.mark.needs_owner("creates its own table (ops_sweep) for its setup")
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
        # the test step first (the subclass comes first in the MRO), then the features' own
        assert [s.step for s in again.steps] == ["ops_sweep", *REAL_STEPS]
        assert again.total == 0 and not again.failed


@pytest.mark.needs_owner("creates its own table (ops_sweep) for its setup")
async def test_cleanup_rejects_bad_arguments_before_deleting(db_dsn: str):
    async with SweepDB(db_dsn) as db:
        await sweep_setup(db, expired=5, live=0)
        for kwargs in ({"batch_size": 0}, {"batch_size": "10"}, {"steps": ["nope"]}):
            with pytest.raises(InvalidInputError):
                await run_cleanup(db, **kwargs)
        assert await count(db, "default") == 5


async def test_cleanup_with_nothing_expired_deletes_nothing(db: UnifiedDB):
    assert cleanup_steps(db) == REAL_STEPS
    w = await fill(db, cache_expired=0, sessions_expired=0, runs_old=0)
    before = await remaining(db)
    report = await run_cleanup(db)
    assert [s.step for s in report.steps] == REAL_STEPS
    assert report.total == 0 and not report.failed
    assert (
        await remaining(db)
        == before
        == expected_after_cleanup(w)
        | {
            "memory_snapshots": w.snapshots_kept | w.snapshots_old  # no retention configured
        }
    )
    chosen = await run_cleanup(db, steps=[])
    assert chosen.steps == [] and chosen.total == 0


async def test_cleanup_of_the_real_features_deletes_exactly_the_expired_rows(db_dsn: str):
    retention = {"memory_retention_keep_last": 1, "memory_retention_days": 1}
    async with (
        UnifiedDB(db_dsn, **retention) as one,
        UnifiedDB(db_dsn, **retention) as two,
        UnifiedDB(db_dsn, namespace="other", **retention) as other,
    ):
        w = await fill(one, cache_expired=1500, sessions_expired=300, runs_old=120)
        theirs = await fill(other)
        their_rows = await remaining(other)
        assert await remaining(one) == expected_before_cleanup(w)
        dry = await run_cleanup(one, dry_run=True)
        assert {s.step: s.deleted for s in dry.steps} == {
            "cache": 1500,
            "sessions": 300,
            "snapshots": 2,
            "workflow_runs": 120,
        }
        assert await remaining(one) == expected_before_cleanup(w)  # a dry run deletes nothing
        first, second = await asyncio.gather(run_cleanup(one, batch_size=50), run_cleanup(two, batch_size=50))
        assert not first.failed and not second.failed
        by_step = {s.step: s.deleted for s in first.steps}
        for s in second.steps:
            by_step[s.step] += s.deleted
        assert by_step == {s.step: s.deleted for s in dry.steps}  # each row deleted once
        assert await remaining(one) == expected_after_cleanup(w)
        assert await remaining(other) == their_rows == expected_before_cleanup(theirs)
        assert (await run_cleanup(one)).total == 0


async def test_vacuum_runs_on_the_churn_tables(db: UnifiedDB):
    await db.cache_set_many({f"k{i}": i for i in range(200)})
    await db.cache_clear()
    done = await vacuum(db)
    assert [r.table for r in done] == list(CHURN_TABLES)
    # The owner, or the app role on PostgreSQL 17+ (MAINTAIN), vacuums; the app role on an
    # older server gets the ANALYZE only, and each table says so.
    vacuumed = all(r.skipped is None for r in done)
    assert vacuumed or all("VACUUM skipped" in r.skipped for r in done)
    row = await db._fetchrow(
        "SELECT last_vacuum IS NOT NULL AS vacuum, last_analyze IS NOT NULL AS analyze"
        " FROM pg_stat_user_tables WHERE relid = to_regclass('unified_db.cache_entries')"
    )
    assert (row["vacuum"], row["analyze"]) == (vacuumed, True)
    assert await db._fetchval("SELECT count(*) FROM __schema__.cache_entries") == 0
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

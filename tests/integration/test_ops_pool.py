"""Pool diagnostics against a real PostgreSQL: figures under load, live resizing,
backend diagnostics, idle termination, recommendations and the stats flush."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from unified_db import InvalidInputError, UnifiedDB
from unified_db.extensions import _pool_logic as logic
from unified_db.extensions.pool import ConnectionDiagnostic, PoolStats

from .. import pg


async def app_backends(admin_dsn: str, db_dsn: str, app: str = "unified_db") -> list[int]:
    con = await asyncpg.connect(admin_dsn)
    try:
        rows = await con.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            pg.urlsplit_db(db_dsn),
            app,
        )
        return [r["pid"] for r in rows]
    finally:
        await con.close()


async def test_pool_stats_report_the_pool_and_pop_stats_resets(db: UnifiedDB):
    for _ in range(5):
        await db._fetchval("SELECT 1")
    s = db.get_pool_stats()
    assert isinstance(s, PoolStats)
    assert (s.min_size, s.max_size) == (1, 10) and s.size >= 1
    assert s.idle + s.in_use == s.size and s.waiting == 0
    assert s.requests >= 5 and s.acquire_p50_ms is not None and s.acquire_p99_ms >= s.acquire_p50_ms
    popped = db.pop_stats()
    assert popped["requests_num"] >= 5
    after = db.get_pool_stats()
    assert after.requests == 0 and after.acquire_p50_ms is None


async def test_stats_under_load_from_50_tasks(db_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=4, acquire_timeout=30) as db:
        db.pop_stats()
        seen_waiting: list[int] = []
        seen_in_use: list[int] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                s = db.get_pool_stats()
                seen_waiting.append(s.waiting)
                seen_in_use.append(s.in_use)
                await asyncio.sleep(0.005)

        async def worker() -> None:
            for _ in range(4):
                await db._fetchval("SELECT pg_sleep(0.01)")
            await db.get_connection_diagnostics()

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(worker() for _ in range(50)))
        done.set()
        await sampler
        s = db.get_pool_stats()
        assert s.requests == 50 * 5 and s.request_errors == 0 and s.acquire_timeouts == 0
        assert max(seen_waiting) > 0  # 50 tasks on 4 connections must queue
        assert max(seen_in_use) <= 4 and s.max_size == 4
        assert s.acquire_p99_ms is not None and s.acquire_p99_ms > 1.0  # queued acquires are slow
        ext = await db.get_extended_pool_stats()
        op = ext.operations["get_connection_diagnostics"]
        assert op.count == 50 and op.errors == 0 and op.p50_ms <= op.p99_ms
        assert ext.counters["requests_num"] >= 250
        assert ext.backends.total >= 1 and ext.backends.states.get("active", 0) >= 1


@pytest.mark.needs_session("counts this pool's backends in pg_stat_activity (the pooler's, behind PgBouncer)")
async def test_adjust_pool_size_up_and_down_under_load_fails_no_query(db_dsn: str, admin_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=3, acquire_timeout=30) as db:
        stop = asyncio.Event()
        errors: list[BaseException] = []
        counts = [0] * 20

        async def worker(i: int) -> None:
            while not stop.is_set():
                try:
                    if i % 2:
                        assert await db._fetchval("SELECT $1::int FROM pg_sleep(0.005)", i) == i
                    else:
                        async with db._transaction() as con:
                            await con.fetchval("SELECT pg_sleep(0.005)")
                    counts[i] += 1
                except BaseException as exc:  # noqa: BLE001 - the test collects every failure
                    errors.append(exc)

        tasks = [asyncio.create_task(worker(i)) for i in range(20)]
        await asyncio.sleep(0.2)
        grown = await db.adjust_pool_size(min_size=2, max_size=8)
        assert (grown.min_size, grown.max_size) == (2, 8)
        await asyncio.sleep(0.3)
        assert db.get_pool_stats().size > 3  # the bigger pool is used
        shrunk = await db.adjust_pool_size(max_size=2)
        assert (shrunk.min_size, shrunk.max_size) == (2, 2)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
        assert errors == []
        assert all(c > 0 for c in counts)
        s = db.get_pool_stats()
        assert s.size <= 2 and s.request_errors == 0 and s.connections_lost == 0
        # the retired pools' connections are closed on the server too
        assert len(await app_backends(admin_dsn, db_dsn)) <= 2


async def test_adjust_pool_size_rejects_bad_sizes_and_changes_nothing(db: UnifiedDB):
    before = db.get_pool_stats()
    for kwargs in ({}, {"min_size": -1}, {"max_size": 0}, {"min_size": 11}, {"max_size": "9"}):
        with pytest.raises(InvalidInputError):
            await db.adjust_pool_size(**kwargs)
    after = db.get_pool_stats()
    assert (after.min_size, after.max_size) == (before.min_size, before.max_size)
    assert db._pool is not None and await db._fetchval("SELECT 1") == 1


async def test_adjust_pool_size_to_the_same_size_keeps_the_pool(db: UnifiedDB):
    pool = db._pool
    s = await db.adjust_pool_size(min_size=1, max_size=10)
    assert db._pool is pool and s.max_size == 10


@pytest.mark.needs_session("lists this pool's backends in pg_stat_activity (the pooler's, behind PgBouncer)")
async def test_connection_diagnostics_list_this_application_only(db_dsn: str, admin_dsn: str):
    other = await asyncpg.connect(db_dsn, server_settings={"application_name": "someone_else"})
    try:
        async with UnifiedDB(db_dsn, min_size=3, max_size=3) as db:
            rows = await db.get_connection_diagnostics()
            assert all(isinstance(r, ConnectionDiagnostic) for r in rows)
            pids = {r.pid for r in rows}
            assert len(pids) == 3
            assert other.get_server_pid() not in pids
            assert pids == set(await app_backends(admin_dsn, db_dsn))
            me = [r for r in rows if r.state == "active"]
            assert len(me) == 1 and me[0].backend_age_s >= 0 and me[0].query_age_s >= 0
            assert all(r.ssl in (False, None) for r in rows)
    finally:
        await other.close()


@pytest.mark.needs_session("terminates this pool's backends (the pooler's, behind PgBouncer)")
async def test_terminate_idle_connections_spares_other_applications(db_dsn: str):
    mine = await asyncpg.connect(db_dsn, server_settings={"application_name": "unified_db"})
    theirs = await asyncpg.connect(db_dsn, server_settings={"application_name": "other_app"})
    try:
        async with UnifiedDB(db_dsn, min_size=1, max_size=2) as db:
            await asyncio.sleep(0.4)
            assert await db.terminate_idle_connections(idle_for=60) == 0  # none idle that long
            ended = await db.terminate_idle_connections(idle_for=0.2)
            assert ended >= 1
            await asyncio.sleep(0.1)
            assert await theirs.fetchval("SELECT 1") == 1
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                await mine.fetchval("SELECT 1")
            assert await db._fetchval("SELECT 1") == 1  # the pool replaced its own
    finally:
        await theirs.close()
        mine.terminate()


async def test_terminate_idle_connections_rejects_bad_input_and_ends_nothing(db: UnifiedDB, db_dsn: str):
    bystander = await asyncpg.connect(db_dsn, server_settings={"application_name": "unified_db"})
    try:
        await asyncio.sleep(0.2)
        for bad in (-1, float("nan"), "0", None, True):
            with pytest.raises(InvalidInputError, match="idle_for"):
                await db.terminate_idle_connections(idle_for=bad)
        assert await bystander.fetchval("SELECT 1") == 1
    finally:
        await bystander.close()


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_recommendations_from_live_figures(
    db: UnifiedDB, other_ns: UnifiedDB, db_dsn: str, monkeypatch
):
    monkeypatch.setattr(logic, "IDLE_IN_TX_SECONDS", 0.2)
    monkeypatch.setattr(logic, "EXPIRED_MIN_ROWS", 10)
    monkeypatch.setattr(logic, "DEAD_MIN_ROWS", 10)
    assert await other_ns.get_pool_recommendations() == []
    # Through the features: 50 cache entries and 20 sessions that expire at once, and 100
    # session rows deleted (dead tuples). One connection, so the deletes' statistics are
    # this backend's, flushed on demand instead of up to 10 s later.
    async with UnifiedDB(db_dsn, min_size=1, max_size=1) as writer:
        await writer.cache_set_many({f"k{i}": i for i in range(50)}, ttl=0.05)
        for i in range(20):
            await writer.session_create(f"u{i}", idle_timeout=0.05)
        gone = [await writer.session_create("churn") for _ in range(100)]
        assert await writer.session_bulk_delete([s.id for s in gone]) == 100
        await writer._execute("SELECT pg_stat_force_next_flush()")
    await asyncio.sleep(0.2)
    stuck = await asyncpg.connect(db_dsn, server_settings={"application_name": "unified_db"})
    try:
        await stuck.execute("BEGIN; SELECT 1")
        await asyncio.sleep(0.4)
        recs = await db.get_pool_recommendations()
    finally:
        await stuck.close()
    findings = " | ".join(r.finding for r in recs)
    assert "idle in transaction" in findings
    assert "cache_entries holds 50 expired rows" in findings
    assert "sessions holds 20 expired rows" in findings
    assert "sessions has 100 dead rows" in findings
    assert recs == sorted(recs, key=lambda r: ["critical", "warning", "info"].index(r.severity))
    # the other namespace has no expired rows of its own; dead rows are the shared table's
    theirs = " | ".join(r.finding for r in await other_ns.get_pool_recommendations())
    assert "expired" not in theirs and "sessions has 100 dead rows" in theirs


async def test_stats_flush_writes_this_instance_and_removes_it_on_close(db_dsn: str, db: UnifiedDB):
    async with UnifiedDB(db_dsn, stats_flush_interval=0.1, min_size=1, max_size=2) as flushing:
        await flushing.get_connection_diagnostics()
        await asyncio.sleep(0.35)
        row = await db._fetchrow(
            "SELECT namespace, pid, stats FROM __schema__.instance_stats WHERE instance_id = $1",
            flushing.instance_id,
        )
        assert row is not None and row["namespace"] == "default"
        stats = row["stats"]
        assert stats["stats"]["operations"]["get_connection_diagnostics"]["count"] == 1
        assert stats["pool"]["max_size"] == 2 and stats["interval"] == 0.1
        assert stats["histograms"]["get_connection_diagnostics"]["count"] == 1
    assert (
        await db._fetchval(
            "SELECT count(*) FROM __schema__.instance_stats WHERE instance_id = $1", flushing.instance_id
        )
        == 0
    )


async def test_stats_flush_is_off_by_default(db: UnifiedDB):
    assert db._component("stats_flush") is None
    assert await db._fetchval("SELECT count(*) FROM __schema__.instance_stats") == 0


async def test_default_pool_size_follows_cpus_and_server(db_dsn: str):
    async with UnifiedDB(db_dsn) as db:
        usable = await db._fetchval(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        s = db.get_pool_stats()
        assert (s.min_size, s.max_size) == db.settings.pool_sizes(server_max_connections=usable)


async def test_concurrent_resizes_apply_in_order(db: UnifiedDB):
    await asyncio.gather(db.adjust_pool_size(max_size=6), db.adjust_pool_size(max_size=3))
    s = db.get_pool_stats()
    assert s.max_size == 3 and await db._fetchval("SELECT 1") == 1

"""The server goes away: a clean 5 s outage, and a crash. Slow (``make test-reliability``).

Each test starts its own embedded server and stops it with ``pg_ctl``; the figures the
tests print (``-s``) are the ones in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import pytest

from unified_db import DatabaseUnavailableError, UnifiedDB

from . import durability
from .server import OwnServer

pytestmark = pytest.mark.slow

ACQUIRE_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0


@pytest.fixture
def server() -> Iterator[OwnServer]:
    srv = OwnServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.destroy()


def open_db(dsn: str, **settings) -> UnifiedDB:
    base = dict(
        min_size=2,
        max_size=4,
        acquire_timeout=ACQUIRE_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
        connect_timeout=1.0,
    )
    base.update(settings)
    return UnifiedDB(dsn, **base)


CREATE_LOG = "CREATE TABLE __schema__.rel_log (n int PRIMARY KEY)"


async def test_a_5s_outage_fails_fast_then_every_call_succeeds_after_restart(server: OwnServer):
    dsn = await server.create_database()
    async with open_db(dsn) as db:
        await db._execute(CREATE_LOG)
        await db._execute("INSERT INTO __schema__.rel_log VALUES (0)")

        await asyncio.to_thread(server.stop, "fast")
        budget = ACQUIRE_TIMEOUT + COMMAND_TIMEOUT
        outage_end = time.monotonic() + 5.0
        n = 0
        slowest = 0.0
        while time.monotonic() < outage_end:
            n += 1
            for call in (
                lambda: db._fetchval("SELECT count(*) FROM __schema__.rel_log"),
                lambda n=n: db._execute("INSERT INTO __schema__.rel_log VALUES ($1)", n),
                lambda n=n: _in_transaction(db, n),
            ):
                start = time.monotonic()
                with pytest.raises(DatabaseUnavailableError):
                    await call()
                took = time.monotonic() - start
                slowest = max(slowest, took)
                assert took <= budget + 0.5, f"a call during the outage took {took:.2f}s"
            health = await db.health()
            assert health.ok is False and health.error
            await asyncio.sleep(0.2)

        await asyncio.to_thread(server.start)
        restarted = time.monotonic()
        # Every call after the restart succeeds, and the first within 10 s.
        assert await asyncio.wait_for(db._fetchval("SELECT 1"), 10) == 1
        first = time.monotonic() - restarted
        for i in range(20):
            await db._execute("INSERT INTO __schema__.rel_log VALUES ($1)", 1000 + i)
            await _in_transaction(db, 2000 + i)
        assert await db._fetchval("SELECT count(*) FROM __schema__.rel_log") == 41
        assert (await db.health()).ok
        print(
            f"\noutage: {n} rounds of calls failed, slowest {slowest * 1000:.0f} ms "
            f"(budget {budget:.0f} s); first call after restart took {first * 1000:.0f} ms"
        )


async def _in_transaction(db: UnifiedDB, n: int) -> None:
    async with db._transaction() as con:
        await con.execute("INSERT INTO __schema__.rel_log VALUES ($1)", n)


async def test_a_crash_empties_unlogged_tables_and_keeps_every_committed_row(server: OwnServer):
    dsn = await server.create_database()
    schema = "unified_db"
    async with open_db(dsn, max_size=6) as db:
        # Stand-ins for the feature tables until they land: one of each kind.
        await db._execute(CREATE_LOG)
        await db._execute("CREATE UNLOGGED TABLE __schema__.rel_volatile (n int PRIMARY KEY)")
        await db._executemany("INSERT INTO __schema__.rel_volatile VALUES ($1)", [(i,) for i in range(500)])
        for write in durability.WRITERS.values():
            await write(db)

        # A writer commits one row per transaction until the crash and counts the
        # commits the server acknowledged.
        acked: list[int] = []
        stop = asyncio.Event()

        async def committer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    await db._execute("INSERT INTO __schema__.rel_log VALUES ($1)", n)
                except DatabaseUnavailableError:
                    return
                acked.append(n)

        task = asyncio.create_task(committer())
        await asyncio.sleep(1.0)
        persistence = await durability.table_persistence(dsn, schema)
        others = [t for t in persistence if t != "rel_log"]
        before = await durability.row_counts(dsn, schema, others)

        crash_at = time.monotonic()
        await asyncio.to_thread(server.stop, "immediate")
        stop.set()
        await asyncio.wait_for(task, 10)
        assert len(acked) > 10, "the writer did not get going before the crash"
        await asyncio.to_thread(server.start)
        await server.wait_ready()
        recovered = time.monotonic() - crash_at

        after = await durability.row_counts(dsn, schema, list(persistence))
        # Every acknowledged commit survived; at most the one in flight is extra.
        assert set(range(1, len(acked) + 1)) <= set(
            r["n"] for r in await db._fetch("SELECT n FROM __schema__.rel_log")
        )
        assert len(acked) <= after["rel_log"] <= len(acked) + 1
        durability.assert_crash_durability(
            before,
            {t: after[t] for t in others},
            {t: persistence[t] for t in others},
            frozenset({"rel_volatile"}),
        )
        # The same instance carries on: the unlogged table answers (empty), writes work.
        assert await db._fetchval("SELECT count(*) FROM __schema__.rel_volatile") == 0
        # The cache came back empty and serves misses; the features read their rows back.
        assert before["cache_entries"] > 0 and after["cache_entries"] == 0
        missing = object()
        assert await db.cache_get("crash:1", missing) is missing
        assert await db.cache_get_many(["crash:1", "crash:forever"]) == {}
        assert not await db.cache_exists("crash:forever")
        assert await db.cache_get_by_tags(["crash"]) == {}
        assert (await db.cache_info()).entries == 0
        await db.cache_set("crash:after", 1)
        assert await db.cache_get("crash:after") == 1
        assert len(await db.session_list(active_only=True, limit=100)) == 20
        assert (await db.memory_snapshot_latest("agent-0")).state == {"step": 18}
        assert (await db.persona_get("crash-4")).description == "second version"
        assert (await db.persona_get_default()).name == "crash-0"
        runs = await db.workflow_list(name="crash", limit=50)
        assert sorted(r.status for r in runs) == ["pending"] * 5 + ["running"] * 5
        await db._execute("INSERT INTO __schema__.rel_volatile VALUES (1)")
        assert (await db.health()).ok
        print(f"\ncrash: {len(acked)} commits acknowledged, all kept; server back after {recovered:.1f} s")


async def test_the_near_cache_is_flushed_during_an_outage_and_its_listener_reconnects(server: OwnServer):
    dsn = await server.create_database()
    async with (
        open_db(dsn, cache_local_size=100) as reader,
        open_db(dsn, cache_publish_invalidations=True) as writer,
    ):
        svc = reader._component("nearcache")
        assert svc is not None and await svc.wait_available(5)
        pid = svc.backend_pid
        await writer.cache_set("k", "v1")
        # The writer's invalidation of "k" may reach the reader after its first read and
        # (rightly) keep that read out of L1: read until L1 holds the value.
        deadline = time.monotonic() + 2
        while not svc.cache.get("cache", "k")[0]:
            assert await reader.cache_get("k") == "v1"
            assert time.monotonic() < deadline, "the value did not reach L1"
            await asyncio.sleep(0.01)

        await asyncio.to_thread(server.stop, "fast")
        outage_end = time.monotonic() + 5.0
        deadline = time.monotonic() + 3
        while svc.available:
            assert time.monotonic() < deadline, "the lost listener was not noticed"
            await asyncio.sleep(0.01)
        flushed_after = 5.0 - (outage_end - time.monotonic())
        # Flushed at once: during the outage a read fails rather than serve L1's copy.
        assert len(svc.cache) == 0
        while time.monotonic() < outage_end:
            start = time.monotonic()
            with pytest.raises(DatabaseUnavailableError):
                await reader.cache_get("k")
            assert time.monotonic() - start <= ACQUIRE_TIMEOUT + COMMAND_TIMEOUT + 0.5
            assert not svc.available and len(svc.cache) == 0
            await asyncio.sleep(0.2)

        await asyncio.to_thread(server.start)
        restarted = time.monotonic()
        # Changed behind the library's back (no notification): L1 must not have kept v1.
        con = await asyncpg.connect(dsn)
        try:
            await con.execute("UPDATE unified_db.cache_entries SET value = $1 WHERE key = 'k'", b'"v2"')
        finally:
            await con.close()
        assert await asyncio.wait_for(reader.cache_get("k"), 10) == "v2"
        assert await svc.wait_available(10), "the near-cache listener did not reconnect"
        back = time.monotonic() - restarted
        assert svc.reconnects >= 1 and svc.backend_pid not in (None, pid)
        # Coherent again: a value cached after the reconnect is dropped by the next write.
        assert await reader.cache_get("k") == "v2"
        await writer.cache_set("k", "v3")
        deadline = time.monotonic() + 2
        while await reader.cache_get("k") != "v3":
            assert time.monotonic() < deadline, "L1 kept a stale value after the reconnect"
            await asyncio.sleep(0.01)
        print(
            f"\nnear-cache: listener loss noticed after {flushed_after * 1000:.0f} ms, L1 flushed; "
            f"listening again {back * 1000:.0f} ms after the restart ({svc.reconnects} reconnect attempts)"
        )

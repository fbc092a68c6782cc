"""Faults the base must survive without help: killed backends, a full pool, slow statements
and mass cancellation. Quick: each runs in a fresh database of the session's server."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import pytest

from unified_db import (
    DatabaseUnavailableError,
    OperationTimeoutError,
    PoolTimeoutError,
    UnifiedDB,
)

from .. import pg
from .test_pooler import BEHIND_PGBOUNCER

# Where a feature table would go: a plain logged table in the library schema.
CREATE_ITEMS = "CREATE TABLE __schema__.rel_items (grp int NOT NULL, n int NOT NULL)"
COUNT_ITEMS = "SELECT count(*) FROM __schema__.rel_items"


async def terminate_backends(admin_dsn: str, db_dsn: str, *, active_only: bool = False) -> int:
    """pg_terminate_backend on every library connection to *db_dsn*'s database."""
    con = await asyncpg.connect(admin_dsn)
    try:
        return await con.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = 'unified_db' AND pid <> pg_backend_pid()"
            " AND (NOT $2 OR state = 'active')",
            pg.urlsplit_db(db_dsn),
            active_only,
        )
    finally:
        await con.close()


async def server_connections(admin_dsn: str, db_dsn: str) -> dict[str, int]:
    """The library's backends on the server for this database, by state."""
    con = await asyncpg.connect(admin_dsn)
    try:
        rows = await con.fetch(
            "SELECT coalesce(state, '?') AS state, count(*) AS n FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = 'unified_db' GROUP BY 1",
            pg.urlsplit_db(db_dsn),
        )
    finally:
        await con.close()
    return {r["state"]: r["n"] for r in rows}


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return await predicate()


def pool_of(db: UnifiedDB) -> asyncpg.Pool:
    assert db._pool is not None
    return db._pool


# ---------------------------------------------------------------------- killed backends


async def test_every_backend_killed_then_100_concurrent_reads_succeed_and_are_counted(
    db_dsn: str, admin_dsn: str
):
    # asyncpg reports a statement sent on a connection that died while idle either as a
    # connection error or, about one time in ten, as an InternalClientError: three
    # rounds of 100 reads make sure both paths are taken.
    async with UnifiedDB(db_dsn, min_size=5, max_size=5) as db:
        for round_ in range(3):
            await asyncio.gather(*(db._fetchval("SELECT pg_sleep(0.05)") for _ in range(5)))
            assert pool_of(db).get_size() == 5
            killed = await terminate_backends(admin_dsn, db_dsn)
            assert killed == 5
            results = await asyncio.gather(*(db._fetchval("SELECT $1::int", i) for i in range(100)))
            assert results == list(range(100))  # no error reached a caller
            stats = db.get_stats()
            if not BEHIND_PGBOUNCER:  # PgBouncer keeps the client connection alive
                assert stats["connections_lost"] == 5 * (round_ + 1)
            assert stats.get("requests_errors", 0) == 0


async def test_the_first_read_after_every_backend_is_killed_succeeds(db_dsn: str, admin_dsn: str):
    # Right after the kill the client has not yet seen the connections close: a single
    # retry could land on a second dead connection. Reads must get through regardless.
    async with UnifiedDB(db_dsn, min_size=6, max_size=6) as db:
        for _ in range(5):
            # Long enough that all six overlap (behind PgBouncer, six server connections).
            await asyncio.gather(*(db._fetchval("SELECT pg_sleep(0.2)") for _ in range(6)))
            assert await terminate_backends(admin_dsn, db_dsn) == 6
            assert await db._fetchval("SELECT 41 + 1") == 42
        assert db.get_stats().get("requests_errors", 0) == 0


async def test_a_connection_lost_after_the_statement_does_not_fail_the_call(db_dsn: str, admin_dsn: str):
    # The statement succeeded; the pool's reset on release then finds the backend gone
    # (a crash or kill in between). The caller's result stands: no raw driver error.
    async with UnifiedDB(db_dsn, min_size=1, max_size=1) as db:
        admin = await asyncpg.connect(admin_dsn)
        try:
            for i in range(5):
                async with db._acquire() as con:
                    pid = await con.fetchval("SELECT pg_backend_pid()")
                    await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                assert await db._fetchval("SELECT $1::int", i) == i
        finally:
            await admin.close()


async def test_reads_in_flight_when_their_backends_die_are_retried(db_dsn: str, admin_dsn: str):
    async with UnifiedDB(db_dsn, min_size=4, max_size=4) as db:
        reads = [asyncio.create_task(db._fetchval("SELECT $1::int FROM pg_sleep(0.6)", i)) for i in range(4)]
        assert await wait_until(lambda: _active(admin_dsn, db_dsn, 4), timeout=10), "the reads never started"
        assert await terminate_backends(admin_dsn, db_dsn, active_only=True) == 4
        assert await asyncio.gather(*reads) == [0, 1, 2, 3]
        assert db.get_stats()["retries"] == 4


async def _active(admin_dsn: str, db_dsn: str, n: int) -> bool:
    return (await server_connections(admin_dsn, db_dsn)).get("active", 0) >= n


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_a_statement_write_in_flight_fails_and_writes_nothing(db_dsn: str, admin_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=2) as db:
        await db._execute(CREATE_ITEMS)
        write = asyncio.create_task(
            db._execute(
                # pg_sleep per row: the statement runs for seconds, rows pile up as it goes.
                "INSERT INTO __schema__.rel_items SELECT 1, g FROM generate_series(1, 3000) g"
                " WHERE pg_sleep(0.001) IS NOT NULL"
            )
        )
        assert await wait_until(lambda: _active(admin_dsn, db_dsn, 1), timeout=10)
        await asyncio.sleep(0.2)  # well inside the statement
        assert await terminate_backends(admin_dsn, db_dsn, active_only=True) == 1
        with pytest.raises(DatabaseUnavailableError):
            await write
        assert await db._fetchval(COUNT_ITEMS) == 0
        assert db.get_stats().get("retries", 0) == 0  # a write is never replayed


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_a_transaction_in_flight_fails_and_leaves_nothing_half_written(db_dsn: str, admin_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=2) as db:
        await db._execute(CREATE_ITEMS)
        inserted = asyncio.Event()

        async def transfer() -> None:
            async with db._transaction() as con:
                await con.executemany(
                    "INSERT INTO __schema__.rel_items VALUES (1, $1)", [(i,) for i in range(100)]
                )
                inserted.set()
                await con.execute("SELECT pg_sleep(10)")
                await con.execute("INSERT INTO __schema__.rel_items VALUES (2, 0)")

        task = asyncio.create_task(transfer())
        await asyncio.wait_for(inserted.wait(), 10)
        assert await wait_until(lambda: _active(admin_dsn, db_dsn, 1), timeout=10)
        assert await terminate_backends(admin_dsn, db_dsn, active_only=True) == 1
        with pytest.raises(DatabaseUnavailableError):
            await asyncio.wait_for(task, 10)
        assert await db._fetchval(COUNT_ITEMS) == 0
        # The pool replaced the dead connection: the next transaction commits.
        async with db._transaction() as con:
            await con.execute("INSERT INTO __schema__.rel_items VALUES (3, 1)")
        assert await db._fetchval(COUNT_ITEMS) == 1


# ---------------------------------------------------------------------- pool exhaustion


async def test_200_tasks_on_a_pool_of_5_complete_or_time_out_cleanly(db_dsn: str):
    async with UnifiedDB(db_dsn, min_size=5, max_size=5, acquire_timeout=0.3) as db:

        async def work(i: int) -> int:
            if i % 3 == 0:
                async with db._transaction() as con:
                    await con.execute("SELECT pg_sleep(0.05)")
                    return await con.fetchval("SELECT $1::int", i)
            return await db._fetchval("SELECT $1::int FROM pg_sleep(0.05)", i)

        start = time.monotonic()
        results = await asyncio.wait_for(
            asyncio.gather(*(work(i) for i in range(200)), return_exceptions=True), 30
        )
        elapsed = time.monotonic() - start
        done = [r for r in results if isinstance(r, int)]
        timed_out = [r for r in results if isinstance(r, PoolTimeoutError)]
        others = [r for r in results if not isinstance(r, (int, PoolTimeoutError))]
        assert not others, others[:3]
        assert done and timed_out, (len(done), len(timed_out))
        assert all(results[i] == i for i in range(200) if isinstance(results[i], int))
        assert "acquire_timeout=0.3s" in str(timed_out[0])
        assert db.get_stats()["acquire_timeouts"] == len(timed_out)
        assert elapsed < 15
        pool = pool_of(db)
        assert await wait_until(lambda: _idle(pool, 5), timeout=5)
        assert await asyncio.gather(*(db._fetchval("SELECT 1") for _ in range(20))) == [1] * 20


async def _idle(pool: asyncpg.Pool, n: int) -> bool:
    return pool.get_size() == n and pool.get_idle_size() == n


# ---------------------------------------------------------------------- command_timeout


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_a_statement_over_command_timeout_fails_cleanly_and_its_connection_is_reused(
    db_dsn: str, admin_dsn: str
):
    async with UnifiedDB(db_dsn, min_size=1, max_size=1, command_timeout=0.3) as db:
        await db._execute(CREATE_ITEMS)
        pid = await db._fetchval("SELECT pg_backend_pid()")
        start = time.monotonic()
        with pytest.raises(OperationTimeoutError, match="command_timeout"):
            await db._fetchval("SELECT pg_sleep(5)")
        assert time.monotonic() - start < 2.5
        # The same backend answers next: the connection was cancelled, not dropped.
        assert await db._fetchval("SELECT pg_backend_pid()") == pid
        assert (await server_connections(admin_dsn, db_dsn)).get("active", 0) == 0

        with pytest.raises(OperationTimeoutError):
            await db._execute("INSERT INTO __schema__.rel_items SELECT 1, 1 FROM pg_sleep(5)")
        with pytest.raises(OperationTimeoutError):
            async with db._transaction() as con:
                await con.execute("INSERT INTO __schema__.rel_items VALUES (1, 2)")
                await con.execute("SELECT pg_sleep(5)")
        with pytest.raises(OperationTimeoutError):
            await db._fetchval("SELECT pg_sleep(5)", timeout=0.2)  # a per-call timeout too
        assert await db._fetchval(COUNT_ITEMS) == 0
        assert await db._fetchval("SELECT pg_backend_pid()") == pid
        assert db.get_stats().get("connections_lost", 0) == 0


# ---------------------------------------------------------------------- cancellation


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_cancelling_1000_tasks_mid_operation_leaks_no_connection(db_dsn: str, admin_dsn: str):
    size = 8
    async with UnifiedDB(db_dsn, min_size=size, max_size=size, acquire_timeout=30) as db:
        await db._execute(CREATE_ITEMS)
        rng = random.Random(9)

        async def op(i: int) -> None:
            kind = i % 4
            if kind == 0:
                await db._fetchval("SELECT pg_sleep($1)", rng.random() * 0.02)
            elif kind == 1:
                await db._execute("INSERT INTO __schema__.rel_items VALUES ($1, 0)", i)
            elif kind == 2:  # a transaction of two rows: both or neither must survive
                async with db._transaction() as con:
                    await con.execute("INSERT INTO __schema__.rel_items VALUES ($1, 1)", i)
                    await con.execute("SELECT pg_sleep($1)", rng.random() * 0.02)
                    await con.execute("INSERT INTO __schema__.rel_items VALUES ($1, 2)", i)
            else:
                async with db._acquire() as con:
                    await con.fetchval("SELECT pg_sleep($1)", rng.random() * 0.02)

        tasks = [asyncio.create_task(op(i)) for i in range(1000)]
        # Cancel at staggered moments so tasks die while waiting for a connection,
        # mid-statement, mid-transaction and while releasing.
        order = list(tasks)
        rng.shuffle(order)
        for k, task in enumerate(order):
            task.cancel()
            if k % 50 == 0:
                await asyncio.sleep(rng.random() * 0.03)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        errors = [
            r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        assert cancelled > 500 and not errors, (cancelled, errors[:3])

        pool = pool_of(db)
        assert await wait_until(lambda: _idle(pool, size), timeout=15), (
            pool.get_size(),
            pool.get_idle_size(),
        )

        async def server_idle() -> bool:
            states = await server_connections(admin_dsn, db_dsn)
            return states.get("active", 0) == 0 and sum(states.values()) <= size

        # Behind PgBouncer the server backends are the pooler's, not this pool's: one CI
        # run saw one of them stay "active" for over 15 s after the cancellation storm
        # (PgBouncer forwards each cancel on its own connection), while this pool was
        # back to 8 idle connections and every later statement below succeeded.
        if not BEHIND_PGBOUNCER:
            assert await wait_until(server_idle, timeout=15), await server_connections(admin_dsn, db_dsn)
        half = await db._fetchval(
            "SELECT count(*) FROM (SELECT grp FROM __schema__.rel_items WHERE n > 0"
            " GROUP BY grp HAVING count(*) <> 2) t"
        )
        assert half == 0
        assert await asyncio.gather(*(db._fetchval("SELECT 1") for _ in range(50))) == [1] * 50

"""Reliability: what the safety nets cost on the hot path, and how fast recovery is.

- Reads through the base helpers (retry-on-lost-connection, error mapping, the pool
  reset that keeps application_name) against raw asyncpg running the same SQL through a
  pool of the same size, with the statement cache on and off (``statement_cache_size=0``
  is the PgBouncer transaction-mode setting), and redis-py GET as the peer.
- Recovery after every pooled backend is killed, and how fast a full pool says so.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg

from unified_db import PoolTimeoutError, UnifiedDB

from .common import Context, Row, interleaved, redis_client

SETUP = [
    "CREATE UNLOGGED TABLE IF NOT EXISTS bench_rel (k int PRIMARY KEY, v text NOT NULL)",
    "INSERT INTO bench_rel SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING",
]
READ = "SELECT v FROM bench_rel WHERE k = $1"
POOL = 8
CONCURRENCY = 16


async def _kill_all(admin: asyncpg.Connection, application_name: str) -> int:
    return await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = $1 AND pid <> pg_backend_pid()",
        application_name,
    )


async def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    admin = await ctx.admin()
    try:
        for sql in SETUP:
            await admin.execute(sql)
        n = ctx.scale(6000, 800)
        redis, why = await redis_client(ctx.redis_url)
        if redis is None:
            ctx.notes.append(f"reliability: no peer figures ({why})")
        else:
            await redis.set("bench_rel:7", "x" * 100)

        for cache in (100, 0):
            async with UnifiedDB(
                ctx.dsn, min_size=POOL, max_size=POOL, statement_cache_size=cache, schema="bench_reliability"
            ) as db:
                floor = await asyncpg.create_pool(
                    ctx.dsn, min_size=POOL, max_size=POOL, statement_cache_size=cache
                )
                try:
                    key = iter(range(10**9))
                    ops = {
                        "unified_db": lambda db=db, key=key: db._fetchval(READ, next(key) % 1000 + 1),
                        "floor": lambda floor=floor, key=key: floor.fetchval(READ, next(key) % 1000 + 1),
                    }
                    if redis is not None:
                        ops["peer"] = lambda: redis.get("bench_rel:7")
                    got = await interleaved(ops, n, concurrency=CONCURRENCY)
                finally:
                    await floor.close()
            rows.append(
                Row(
                    "reliability: hot path",
                    f"read by key, {CONCURRENCY} tasks, statement_cache_size={cache}",
                    got["unified_db"],
                    floor=got["floor"],
                    peer=got.get("peer"),
                    peer_name="redis-py GET" if redis is not None else None,
                    target=">= 0.8x raw asyncpg",
                )
            )

        # Recovery: every pooled backend killed, then 100 concurrent reads.
        recover: list[float] = []
        first: list[float] = []
        async with UnifiedDB(
            ctx.dsn,
            min_size=POOL,
            max_size=POOL,
            schema="bench_reliability",
            application_name="udb_bench_rel",
        ) as db:
            for _ in range(ctx.scale(10, 3)):
                await asyncio.gather(*(db._fetchval("SELECT pg_sleep(0.01)") for _ in range(POOL)))
                await _kill_all(admin, "udb_bench_rel")
                start = time.perf_counter()
                await db._fetchval(READ, 1)
                first.append((time.perf_counter() - start) * 1000)
                await asyncio.gather(*(db._fetchval(READ, i % 1000 + 1) for i in range(100)))
                recover.append((time.perf_counter() - start) * 1000)
            lost = db.get_stats().get("connections_lost", 0)
        rows.append(
            Row(
                "reliability: recovery",
                f"first read after all {POOL} backends killed",
                statistics.median(first),
                unit="ms",
                higher_is_better=False,
                target="no error reaches the caller",
            )
        )
        rows.append(
            Row(
                "reliability: recovery",
                f"101 reads after all {POOL} backends killed ({lost} losses counted)",
                statistics.median(recover),
                unit="ms",
                higher_is_better=False,
                target="no error reaches the caller",
            )
        )

        # A full pool: how long until the caller hears PoolTimeoutError (acquire_timeout=0.2 s).
        async with UnifiedDB(
            ctx.dsn, min_size=1, max_size=1, acquire_timeout=0.2, schema="bench_reliability"
        ) as db:
            waits = []
            async with db._acquire():
                for _ in range(ctx.scale(10, 3)):
                    start = time.perf_counter()
                    try:
                        await db._fetchval("SELECT 1")
                    except PoolTimeoutError:
                        waits.append((time.perf_counter() - start) * 1000)
        rows.append(
            Row(
                "reliability: recovery",
                "PoolTimeoutError on a full pool (acquire_timeout=200 ms)",
                statistics.median(waits),
                unit="ms",
                higher_is_better=False,
                target="~200 ms, never hangs",
            )
        )
        if redis is not None:
            await redis.aclose()
    finally:
        await admin.execute("DROP TABLE IF EXISTS bench_rel")
        await admin.execute("DROP SCHEMA IF EXISTS bench_reliability CASCADE")
        await admin.close()
    return rows

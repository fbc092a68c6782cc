"""Soak: ten minutes of mixed load from 50 tasks; memory and connections must stay flat.

``make soak`` (not in CI). ``UNIFIED_DB_SOAK_SECONDS`` (default 600) and
``UNIFIED_DB_SOAK_INTERVAL`` (default 10) shorten it for a trial run. The load goes
through the base helpers: reads, writes, transactions, batches, statements that fail,
statements that time out and tasks cancelled mid-operation. Every interval it samples
the process RSS, the pool's size and idle count, and the server's connections for the
database, and prints them; docs/reliability.md has the figures of a full run.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time
from dataclasses import dataclass

import asyncpg
import psutil
import pytest

from unified_db import OperationTimeoutError, UnifiedDB, UnifiedDBError

from .. import pg

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("UNIFIED_DB_SOAK_SECONDS", "600"))
INTERVAL = float(os.environ.get("UNIFIED_DB_SOAK_INTERVAL", "10"))
TASKS = 50
POOL = 10
KEYS = 5000  # bounded key space: the table stops growing, so memory can be flat


@dataclass
class Sample:
    t: float
    rss_mb: float
    pool_size: int
    pool_idle: int
    server_connections: int
    ops: int
    errors: int


async def test_soak_memory_and_connections_stay_flat(db_dsn: str, admin_dsn: str):
    counts = {"ops": 0, "errors": 0, "unexpected": 0}
    unexpected: list[BaseException] = []
    stop = asyncio.Event()
    async with UnifiedDB(db_dsn, min_size=POOL, max_size=POOL, command_timeout=2.0) as db:
        await db._execute(
            "CREATE TABLE __schema__.soak (k int PRIMARY KEY, v jsonb NOT NULL, n int NOT NULL DEFAULT 0)"
        )

        async def one(rng: random.Random) -> None:
            k = rng.randrange(KEYS)
            r = rng.random()
            if r < 0.45:
                await db._fetchrow("SELECT v, n FROM __schema__.soak WHERE k = $1", k)
            elif r < 0.70:
                await db._execute(
                    "INSERT INTO __schema__.soak (k, v) VALUES ($1, $2)"
                    " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, n = __schema__.soak.n + 1",
                    k,
                    {"k": k, "pad": "x" * rng.randrange(200)},
                )
            elif r < 0.85:
                async with db._transaction() as con:
                    await con.execute("UPDATE __schema__.soak SET n = n + 1 WHERE k = $1", k)
                    await con.fetchval("SELECT count(*) FROM __schema__.soak WHERE k < $1", k)
            elif r < 0.93:
                await db._executemany(
                    "INSERT INTO __schema__.soak (k, v) VALUES ($1, '{}') ON CONFLICT (k) DO NOTHING",
                    [(rng.randrange(KEYS),) for _ in range(20)],
                )
            elif r < 0.97:
                await db._fetch("SELECT k FROM __schema__.soak ORDER BY n DESC LIMIT 50")
            elif r < 0.985:
                try:
                    await db._fetchval("SELECT * FROM __schema__.no_such_table")
                except UnifiedDBError:
                    counts["errors"] += 1
            else:
                try:
                    await db._fetchval("SELECT pg_sleep(1)", timeout=0.05)
                except OperationTimeoutError:
                    counts["errors"] += 1

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                try:
                    if rng.random() < 0.01:  # cancelled mid-operation
                        task = asyncio.ensure_future(one(rng))
                        await asyncio.sleep(rng.random() * 0.005)
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                    else:
                        await one(rng)
                    counts["ops"] += 1
                except Exception as exc:  # anything else is a finding
                    counts["unexpected"] += 1
                    unexpected.append(exc)
                await asyncio.sleep(0.001)

        admin = await asyncpg.connect(admin_dsn)
        proc = psutil.Process()
        samples: list[Sample] = []
        workers = [asyncio.create_task(worker(i)) for i in range(TASKS)]
        start = time.monotonic()
        try:
            while time.monotonic() - start < SECONDS:
                await asyncio.sleep(INTERVAL)
                gc.collect()
                pool = db._pool
                assert pool is not None
                server = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = $1 AND application_name = 'unified_db'",
                    pg.urlsplit_db(db_dsn),
                )
                s = Sample(
                    t=time.monotonic() - start,
                    rss_mb=proc.memory_info().rss / 2**20,
                    pool_size=pool.get_size(),
                    pool_idle=pool.get_idle_size(),
                    server_connections=server,
                    ops=counts["ops"],
                    errors=counts["errors"],
                )
                samples.append(s)
                print(
                    f"t={s.t:6.0f}s rss={s.rss_mb:7.1f} MB pool={s.pool_size}/{POOL} idle={s.pool_idle}"
                    f" server={s.server_connections} ops={s.ops} expected_errors={s.errors}",
                    flush=True,
                )
        finally:
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
            await admin.close()

        assert not unexpected, unexpected[:5]
        assert len(samples) >= 3
        # Connections: never above the pool size, on either side.
        assert all(s.pool_size <= POOL and s.server_connections <= POOL for s in samples)
        assert samples[-1].server_connections >= POOL - 1
        # Memory: after warm-up (the first third), the last third is within 10% or 15 MB.
        third = max(1, len(samples) // 3)
        early = statistics.median(s.rss_mb for s in samples[third : 2 * third] or samples[:third])
        late = statistics.median(s.rss_mb for s in samples[-third:])
        assert late - early < max(15.0, early * 0.10), (early, late)
        rate = samples[-1].ops / samples[-1].t
        print(f"\nsoak: {samples[-1].ops} ops in {samples[-1].t:.0f}s ({rate:.0f} ops/s)")
        print(f"soak: rss {early:.1f} MB after warm-up, {late:.1f} MB at the end")
        # Every task is released: the pool settles back to fully idle.
        for _ in range(200):
            if db._pool.get_idle_size() == db._pool.get_size():
                break
            await asyncio.sleep(0.05)
        assert db._pool.get_idle_size() == db._pool.get_size() == POOL

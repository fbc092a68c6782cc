"""Operations: what the diagnostics cost, against raw asyncpg running the same SQL and
Redis's own introspection commands (PING, CLIENT LIST, INFO) as the peer."""

from __future__ import annotations

import asyncio
import statistics
import time

from unified_db import UnifiedDB
from unified_db.extensions.pool import BACKENDS_SQL, StatsFlusher
from unified_db.monitoring.collect import Collector

from .common import Context, Row, interleaved, latencies, pct, raw_pool, redis_client

SECTION = "ops: pool diagnostics and monitoring"
POOL = 8


async def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    n = ctx.scale(3000, 300)
    redis, why = await redis_client(ctx.redis_url)
    if redis is None:
        ctx.notes.append(f"ops: no Redis peer ({why})")
    floor = await raw_pool(ctx.dsn, POOL, codecs=False)
    try:
        async with UnifiedDB(ctx.dsn, min_size=POOL, max_size=POOL, namespace="bench_ops") as db:
            app = db.settings.application_name

            # The base's per-query bookkeeping (waiting count, per-pool leases, stats).
            for conc in (1, 32):
                ops = {
                    "udb": lambda: db._fetchval("SELECT 1"),
                    "floor": lambda: floor.fetchval("SELECT 1"),
                }
                if redis is not None:
                    ops["peer"] = redis.ping
                r = await interleaved(ops, n, concurrency=conc)
                rows.append(
                    Row(
                        SECTION,
                        f"SELECT 1 through the pool helpers, {conc} task(s)",
                        r["udb"],
                        floor=r["floor"],
                        peer=r.get("peer"),
                        peer_name="redis PING",
                        target=">= 0.9x asyncpg",
                    )  # fmt: skip
                )

            ops = {
                "udb": db.get_connection_diagnostics,
                "floor": lambda: floor.fetch(BACKENDS_SQL, app),
            }
            if redis is not None:
                ops["peer"] = lambda: redis.execute_command("CLIENT LIST")
            r = await interleaved(ops, n // 3)
            rows.append(
                Row(
                    SECTION,
                    "get_connection_diagnostics()",
                    r["udb"],
                    floor=r["floor"],
                    peer=r.get("peer"),
                    peer_name="redis CLIENT LIST",
                    target=">= 0.8x asyncpg",
                )  # fmt: skip
            )

            ops = {"udb": db.get_extended_pool_stats, "floor": lambda: floor.fetch(BACKENDS_SQL, app)}
            if redis is not None:
                ops["peer"] = redis.info
            r = await interleaved(ops, n // 3)
            rows.append(
                Row(
                    SECTION,
                    "get_extended_pool_stats()",
                    r["udb"],
                    floor=r["floor"],
                    peer=r.get("peer"),
                    peer_name="redis INFO",
                    target=">= 0.7x asyncpg",
                )  # fmt: skip
            )

            start = time.perf_counter()
            k = n * 10
            for _ in range(k):
                db.get_pool_stats()
            rows.append(
                Row(SECTION, "get_pool_stats() (no I/O)", k / (time.perf_counter() - start), unit="calls/s")
            )

            collector = Collector(db, include_self=True)
            lat = await latencies(collector.collect, ctx.scale(100, 20))
            rows.append(
                Row(
                    SECTION,
                    "dashboard snapshot, p50",
                    pct(lat, 50),
                    unit="ms",
                    higher_is_better=False,
                    target="< 50 ms (1 s refresh)",
                )  # fmt: skip
            )

            flusher = StatsFlusher(db, 1.0)
            lat = await latencies(flusher.flush, ctx.scale(200, 30))
            rows.append(
                Row(
                    SECTION,
                    "stats flush to instance_stats, p50",
                    pct(lat, 50),
                    unit="ms",
                    higher_is_better=False,
                    target="< 10 ms (once per interval)",
                )  # fmt: skip
            )
            await db._execute("DELETE FROM __schema__.instance_stats WHERE instance_id = $1", db.instance_id)

            # A resize while 20 tasks query: how long it takes and that nothing fails.
            stop = asyncio.Event()
            errors = 0

            async def worker() -> None:
                nonlocal errors
                while not stop.is_set():
                    try:
                        await db._fetchval("SELECT pg_sleep(0.001)")
                    except Exception:  # noqa: BLE001 - counted, reported in the row
                        errors += 1

            tasks = [asyncio.create_task(worker()) for _ in range(20)]
            durations = []
            for size in (12, 4) * ctx.scale(3, 1):
                t0 = time.perf_counter()
                await db.adjust_pool_size(min_size=min(2, size), max_size=size)
                durations.append((time.perf_counter() - t0) * 1000)
            stop.set()
            await asyncio.gather(*tasks)
            rows.append(
                Row(
                    SECTION,
                    f"adjust_pool_size under 20 tasks, median ({errors} query errors)",
                    statistics.median(durations),
                    unit="ms",
                    higher_is_better=False,
                    target="0 errors",
                )  # fmt: skip
            )
            await db._execute("DELETE FROM __schema__.instance_stats WHERE namespace = 'bench_ops'")
    finally:
        await floor.close()
        if redis is not None:
            await redis.aclose()
    return rows

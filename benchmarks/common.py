"""What every benchmark module shares: the server, timing loops and result rows.

A module ``benchmarks/bench_<feature>.py`` defines ``async def run(ctx: Context) ->
list[Row]``. Each row states a figure for unified_db and, where the issue asks for it,
the same figure for the floor (raw asyncpg running the same SQL) and for the peer
(redis-py, a peer library), all measured in the same run against the same server.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@dataclass
class Row:
    section: str
    name: str
    value: float
    unit: str = "ops/s"
    floor: float | None = None  # raw asyncpg, same SQL
    peer: float | None = None  # redis-py or the peer library
    peer_name: str | None = None
    target: str = ""
    higher_is_better: bool = True

    def ratio(self, other: float | None) -> float | None:
        if other in (None, 0) or self.value == 0:
            return None
        return self.value / other if self.higher_is_better else other / self.value


@dataclass
class Context:
    dsn: str
    redis_url: str | None
    quick: bool = False
    notes: list[str] = field(default_factory=list)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    async def fresh_database(self, label: str) -> str:
        """A new, empty database for one benchmark module (any leftover dropped); its DSN."""
        name = f"udb_bench_{label}_{os.getpid()}"
        admin = await self.admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return urlunsplit(urlsplit(self.dsn)._replace(path="/" + name))

    async def drop_database(self, dsn: str) -> None:
        admin = await self.admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(dsn).path.lstrip("/")}" WITH (FORCE)')
        finally:
            await admin.close()


class _FloorConnection(asyncpg.Connection):
    """The floor's connection: configured like unified_db's pooled connections.

    No reset query on release (unified_db keeps no session state on pooled
    connections, so it skips asyncpg's RESET ALL round trip; the floor must too, or
    the comparison measures a round trip, not the layer).
    """

    def get_reset_query(self) -> str:
        return ""


async def raw_pool(dsn: str, size: int, *, codecs: bool = True, **kwargs: object) -> asyncpg.Pool:
    """The floor: a plain asyncpg pool set up as unified_db sets up its own (same size,
    same command_timeout, orjson codecs, no reset query), running the same SQL."""
    from unified_db.codecs import register_json_codecs

    kwargs.setdefault("command_timeout", 30.0)
    return await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        connection_class=_FloorConnection,
        init=register_json_codecs if codecs else None,
        **kwargs,
    )


async def rate(op: Callable[[], Awaitable[object]], n: int, concurrency: int = 1) -> float:
    """Operations per second of *op* run *n* times by *concurrency* tasks (after a warm-up)."""
    for _ in range(min(50, n)):
        await op()
    per_task = max(1, n // concurrency)

    async def worker() -> None:
        for _ in range(per_task):
            await op()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - start)


async def best_rate(
    op: Callable[[], Awaitable[object]], n: int, concurrency: int = 1, rounds: int = 3
) -> float:
    """The median of *rounds* runs of :func:`rate`: steadier on a shared machine."""
    return statistics.median([await rate(op, n, concurrency) for _ in range(rounds)])


async def latencies(op: Callable[[], Awaitable[object]], n: int) -> list[float]:
    """Per-call latencies in ms, sorted."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await op()
        out.append((time.perf_counter() - start) * 1000)
    out.sort()
    return out


def pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q / 100 * len(sorted_ms)))]


async def interleaved(
    ops: dict[str, Callable[[], Awaitable[object]]], n: int, concurrency: int = 1, rounds: int = 3
) -> dict[str, float]:
    """Median ops/s of each op, measured in alternating rounds so machine noise hits all alike."""
    results: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            results[name].append(await rate(op, n, concurrency))
    return {k: statistics.median(v) for k, v in results.items()}


def bench_server() -> str:
    """BENCH_DSN, else UNIFIED_DB_TEST_DSN, else an embedded server in a temporary directory."""
    dsn = os.environ.get("BENCH_DSN") or os.environ.get("UNIFIED_DB_TEST_DSN")
    if dsn:
        return dsn
    from unified_db.embedded import _start

    return _start(Path(tempfile.mkdtemp(prefix="udb-bench-")) / "pgdata", "delete")


async def redis_client(url: str | None):
    """A connected redis.asyncio client, or None (with the reason) when none answers."""
    if not url:
        return None, "REDIS_URL is empty"
    try:
        import redis.asyncio as redis
    except ImportError:
        return None, "redis-py is not installed"
    client = redis.from_url(url)
    try:
        await asyncio.wait_for(client.ping(), 2)
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        await client.aclose()
        return None, f"no Redis at {url} ({exc.__class__.__name__})"
    return client, None

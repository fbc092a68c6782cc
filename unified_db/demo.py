"""``unified-db demo``: what the library does, with timings, on the embedded default.

Each feature adds one section: an ``async def section(db, out)`` appended to
``SECTIONS``. ``out`` is a :class:`DemoOutput`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .db import UnifiedDB


class DemoOutput:
    """Prints demo steps with their timings."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def title(self, text: str) -> None:
        self.console.rule(f"[bold]{text}")

    @contextmanager
    def step(self, text: str):
        start = time.perf_counter()
        result: dict[str, Any] = {}
        yield result
        ms = (time.perf_counter() - start) * 1000
        detail = f" -> {result['value']}" if "value" in result else ""
        self.console.print(f"  {text}{detail} [dim]({ms:.2f} ms)[/dim]")

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        t = Table(title=title)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*[str(v) for v in r])
        self.console.print(t)


async def foundation_section(db: UnifiedDB, out: DemoOutput) -> None:
    out.title("Foundation")
    with out.step("health check") as r:
        h = await db.health()
        r["value"] = f"ok={h.ok} PostgreSQL {h.server_version} schema v{h.schema_version}"
    out.console.print(f"  embedded server: {h.embedded}; pool {h.pool_size}/{h.pool_max_size}")


async def cache_section(db: UnifiedDB, out: DemoOutput) -> None:
    """The cache: Redis-style calls on one PostgreSQL table, then the near-cache."""
    import asyncio

    from .db import UnifiedDB

    out.title("Cache")
    keys = [f"demo:item:{i}" for i in range(100)]
    # Only this section's own keys are touched: the namespace may hold real data.
    await db.cache_delete_many([*keys, "demo:user", "demo:visits", "demo:report", "demo:flash"])
    with out.step("cache_set demo:user (ttl 60 s, tag demo:users)") as r:
        await db.cache_set("demo:user", {"name": "Ada", "roles": ["admin"]}, ttl=60, tags=("demo:users",))
    with out.step("cache_get demo:user") as r:
        r["value"] = await db.cache_get("demo:user")
    with out.step("cache_set_many 100 keys (one round trip)") as r:
        r["value"] = await db.cache_set_many({k: {"n": i} for i, k in enumerate(keys)}, ttl=300)
    with out.step("cache_get_many 100 keys (one round trip)") as r:
        r["value"] = f"{len(await db.cache_get_many(keys))} values"
    with out.step("cache_incr demo:visits x3") as r:
        for _ in range(3):
            r["value"] = await db.cache_incr("demo:visits", ttl=3600)
    calls = 0

    async def slow_report() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return {"total": 42}

    with out.step("50 concurrent cache_get_or_set misses of demo:report") as r:
        await asyncio.gather(*(db.cache_get_or_set("demo:report", slow_report, ttl=60) for _ in range(50)))
        r["value"] = f"loader ran {calls} time(s)"
    with out.step("cache_get_by_tags demo:users") as r:
        r["value"] = list(await db.cache_get_by_tags(["demo:users"]))
    await db.cache_set("demo:flash", "gone soon", ttl=0.2)
    await asyncio.sleep(0.25)
    with out.step("cache_get demo:flash 0.25 s after a 0.2 s TTL (never swept)") as r:
        r["value"] = await db.cache_get("demo:flash", default="<expired>")
    with out.step("cache_cleanup_expired") as r:
        r["value"] = f"{await db.cache_cleanup_expired()} deleted"
    info = await db.cache_info()
    out.console.print(
        f"  namespace {info.namespace!r}: {info.entries} entries, {info.bytes} bytes, "
        f"hit ratio {info.hit_ratio or 0:.2f}, table {'logged' if info.durable else 'UNLOGGED'}"
    )

    # Two more instances with a near-cache, as two processes would have.
    settings = {"namespace": db.namespace, "schema": db.schema, "max_size": 2, "cache_local_size": 1000}
    async with UnifiedDB(db.dsn, **settings) as p1, UnifiedDB(db.dsn, **settings) as p2:
        await p1.cache_get("demo:user")  # fills p1's L1
        with out.step("near-cache hit in process 1 (no round trip)") as r:
            r["value"] = (await p1.cache_get("demo:user"))["name"]
        with out.step("process 2 rewrites demo:user; process 1 sees it") as r:
            await p2.cache_set("demo:user", {"name": "Grace", "roles": []}, ttl=60, tags=("demo:users",))
            for _ in range(200):
                value = await p1.cache_get("demo:user")
                if value["name"] == "Grace":
                    break
                await asyncio.sleep(0.002)
            r["value"] = value["name"]
    await db.cache_delete_many(keys)


Section = Callable[["UnifiedDB", DemoOutput], Awaitable[None]]
SECTIONS: list[Section] = [foundation_section, cache_section]


async def run_demo(db: UnifiedDB, console: Console | None = None) -> None:
    out = DemoOutput(console or Console())
    for section in SECTIONS:
        await section(db, out)
    out.title("Done")

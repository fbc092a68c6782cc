"""Demo section: cache. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


async def cache_section(db: UnifiedDB, out: DemoOutput) -> None:
    """The cache: Redis-style calls on one PostgreSQL table, then the near-cache."""

    from ..db import UnifiedDB

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

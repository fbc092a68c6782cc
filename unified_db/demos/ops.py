"""Demo section: operations. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


async def ops_section(db: UnifiedDB, out: DemoOutput) -> None:
    import asyncio

    from ..monitoring.collect import Collector

    out.title("Operations: pool diagnostics, live resize, dashboard figures")
    with out.step("get_pool_stats() (no I/O)") as r:
        s = db.get_pool_stats()
        r["value"] = f"size {s.size}, min {s.min_size}, max {s.max_size}, idle {s.idle}"
    original = (s.min_size, s.max_size)

    async def worker() -> None:
        for _ in range(4):
            await db._fetchval("SELECT pg_sleep(0.002)")

    with out.step("200 queries from 50 tasks") as r:
        await asyncio.gather(*(worker() for _ in range(50)))
        s = db.get_pool_stats()
        r["value"] = f"acquire p50 {s.acquire_p50_ms:.2f} ms, p99 {s.acquire_p99_ms:.2f} ms"
    with out.step(f"adjust_pool_size(max_size={original[1] + 4}) while 50 tasks query") as r:
        load = asyncio.gather(*(worker() for _ in range(50)))
        s = await db.adjust_pool_size(max_size=original[1] + 4)
        await load
        r["value"] = f"max {s.max_size}, errors {s.request_errors}"
    with out.step("adjust_pool_size back") as r:
        s = await db.adjust_pool_size(min_size=original[0], max_size=original[1])
        r["value"] = f"min {s.min_size}, max {s.max_size}"
    with out.step("get_connection_diagnostics()") as r:
        rows = await db.get_connection_diagnostics()
        r["value"] = f"{len(rows)} backend(s) of application {db.settings.application_name!r}"
    with out.step("get_pool_recommendations()") as r:
        recs = await db.get_pool_recommendations()
        r["value"] = "; ".join(f"{x.severity}: {x.finding}" for x in recs) or "nothing to change"
    with out.step("dashboard snapshot (what `unified-db dashboard` shows)") as r:
        snap = await Collector(db, include_self=True).collect()
        r["value"] = f"{len(snap.instances)} instance(s), {len(snap.operations)} operation(s), " + (
            f"{len(snap.tables)} table(s) watched"
        )
    out.table(
        "busiest operations in this process",
        ["operation", "calls", "p50 ms", "p99 ms"],
        [
            [o.operation, o.count, f"{o.p50_ms or 0:.2f}", f"{o.p99_ms or 0:.2f}"]
            for o in sorted(snap.operations, key=lambda o: -o.count)[:5]
        ],
    )

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


async def ops_section(db: UnifiedDB, out: DemoOutput) -> None:
    import asyncio

    from .monitoring.collect import Collector

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


Section = Callable[["UnifiedDB", DemoOutput], Awaitable[None]]
SECTIONS: list[Section] = [foundation_section, ops_section]


async def run_demo(db: UnifiedDB, console: Console | None = None) -> None:
    out = DemoOutput(console or Console())
    for section in SECTIONS:
        await section(db, out)
    out.title("Done")

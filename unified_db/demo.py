"""``unified-db demo``: what the library does, with timings, on the embedded default.

Each feature adds one section: an ``async def <feature>_section(db, out)`` in
``unified_db/demos/<feature>.py``, listed in ``SECTIONS``. ``out`` is a :class:`DemoOutput`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from .demos.agents import agents_section
from .demos.cache import cache_section
from .demos.memory import memory_section
from .demos.ops import ops_section
from .demos.personas import personas_section
from .demos.reliability import reliability_section
from .demos.sessions import sessions_section
from .demos.vectors import vectors_section

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


Section = Callable[["UnifiedDB", DemoOutput], Awaitable[None]]

SECTIONS: list[Section] = [
    foundation_section,
    cache_section,
    sessions_section,
    memory_section,
    agents_section,
    personas_section,
    vectors_section,
    ops_section,
    reliability_section,
]


async def run_demo(db: UnifiedDB, console: Console | None = None) -> None:
    out = DemoOutput(console or Console())
    for section in SECTIONS:
        await section(db, out)
    out.title("Done")

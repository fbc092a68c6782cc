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


async def reliability_section(db: UnifiedDB, out: DemoOutput) -> None:
    """Faults handled for the caller: a lost connection, a slow statement, a full pool.

    Touches only this instance's own connections and writes nothing, so it is safe to
    rerun and safe against a shared server.
    """
    from .core import UnifiedPostgreSQL
    from .errors import OperationTimeoutError, PoolTimeoutError

    out.title("Reliability")
    before = db.get_stats().get("retries", 0)
    with out.step("a read whose connection dies mid-query (it kills its own backend)") as r:
        pid = await db._fetchval("SELECT pg_backend_pid()")
        got = None
        for _ in range(20):  # lands on that connection within a try or two
            got = await db._fetchval(_KILL_OWN_BACKEND, pid)
            if db.get_stats().get("retries", 0) > before:
                break
        retried = db.get_stats().get("retries", 0) - before
        r["value"] = f"answered {got}, retried on a fresh connection {retried}x, no error"
    with out.step("a statement over its timeout (pg_sleep(5), timeout=0.2 s)") as r:
        try:
            await db._fetchval("SELECT pg_sleep(5)", timeout=0.2)
            r["value"] = "finished (unexpected)"
        except OperationTimeoutError:
            r["value"] = "OperationTimeoutError; the connection is reused"
    with out.step("the next statement on the same pool") as r:
        r["value"] = await db._fetchval("SELECT 'ok'")
    # A second, one-connection instance, so holding its connection blocks no one else.
    tiny = UnifiedPostgreSQL(
        db.dsn, schema=db.schema, namespace=db.namespace, min_size=1, max_size=1, acquire_timeout=0.2
    )
    async with tiny:
        async with tiny._acquire():
            with out.step("a call on a full pool (max_size=1, acquire_timeout=0.2 s)") as r:
                try:
                    await tiny._fetchval("SELECT 1")
                    r["value"] = "ran (unexpected)"
                except PoolTimeoutError:
                    r["value"] = "PoolTimeoutError: raise max_size or acquire_timeout"
        health = await tiny.health()
    idle = f"{health.pool_idle}/{health.pool_size}"
    out.console.print(f"  after all that: health ok={health.ok}, pool {idle} idle")


# Kills the backend running it only when that is the given pid, so the retry succeeds.
_KILL_OWN_BACKEND = (
    "SELECT CASE WHEN pg_backend_pid() = $1 THEN pg_terminate_backend(pg_backend_pid())::text ELSE 'ok' END"
)

Section = Callable[["UnifiedDB", DemoOutput], Awaitable[None]]
SECTIONS: list[Section] = [foundation_section, reliability_section]


async def run_demo(db: UnifiedDB, console: Console | None = None) -> None:
    out = DemoOutput(console or Console())
    for section in SECTIONS:
        await section(db, out)
    out.title("Done")

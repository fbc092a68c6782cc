"""Demo section: reliability. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


async def reliability_section(db: UnifiedDB, out: DemoOutput) -> None:
    """Faults handled for the caller: a lost connection, a slow statement, a full pool.

    Touches only this instance's own connections and writes nothing, so it is safe to
    rerun and safe against a shared server.
    """
    from ..core import UnifiedPostgreSQL
    from ..errors import OperationTimeoutError, PoolTimeoutError

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

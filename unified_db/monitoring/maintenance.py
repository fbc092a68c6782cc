"""What ``unified-db cleanup`` and ``unified-db maintain`` run.

Cleanup follows the contract every feature implements: a mixin declares
``cleanup_steps = ("<step>",)`` and ``async def _cleanup_<step>(self, *, dry_run,
batch_size) -> int`` that deletes its namespace's expired rows in batches with
``FOR UPDATE SKIP LOCKED`` (so runs from several hosts never block each other nor delete
a row twice) and returns how many it deleted (or would delete). This module only finds
the steps and runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidInputError, UnifiedDBError
from ..extensions._pool_logic import CHURN_TABLES

MAX_BATCH_SIZE = 100_000

# One statement per table: the names are constants, never caller data.
VACUUM_SQL = {
    "cache_entries": "VACUUM (ANALYZE) __schema__.cache_entries",
    "sessions": "VACUUM (ANALYZE) __schema__.sessions",
    "memory_snapshots": "VACUUM (ANALYZE) __schema__.memory_snapshots",
    "workflow_runs": "VACUUM (ANALYZE) __schema__.workflow_runs",
    "instance_stats": "VACUUM (ANALYZE) __schema__.instance_stats",
}
ANALYZE_SQL = {name: sql.replace("VACUUM (ANALYZE)", "ANALYZE") for name, sql in VACUUM_SQL.items()}
assert set(VACUUM_SQL) == set(CHURN_TABLES)

PRESENT_SQL = """
SELECT t.name, coalesce(s.n_dead_tup, 0)::bigint AS dead_rows
  FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord)
  JOIN pg_class c ON c.oid = to_regclass('__schema__.' || t.name)
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 ORDER BY t.ord
"""


class StepResult(BaseModel):
    step: str
    deleted: int = 0
    seconds: float = 0.0
    error: str | None = None


class CleanupReport(BaseModel):
    """What one cleanup run did (or, with ``dry_run``, would do)."""

    dry_run: bool
    steps: list[StepResult]

    @property
    def total(self) -> int:
        return sum(s.deleted for s in self.steps)

    @property
    def failed(self) -> bool:
        return any(s.error for s in self.steps)


class VacuumResult(BaseModel):
    table: str
    dead_rows_before: int
    seconds: float


def cleanup_steps(db: Any) -> list[str]:
    """The cleanup steps the classes of *db* (an instance or a class) declare, in MRO
    order, each once."""
    seen: list[str] = []
    for klass in (db if isinstance(db, type) else type(db)).__mro__:
        for step in klass.__dict__.get("cleanup_steps", ()):
            if step not in seen:
                seen.append(step)
    return seen


def check_batch_size(batch_size: object) -> int:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH_SIZE
    ):
        raise InvalidInputError(f"batch_size must be an int from 1 to {MAX_BATCH_SIZE} (got {batch_size!r})")
    return batch_size


async def run_cleanup(
    db: Any,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    steps: list[str] | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> CleanupReport:
    """Run every declared cleanup step (or the ones named) of *db*'s namespace.

    A failing step is reported and the others still run. Raises InvalidInputError for a
    bad batch size or an unknown step name, before any step runs.
    """
    size = check_batch_size(batch_size)
    declared = cleanup_steps(db)
    chosen = declared if steps is None else list(steps)
    unknown = [s for s in chosen if s not in declared]
    if unknown:
        raise InvalidInputError(f"unknown cleanup step(s) {unknown}; this database declares {declared}")
    results = []
    for step in chosen:
        start = time.perf_counter()
        result = StepResult(step=step)
        try:
            result.deleted = int(await getattr(db, f"_cleanup_{step}")(dry_run=dry_run, batch_size=size))
        except UnifiedDBError as exc:
            result.error = str(exc)
        result.seconds = time.perf_counter() - start
        results.append(result)
        if on_step is not None:
            on_step(result)
    return CleanupReport(dry_run=dry_run, steps=results)


async def vacuum(db: Any, *, analyze_only: bool = False, timeout: float = 3600.0) -> list[VacuumResult]:
    """VACUUM (ANALYZE) each churn table that exists (only ANALYZE with *analyze_only*).

    Tables are shared by every namespace, so this works on the whole table. VACUUM
    cannot run in a transaction: each statement runs on its own, outside one. Each
    statement may run *timeout* seconds (not command_timeout: a vacuum is slow by nature).
    """
    rows = await db._fetch(PRESENT_SQL, list(CHURN_TABLES))
    statements = ANALYZE_SQL if analyze_only else VACUUM_SQL
    out = []
    async with db._acquire() as con:
        for r in rows:
            start = time.perf_counter()
            await con.execute(statements[r["name"]], timeout=timeout)
            out.append(
                VacuumResult(
                    table=r["name"], dead_rows_before=r["dead_rows"], seconds=time.perf_counter() - start
                )
            )
    return out

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
assert set(VACUUM_SQL) == set(CHURN_TABLES)
# ANALYZE runs in the schema owner's SECURITY DEFINER function (0008_privileged.sql, which
# accepts the churn tables only), so every role with the library's grants may run it.
# VACUUM cannot run in a function (nor in any transaction).
ANALYZE_SQL = "SELECT __schema__.maintain_analyze($1)"

# The churn tables present, their dead rows, and whether this role may VACUUM them: it is
# (a member of) their owner, or holds MAINTAIN (PostgreSQL 17+; `init --app-role` grants it
# on these tables). The CASE never evaluates the MAINTAIN check on an older server, which
# does not know that privilege.
PRESENT_SQL = """
SELECT t.name, coalesce(s.n_dead_tup, 0)::bigint AS dead_rows,
       CASE WHEN pg_has_role(c.relowner, 'USAGE') THEN true
            WHEN current_setting('server_version_num')::int >= 170000
                 THEN has_table_privilege(c.oid, 'MAINTAIN')
            ELSE false END AS may_vacuum
  FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord)
  JOIN pg_class c ON c.oid = to_regclass('__schema__.' || t.name)
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 ORDER BY t.ord
"""

VACUUM_SKIPPED = (
    "VACUUM skipped (ANALYZE done): this role neither owns the table nor holds the MAINTAIN "
    "privilege, which exists from PostgreSQL 17; autovacuum still runs, or run "
    "`unified-db maintain --vacuum` as the schema owner"
)


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
    #: what could not be done on this table, and why (None: all of it was done)
    skipped: str | None = None


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
    A role that may not VACUUM a table (neither its owner nor, on PostgreSQL 17+, holding
    MAINTAIN) gets the ANALYZE only, and the table's ``skipped`` says so.
    """
    rows = await db._fetch(PRESENT_SQL, list(CHURN_TABLES))
    out = []
    async with db._acquire() as con:
        for r in rows:
            start = time.perf_counter()
            refused = not analyze_only and not r["may_vacuum"]
            if analyze_only or refused:
                await con.execute(ANALYZE_SQL, r["name"], timeout=timeout)
            else:
                await con.execute(VACUUM_SQL[r["name"]], timeout=timeout)
            out.append(
                VacuumResult(
                    table=r["name"],
                    dead_rows_before=r["dead_rows"],
                    seconds=time.perf_counter() - start,
                    skipped=VACUUM_SKIPPED if refused else None,
                )
            )
    return out

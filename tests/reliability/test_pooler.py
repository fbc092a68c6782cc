"""What must hold behind a transaction pooler (PgBouncer) as well as on a direct connection.

``.ci/pgbouncer.sh`` runs this file through PgBouncer in transaction mode with
``statement_cache_size=0``; ``make test`` runs it directly.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from unified_db import UnifiedDB

BEHIND_PGBOUNCER = bool(os.environ.get("UNIFIED_DB_TEST_PGBOUNCER"))


async def test_application_name_survives_the_pool_reset(db_dsn: str):
    # asyncpg's reset (RESET ALL) on release would return it to PgBouncer's empty value.
    async with UnifiedDB(db_dsn, application_name="svc-o'brien", min_size=1, max_size=2) as db:
        for _ in range(5):
            assert await db._fetchval("SELECT current_setting('application_name')") == "svc-o'brien"
            async with db._transaction() as con:
                assert await con.fetchval("SELECT current_setting('application_name')") == "svc-o'brien"


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_many_distinct_statements_and_transactions_give_no_prepared_statement_errors(db: UnifiedDB):
    if BEHIND_PGBOUNCER:
        assert db.settings.statement_cache_size == 0
    await db._execute("CREATE TABLE __schema__.rel_p (k int PRIMARY KEY, v jsonb NOT NULL)")

    async def worker(w: int) -> None:
        for i in range(30):
            k = w * 1000 + i
            # Distinct texts and types, interleaved across tasks and server connections.
            await db._execute("INSERT INTO __schema__.rel_p VALUES ($1, $2)", k, {"w": w, "i": i})
            assert (await db._fetchrow("SELECT v FROM __schema__.rel_p WHERE k = $1", k))["v"] == {
                "w": w,
                "i": i,
            }
            async with db._transaction() as con:
                await con.execute("SELECT pg_advisory_xact_lock($1)", w)  # safe in transaction mode
                await con.execute("UPDATE __schema__.rel_p SET v = v || $2 WHERE k = $1", k, {"t": True})
        await db._executemany(
            "UPDATE __schema__.rel_p SET v = v || $2 WHERE k = $1",
            [(w * 1000 + i, {"m": i}) for i in range(30)],
        )

    await asyncio.gather(*(worker(w) for w in range(8)))
    assert await db._fetchval("SELECT count(*) FROM __schema__.rel_p WHERE v ? 't' AND v ? 'm'") == 240

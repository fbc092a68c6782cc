"""What a crash may and may not lose, checked over every table of the schema.

After ``pg_ctl stop -m immediate`` and restart, PostgreSQL empties every UNLOGGED table
and keeps every committed row of every logged one. The check walks the catalog, so a
table a feature adds later is covered without touching the test:

- ``EXPECTED_UNLOGGED``: the tables that are meant to be UNLOGGED (the cache). A table
  that is UNLOGGED but not listed fails the test, so sessions or snapshots can never
  become crash-volatile by accident.
- ``WRITERS``: one coroutine per feature that commits a few rows through the public API;
  the test runs them all before the crash. After merging, each feature adds its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from unified_db import FeatureUnavailableError, UnifiedDB

#: Tables of the library schema that are UNLOGGED on purpose (e.g. "cache_entries").
EXPECTED_UNLOGGED: set[str] = {"cache_entries"}

Writer = Callable[[UnifiedDB], Awaitable[None]]


async def _write_instance_stats(db: UnifiedDB) -> None:
    await db._execute(
        "INSERT INTO __schema__.instance_stats"
        " (instance_id, namespace, application_name, hostname, pid, started_at, stats)"
        " VALUES ($1, $2, 'durability', 'host', 1, now(), $3)",
        db.instance_id,
        db.namespace,
        {"n": 1},
    )


async def _write_cache(db: UnifiedDB) -> None:
    await db.cache_set_many({f"crash:{i}": {"i": i} for i in range(50)}, 3600, tags=["crash"])
    await db.cache_set("crash:forever", "kept until the crash")


async def _write_sessions(db: UnifiedDB) -> None:
    for i in range(20):
        s = await db.session_create(f"user-{i % 3}", {"i": i})
        if i % 2:
            await db.session_update(s.id, {"i": i, "updated": True})


async def _write_snapshots(db: UnifiedDB) -> None:
    for i in range(20):
        await db.memory_snapshot_create(f"agent-{i % 2}", {"step": i}, tags=["crash"])


async def _write_personas(db: UnifiedDB) -> None:
    for i in range(5):
        await db.persona_create({"name": f"crash-{i}", "display_name": f"P{i}", "system_prompt": "hi"})
        await db.persona_update(f"crash-{i}", {"description": "second version"})
    await db.persona_set_default("crash-0")
    await db.persona_set_user_preference("user-1", "crash-1")
    await db.persona_record_metric("crash-0", "latency_ms", 12.5)


async def _write_workflows(db: UnifiedDB) -> None:
    agent = await db.agent_create("crash-agent")
    for i in range(10):
        run = await db.workflow_create("crash", agent_id=agent.id, input={"i": i})
        if i % 2:
            await db.workflow_transition(run.id, "running", expected_status="pending", worker="w")


async def _write_vectors(db: UnifiedDB) -> None:
    try:
        await db.vector_collection_create("crash", 3)
    except FeatureUnavailableError:
        return  # a server without pgvector: nothing to keep
    await db.vector_upsert("crash", [{"id": f"v{i}", "embedding": [1.0, float(i), 0.5]} for i in range(10)])


#: name -> coroutine that commits rows through the library (features append theirs).
WRITERS: dict[str, Writer] = {
    "instance_stats": _write_instance_stats,
    "cache": _write_cache,
    "sessions": _write_sessions,
    "snapshots": _write_snapshots,
    "personas": _write_personas,
    "workflows": _write_workflows,
    "vectors": _write_vectors,
}

_TABLES = """
SELECT c.relname, c.relpersistence::text AS relpersistence
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
 ORDER BY 1
"""


async def table_persistence(dsn: str, schema: str) -> dict[str, str]:
    """Every table of *schema*: name -> 'logged' or 'unlogged'."""
    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch(_TABLES, schema)
    finally:
        await con.close()
    return {r["relname"]: "unlogged" if r["relpersistence"] == "u" else "logged" for r in rows}


async def row_counts(dsn: str, schema: str, tables: list[str]) -> dict[str, int]:
    con = await asyncpg.connect(dsn)
    try:
        out = {}
        for table in tables:
            # Names come from the catalog, quoted by the server.
            sql = await con.fetchval(
                "SELECT format('SELECT count(*) FROM %I.%I', $1::text, $2::text)", schema, table
            )
            out[table] = await con.fetchval(sql)
        return out
    finally:
        await con.close()


def assert_crash_durability(
    before: dict[str, int],
    after: dict[str, int],
    persistence: dict[str, str],
    also_unlogged: frozenset[str] = frozenset(),
) -> None:
    """Logged tables keep exactly the rows committed before the crash; unlogged ones are empty.

    *also_unlogged*: UNLOGGED tables a test created itself, beside ``EXPECTED_UNLOGGED``.
    """
    allowed = EXPECTED_UNLOGGED | also_unlogged
    unexpected = {t for t, p in persistence.items() if p == "unlogged"} - allowed
    assert not unexpected, f"tables UNLOGGED without being listed in EXPECTED_UNLOGGED: {unexpected}"
    for table, kind in persistence.items():
        if kind == "logged":
            assert after[table] == before[table], (
                f"{table}: {before[table]} rows committed, {after[table]} left"
            )
        else:
            assert after[table] == 0, f"unlogged {table} kept {after[table]} rows across a crash"

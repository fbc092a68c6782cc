"""The base class against a real PostgreSQL: lifecycle, health, migrations, faults."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import asyncpg
import pytest

from unified_db import (
    DatabaseUnavailableError,
    InvalidInputError,
    MigrationError,
    PoolClosedError,
    UnifiedDB,
)
from unified_db.migrate import load_migrations

from .. import pg

CATALOG = """
SELECT 'col' AS kind, table_name || '.' || column_name || ':' || data_type AS item
  FROM information_schema.columns WHERE table_schema = $1
UNION ALL SELECT 'idx', indexdef FROM pg_indexes WHERE schemaname = $1
UNION ALL SELECT 'con', conrelid::regclass::text || ':' || pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1
UNION ALL SELECT 'fn', p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = $1
ORDER BY 1, 2
"""


async def catalog(dsn: str, schema: str = "unified_db") -> list[tuple[str, str]]:
    con = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await con.fetch(CATALOG, schema)]
    finally:
        await con.close()


async def test_health_reports_server_and_schema(db: UnifiedDB):
    h = await db.health()
    assert h.ok and h.server_version and h.latency_ms is not None and h.latency_ms >= 0
    assert h.schema_version == load_migrations()[-1].version
    assert h.schema_name == "unified_db" and h.namespace == "default"
    assert h.pool_size >= 1 and h.pool_max_size == 10
    assert h.embedded is False  # a DSN was given


async def test_methods_before_open_and_after_close_raise_pool_closed(db_dsn: str):
    db = UnifiedDB(db_dsn)
    with pytest.raises(PoolClosedError):
        await db.health()
    await db.open()
    await db.open()  # idempotent
    assert db.is_open
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(PoolClosedError):
        await db.health()


async def test_application_name_and_statement_cache_reach_the_driver(db_dsn: str):
    async with UnifiedDB(db_dsn, application_name="svc-x", statement_cache_size=0) as db:
        assert await db._fetchval("SELECT current_setting('application_name')") == "svc-x"
        async with db._acquire() as con:
            assert con.raw._stmt_cache.get_max_size() == 0


@pytest.mark.needs_owner("migrates a second schema")
async def test_custom_schema_keeps_tables_apart(db_dsn: str):
    async with UnifiedDB(db_dsn, schema="tenant_schema") as db:
        h = await db.health()
        assert h.ok and h.schema_name == "tenant_schema"
        n = await db._fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'tenant_schema'")
        assert n >= 2


async def test_migrations_down_all_the_way_and_up_again_restore_the_catalog(empty_dsn: str):
    async with UnifiedDB(empty_dsn, auto_migrate=False) as db:
        assert await db.migrate() == [m.version for m in load_migrations()]
        assert await db.migrate() == []  # nothing pending
        before = await catalog(empty_dsn)
        assert before
        reverted = await db.migrate_down(len(load_migrations()))
        assert reverted == sorted(reverted, reverse=True)
        assert not any(m.applied for m in await db.migration_status())
        leftovers = await catalog(empty_dsn)
        assert all("schema_migrations" in item for _, item in leftovers)
        await db.migrate()
        assert await catalog(empty_dsn) == before
        assert all(m.applied for m in await db.migration_status())


async def test_migrate_to_a_target_version_and_down_one_step(empty_dsn: str):
    ms = load_migrations()
    async with UnifiedDB(empty_dsn, auto_migrate=False) as db:
        assert await db.migrate(target=1) == [1]
        if len(ms) > 1:
            assert (await db.migration_status())[1].applied is False
        assert await db.migrate_down() == [1]
        assert await db.migrate_down() == []


@pytest.mark.needs_owner("edits the migration ledger, which the app role only reads")
async def test_changed_checksum_of_an_applied_migration_is_an_error(db_dsn: str):
    async with UnifiedDB(db_dsn) as db:
        await db._execute("UPDATE __schema__.schema_migrations SET checksum = 'tampered' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        async with UnifiedDB(db_dsn):
            pass


async def test_ten_concurrent_first_opens_apply_each_migration_once(empty_dsn: str):
    dbs = [UnifiedDB(empty_dsn, min_size=1, max_size=2) for _ in range(10)]
    await asyncio.gather(*(d.open() for d in dbs))
    try:
        rows = await dbs[0]._fetch("SELECT version FROM __schema__.schema_migrations ORDER BY 1")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
    finally:
        await asyncio.gather(*(d.close() for d in dbs))


async def test_ten_concurrent_processes_open_a_fresh_database(empty_dsn: str):
    code = textwrap.dedent(f"""
        import asyncio
        from unified_db import UnifiedDB
        async def main():
            async with UnifiedDB({empty_dsn!r}, min_size=1, max_size=1) as db:
                print((await db.health()).schema_version)
        asyncio.run(main())
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(10)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert {o[0].strip() for o in outs} == {str(load_migrations()[-1].version)}


async def test_unreachable_server_fails_within_connect_timeout():
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
        async with UnifiedDB("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2):
            pass
    assert time.monotonic() - start < 5


async def test_silent_server_fails_within_connect_timeout():
    # A local socket that accepts and never answers: the connect can only time out.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    start = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError):
            async with UnifiedDB(f"postgresql://nobody@127.0.0.1:{port}/none", connect_timeout=1):
                pass
    finally:
        server.close()
    assert time.monotonic() - start < 4


async def test_every_pooled_backend_killed_then_100_reads_succeed(db_dsn: str, admin_dsn: str):
    async with UnifiedDB(db_dsn, min_size=4, max_size=4) as db:
        await asyncio.gather(*(db._fetchval("SELECT pg_sleep(0.05)") for _ in range(4)))
        admin = await asyncpg.connect(admin_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'unified_db' AND pid <> pg_backend_pid()",
                pg.urlsplit_db(db_dsn),
            )
        finally:
            await admin.close()
        assert killed >= 4
        results = [await db._fetchval("SELECT 1") for _ in range(100)]
        assert results == [1] * 100
        assert db.get_stats().get("connections_lost", 0) >= 1


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_a_write_on_a_lost_connection_is_not_retried(db_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=1) as db:
        await db._execute("CREATE TABLE public.w (n int)")
        with pytest.raises(DatabaseUnavailableError):
            await db._execute("INSERT INTO public.w SELECT 1 FROM pg_terminate_backend(pg_backend_pid())")
        assert await db._fetchval("SELECT count(*) FROM public.w") == 0
        assert db.get_stats().get("retries", 0) == 0


async def test_a_read_on_a_lost_connection_is_retried_once(db_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=1) as db:
        # The first attempt kills its own backend; the retry runs on a fresh connection
        # whose pid differs, so the same statement then succeeds.
        first = await db._fetchval("SELECT pg_backend_pid()")
        got = await db._fetchval(
            "SELECT CASE WHEN pg_backend_pid() = $1 THEN pg_terminate_backend(pg_backend_pid())"
            " ELSE true END",
            first,
        )
        assert got is True
        assert db.get_stats()["retries"] == 1


async def test_sql_errors_are_wrapped(db: UnifiedDB):
    from unified_db import UnifiedDBError

    with pytest.raises(UnifiedDBError) as err:
        await db._fetchval("SELECT * FROM no_such_table")
    assert isinstance(err.value.__cause__, asyncpg.PostgresError)


async def test_bad_settings_fail_before_connecting():
    with pytest.raises(InvalidInputError):
        UnifiedDB("postgresql://127.0.0.1:1/x", min_size=9, max_size=1)


def test_embedded_server_starts_and_is_reused_across_processes(tmp_path):
    data_dir = tmp_path / "emb"
    code = textwrap.dedent("""
        import asyncio, sys
        from unified_db import UnifiedDB
        async def main():
            async with UnifiedDB(data_dir=sys.argv[1]) as db:
                h = await db.health()
                assert h.ok and h.embedded, h
                pid = await db._fetchval("SELECT pg_postmaster_start_time()::text")
                print(pid, h.server_version, flush=True)
                if len(sys.argv) > 2:
                    sys.stdin.readline()  # hold the server until told
        asyncio.run(main())
    """)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("UNIFIED_DB_")}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir), "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = holder.stdout.readline().split()
        assert first and first[-1].startswith("18"), first
        second = subprocess.run(
            [sys.executable, "-c", code, str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr[-2000:]
        assert second.stdout.split()[0:2] == first[0:2]  # same postmaster start time: reused
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0


@pytest.mark.parametrize("steps", [0, -1, 1.5, "1", True, None])
async def test_migrate_down_rejects_bad_steps_before_any_io(db: UnifiedDB, steps):
    before = [m.applied for m in await db.migration_status()]
    with pytest.raises(InvalidInputError):
        await db.migrate_down(steps)
    assert [m.applied for m in await db.migration_status()] == before


@pytest.mark.needs_owner("creates a role")
async def test_missing_privilege_is_permission_denied(db: UnifiedDB):
    from unified_db import PermissionDeniedError

    role = pg.unique_name("udb_nopriv")  # roles are cluster-wide: never reuse a name
    await db._execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        with pytest.raises(PermissionDeniedError, match="may not"):
            async with db._transaction() as con:
                await con.execute(f'SET LOCAL ROLE "{role}"')
                await con.fetchval("SELECT count(*) FROM __schema__.schema_migrations")
    finally:
        await db._execute(f'DROP ROLE "{role}"')

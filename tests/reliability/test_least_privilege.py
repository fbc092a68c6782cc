"""``unified-db init --app-role``: the library runs as a role that cannot change the schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from typer.testing import CliRunner

from unified_db import ConflictError, InvalidInputError, MigrationError, UnifiedDB, UnifiedDBError
from unified_db.cli import app
from unified_db.extensions._pool_logic import CHURN_TABLES
from unified_db.monitoring.maintenance import vacuum
from unified_db.roles import grant_app_role

from .. import pg

as_user = pg.as_user

pytestmark = pytest.mark.needs_owner("creates and drops roles and tables: the admin's job")

TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1"


async def roles_named(admin_dsn: str, role: str) -> int:
    con = await asyncpg.connect(admin_dsn)
    try:
        return await con.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", role)
    finally:
        await con.close()


@pytest.fixture
async def role(db_dsn: str) -> AsyncIterator[str]:
    name = pg.unique_name("udb_app").lower()
    yield name
    await pg.drop_role_in(db_dsn, name)


DDL = [
    "CREATE TABLE __schema__.evil (n int)",
    "TRUNCATE __schema__.instance_stats",
    "DROP TABLE __schema__.instance_stats",
    "ALTER TABLE __schema__.instance_stats ADD COLUMN evil int",
    "CREATE INDEX evil ON __schema__.instance_stats (pid)",
    "DELETE FROM __schema__.schema_migrations",  # the ledger is read-only for the app
    "CREATE SCHEMA evil",
]


async def test_the_library_runs_as_the_app_role_and_ddl_is_refused(
    db: UnifiedDB, db_dsn: str, admin_dsn: str, role: str
):
    result = await grant_app_role(db, role)
    assert result.created and result.role == role and result.schema_name == db.schema
    before = {r[0] for r in await db._fetch(TABLES, db.schema)}
    # A table a later migration adds (same owner) is covered by the default privileges.
    await db._execute("CREATE TABLE __schema__.rel_later (k text PRIMARY KEY, v int)")

    # Straight to the server: a pooler's auth file would not know the new role.
    app_dsn = as_user(pg.with_database(admin_dsn, pg.urlsplit_db(db_dsn)), role)
    async with UnifiedDB(app_dsn, min_size=1, max_size=2) as app_db:
        health = await app_db.health()
        assert health.ok and health.schema_version is not None
        assert await app_db._fetchval("SELECT current_user") == role
        await app_db._execute(
            "INSERT INTO __schema__.instance_stats"
            " (instance_id, namespace, application_name, hostname, pid, started_at, stats)"
            " VALUES ('i1', 'default', 'app', 'h', 1, now(), $1)",
            {"a": 1},
        )
        await app_db._execute("UPDATE __schema__.instance_stats SET pid = 2 WHERE instance_id = 'i1'")
        assert (
            await app_db._fetchval("SELECT pid FROM __schema__.instance_stats WHERE instance_id = 'i1'") == 2
        )
        await app_db._execute("INSERT INTO __schema__.rel_later VALUES ('k', 1)")
        await app_db._execute("DELETE FROM __schema__.rel_later WHERE k = 'k'")
        await app_db._execute("DELETE FROM __schema__.instance_stats WHERE instance_id = 'i1'")

        for statement in DDL:
            with pytest.raises(UnifiedDBError) as err:
                await app_db._execute(statement)
            assert isinstance(err.value.__cause__, asyncpg.InsufficientPrivilegeError), statement
        with pytest.raises(UnifiedDBError):
            await app_db.migrate_down()  # the deploy step's job, not the app's
    # Nothing dropped, nothing created: the tables are those of the migrations and rel_later.
    assert {r[0] for r in await db._fetch(TABLES, db.schema)} == before | {"rel_later"}
    assert await db._fetchval("SELECT count(*) FROM __schema__.schema_migrations") >= 1


async def test_granting_again_is_idempotent_and_takes_back_extra_privileges(db: UnifiedDB, role: str):
    first = await grant_app_role(db, role)
    extra = "TRUNCATE, MAINTAIN" if first.maintain else "TRUNCATE"
    for template in (
        f"GRANT {extra} ON ALL TABLES IN SCHEMA unified_db TO %I",
        # as an older release granted: every function, and later ones by default
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA unified_db TO %I",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA unified_db GRANT EXECUTE ON FUNCTIONS TO %I",
    ):
        await db._execute(await db._fetchval("SELECT format($1::text, $2::text)", template, role))
    again = await grant_app_role(db, role, password="s3cret-'quote")
    assert again.created is False and again.password_set is True
    held = await db._fetch(
        "SELECT a.privilege_type, c.relname FROM pg_class c, aclexplode(c.relacl) a"
        " WHERE c.relnamespace = 'unified_db'::regnamespace AND a.grantee = $1::regrole"
        " AND a.privilege_type IN ('TRUNCATE', 'MAINTAIN')",
        role,
    )
    assert {(r["privilege_type"], r["relname"]) for r in held} == (
        {("MAINTAIN", t) for t in CHURN_TABLES} if again.maintain else set()
    )
    explicit = await db._fetch(
        "SELECT routine_name FROM information_schema.role_routine_grants"
        " WHERE grantee = $1 AND routine_schema = 'unified_db'",
        role,
    )
    assert {r[0] for r in explicit} == {p.split("(")[0] for p in PRIVILEGED}
    default_acl = await db._fetchval(
        "SELECT count(*) FROM pg_default_acl d, aclexplode(d.defaclacl) a"
        " WHERE d.defaclobjtype = 'f' AND a.grantee = $1::regrole",
        role,
    )
    assert default_acl == 0
    assert await db._fetchval("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1", role)


@pytest.mark.parametrize(
    "bad", ["", "Upper", "has space", "x;drop role postgres", "pg_evil", "a" * 64, "naïve", None, 7]
)
async def test_a_bad_role_name_is_refused_before_any_change(db: UnifiedDB, admin_dsn: str, bad):
    before = await db._fetchval("SELECT count(*) FROM pg_roles")
    with pytest.raises(InvalidInputError, match="app role"):
        await grant_app_role(db, bad)
    assert await db._fetchval("SELECT count(*) FROM pg_roles") == before


async def test_a_bad_password_is_refused_before_any_change(db: UnifiedDB, admin_dsn: str, role: str):
    for bad in ("", "nul\x00inside", 5):
        with pytest.raises(InvalidInputError, match="password"):
            await grant_app_role(db, role, password=bad)
    assert await roles_named(admin_dsn, role) == 0


async def test_a_superuser_is_never_made_the_app_role(db: UnifiedDB):
    user = await db._fetchval("SELECT current_user")
    before = await db._fetchval("SELECT count(*) FROM information_schema.role_table_grants")
    with pytest.raises(ConflictError, match="SUPER"):
        await grant_app_role(db, user)
    assert await db._fetchval("SELECT count(*) FROM information_schema.role_table_grants") == before


def test_cli_init_with_app_role(db_dsn: str, admin_dsn: str):
    role = pg.unique_name("udb_cli").lower()
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["init", "--dsn", db_dsn, "--app-role", role])
        assert result.exit_code == 0, result.output
        assert f"app role {role} created" in result.output
        again = runner.invoke(app, ["init", "--dsn", db_dsn, "--app-role", role])
        assert again.exit_code == 0 and f"app role {role} updated" in again.output
        assert asyncio.run(roles_named(admin_dsn, role)) == 1
        bad = runner.invoke(app, ["init", "--dsn", db_dsn, "--app-role", "Bad Name"])
        assert bad.exit_code == 2 and "app role" in bad.output
    finally:
        asyncio.run(pg.drop_role_in(db_dsn, role))


async def test_the_app_role_with_a_pending_migration_gets_a_clear_migration_error(
    db: UnifiedDB, db_dsn: str, admin_dsn: str, role: str
):
    await grant_app_role(db, role)
    # As if a new release shipped a migration the deploy step has not applied yet.
    applied = await db._fetchval("SELECT count(*) FROM __schema__.schema_migrations")
    await db._execute("DELETE FROM __schema__.schema_migrations WHERE version = 1")
    app_dsn = as_user(pg.with_database(admin_dsn, pg.urlsplit_db(db_dsn)), role)
    with pytest.raises(MigrationError, match="unified-db migrate"):
        async with UnifiedDB(app_dsn, min_size=1, max_size=1):
            pass
    # The app role applied nothing: the ledger still lacks exactly the one version.
    assert await db._fetchval("SELECT count(*) FROM __schema__.schema_migrations") == applied - 1


CATALOG = """
SELECT c.relname AS name, c.relkind::text AS kind,
       has_table_privilege($2, c.oid, 'SELECT') AS sel,
       has_table_privilege($2, c.oid, 'INSERT') AS ins,
       has_table_privilege($2, c.oid, 'UPDATE') AS upd,
       has_table_privilege($2, c.oid, 'DELETE') AS del,
       has_table_privilege($2, c.oid, 'TRUNCATE') AS trunc,
       has_table_privilege($2, c.oid, 'REFERENCES') AS refs,
       has_table_privilege($2, c.oid, 'TRIGGER') AS trig,
       c.relkind = 'S' AND has_sequence_privilege($2, c.oid, 'USAGE') AS seq,
       pg_get_userbyid(c.relowner) = $2 AS owns
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S')
 ORDER BY 1
"""
FUNCTIONS = """
SELECT p.proname, has_function_privilege($2, p.oid, 'EXECUTE') AS exec
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
"""


async def test_the_app_role_privileges_follow_the_catalog(db: UnifiedDB, owner_dsn: str, role: str):
    # Every table, sequence and function the migrations made, whatever features add:
    # rows yes, schema no.
    result = await grant_app_role(db, role)
    # On a server with pgvector, init creates the item table the vectors feature would
    # otherwise create at run time (DDL), so the grants cover it.
    pgvector = await db._fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    assert result.vector_storage is bool(pgvector)
    rows = await db._fetch(CATALOG, db.schema, role)
    tables = [r for r in rows if r["kind"] != "S"]
    assert len(tables) >= 10, "the catalog query sees the features' tables"
    assert ("vector_items" in {r["name"] for r in tables}) is bool(pgvector)
    for r in tables:
        dml = (r["sel"], r["ins"], r["upd"], r["del"])
        expected = (True, False, False, False) if r["name"] == "schema_migrations" else (True,) * 4
        assert dml == expected, r["name"]
        assert not (r["trunc"] or r["refs"] or r["trig"] or r["owns"]), r["name"]
    for r in rows:
        if r["kind"] == "S":
            assert r["seq"] and not r["owns"], r["name"]
    assert all(r["exec"] for r in await db._fetch(FUNCTIONS, db.schema, role))
    if result.maintain:  # PostgreSQL 17+: MAINTAIN (for VACUUM) on the churn tables only
        held = await db._fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'r'"
            " AND has_table_privilege($2, oid, 'MAINTAIN')",
            db.schema,
            role,
        )
        assert {r[0] for r in held} == set(CHURN_TABLES)

    # And the server refuses every table's DDL to the role.
    app_dsn = as_user(owner_dsn, role)
    con = await asyncpg.connect(app_dsn)
    try:
        for r in tables:
            table = await con.fetchval("SELECT format('%I.%I', $1::text, $2::text)", db.schema, r["name"])
            for template in ("TRUNCATE {}", "DROP TABLE {}", "ALTER TABLE {} ADD COLUMN evil int"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await con.execute(template.format(table))
    finally:
        await con.close()
    assert {r[0] for r in await db._fetch(TABLES, db.schema)} == {r["name"] for r in tables}


#: The SECURITY DEFINER functions of 0008_privileged.sql, which `init --app-role` grants.
PRIVILEGED = {
    "cache_set_durable(durable boolean)",
    "maintain_analyze(table_name text)",
    "vector_index_build(collection_id bigint)",
    "vector_index_drop(collection_id bigint)",
    "vector_storage_ensure()",
}
DEFINERS = """
SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ')' AS signature, p.proconfig,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
       has_function_privilege($2, p.oid, 'EXECUTE') AS role_exec
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = $1 AND p.prosecdef
"""


async def test_only_the_app_role_may_run_the_privileged_functions(db: UnifiedDB, owner_dsn: str, role: str):
    await grant_app_role(db, role)
    rows = await db._fetch(DEFINERS, db.schema, role)
    assert {r["signature"] for r in rows} == PRIVILEGED
    for r in rows:
        assert r["proconfig"] == ["search_path=pg_catalog, pg_temp"], r["signature"]
        assert r["role_exec"] and not r["public_exec"], r["signature"]
    # A role with PUBLIC's rights (and usage of the schema, so that the function itself
    # is what refuses) may run none of them.
    stranger = pg.unique_name("udb_stranger").lower()
    templates = ("CREATE ROLE %I NOLOGIN", "GRANT USAGE ON SCHEMA unified_db TO %I", "SET LOCAL ROLE %I")
    create, usage, become = [
        await db._fetchval("SELECT format($1::text, $2::text)", template, stranger) for template in templates
    ]
    await db._execute(create)
    await db._execute(usage)
    try:
        for call in (
            "SELECT __schema__.cache_set_durable(true)",
            "SELECT __schema__.maintain_analyze('sessions')",
            "SELECT __schema__.vector_index_build(1)",
            "SELECT __schema__.vector_index_drop(1)",
            "SELECT __schema__.vector_storage_ensure()",
        ):
            with pytest.raises(UnifiedDBError, match="permission denied for function"):
                async with db._transaction() as con:
                    await con.execute(become)
                    await con.execute(call)
    finally:
        await pg.drop_role_in(owner_dsn, stranger)


async def test_the_app_role_runs_the_ddl_features_but_no_ddl_of_its_own(
    db: UnifiedDB, db_dsn: str, admin_dsn: str, role: str
):
    granted = await grant_app_role(db, role)
    version = await db._fetchval("SELECT current_setting('server_version_num')::int")
    assert granted.maintain is (version >= 170000)
    app_dsn = as_user(pg.with_database(admin_dsn, pg.urlsplit_db(db_dsn)), role)
    direct = ["ALTER TABLE __schema__.cache_entries SET LOGGED"]
    if granted.vector_storage:
        direct += [
            "CREATE INDEX evil ON __schema__.vector_items USING hnsw ((embedding::vector(3)) vector_l2_ops)",
            "CREATE INDEX evil ON __schema__.vector_items (namespace)",
            "DROP INDEX __schema__.vector_items_tsv",
        ]
    async with UnifiedDB(app_dsn, min_size=1, max_size=2) as app_db:
        for statement in direct:
            with pytest.raises(UnifiedDBError) as err:
                await app_db._execute(statement)
            assert isinstance(err.value.__cause__, asyncpg.InsufficientPrivilegeError), statement

        # ... while the library's calls, through the owner's functions, succeed.
        assert await app_db.cache_set_durable(True) is True
        assert (await app_db.cache_info()).durable is True
        await app_db.cache_set_durable(False)
        results = await vacuum(app_db)
        assert [r.table for r in results] == list(CHURN_TABLES)
        if granted.maintain:  # PostgreSQL 17+: MAINTAIN on the churn tables
            assert all(r.skipped is None for r in results)
        else:  # older: ANALYZE only, and each table says so
            assert all(r.skipped and "VACUUM skipped" in r.skipped for r in results)
        assert all(r.skipped is None for r in await vacuum(app_db, analyze_only=True))
        if not granted.vector_storage:
            return
        await app_db.vector_collection_create("docs", 3)
        await app_db.vector_collection_create("later", 3, distance="l2", build_index=False)
        ids = {c: (await app_db._fetchval(_COLLECTION_ID, c)) for c in ("docs", "later")}
        assert await db._fetchval(_INDEX_VALID, f"unified_db.vector_items_hnsw_{ids['docs']}") is True
        # The app role's deferred build goes through vector_index_build() (not concurrently).
        assert await app_db.vector_collection_build_index("later") is True
        assert await app_db.vector_collection_build_index("later") is False
        assert await db._fetchval(_INDEX_VALID, f"unified_db.vector_items_hnsw_{ids['later']}") is True
        # The function checks the catalog's numbers itself (the role may write that table):
        # nothing the role puts there reaches the DDL.
        await app_db._execute(
            "UPDATE __schema__.vector_collections SET options = '{\"m\": 1000}' WHERE id = $1", ids["later"]
        )
        await db._execute(f"DROP INDEX unified_db.vector_items_hnsw_{ids['later']}")
        with pytest.raises(UnifiedDBError, match="no valid HNSW definition"):
            await app_db._execute("SELECT __schema__.vector_index_build($1)", ids["later"])
        # Only the index of a dropped collection may be dropped through vector_index_drop().
        with pytest.raises(UnifiedDBError, match="still exists"):
            await app_db._execute("SELECT __schema__.vector_index_drop($1)", ids["docs"])
        await app_db.vector_collection_drop("docs")
        assert await db._fetchval(_INDEX_VALID, f"unified_db.vector_items_hnsw_{ids['docs']}") is None


_COLLECTION_ID = "SELECT id FROM __schema__.vector_collections WHERE namespace = 'default' AND name = $1"
_INDEX_VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)"

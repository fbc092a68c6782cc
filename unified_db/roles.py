"""Least privilege: a login role with only what the library needs at run time.

``unified-db init --app-role NAME`` runs :func:`grant_app_role` after the migrations.
The role may read and write rows (SELECT, INSERT, UPDATE, DELETE), use sequences, and
only read ``schema_migrations``; it gets no CREATE, TRUNCATE, REFERENCES or TRIGGER,
owns nothing, and so cannot create, alter, empty or drop a table. The few run-time steps
that are DDL (a vector collection's index, the vector item table, the cache table's
durability, ANALYZE) go through the schema owner's SECURITY DEFINER functions of
``0008_privileged.sql``, each doing one fixed thing: the role may EXECUTE those, which
PUBLIC may not. On PostgreSQL 17+ it also holds MAINTAIN on the high-churn tables, so
``unified-db maintain`` may VACUUM them (VACUUM cannot run in a function).
Migrations keep running as the owner (the deploy step); the application connects as
the role. On a server with pgvector it also creates the extension (a superuser's step)
and the vector item table.

Every statement is rendered by the server (``format()`` with ``%I`` and ``%L``), so the
role name, schema and password are quoted by PostgreSQL, never spliced in Python.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .errors import ConflictError, InvalidInputError

if TYPE_CHECKING:
    from .core import Conn, UnifiedPostgreSQL

ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# format() arguments: %1$I schema, %2$I role, %3$I database, %4$L password.
_RENDER = "SELECT format($3::text, $1::text, $2::text, current_database(), $4::text)"

_ROLE = (
    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
    " FROM pg_roles WHERE rolname = $1"
)
_CREATE = "CREATE ROLE %2$I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_PASSWORD = "ALTER ROLE %2$I PASSWORD %4$L"

_GRANTS = (
    "GRANT CONNECT ON DATABASE %3$I TO %2$I",
    "GRANT USAGE ON SCHEMA %1$I TO %2$I",
    "REVOKE CREATE ON SCHEMA %1$I FROM %2$I",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %1$I TO %2$I",
    # A role that existed before may hold more: take back what DDL-like power it had.
    "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA %1$I FROM %2$I",
    # The migration ledger is the deploy step's: the app only reads it (health, status).
    "REVOKE INSERT, UPDATE, DELETE ON %1$I.schema_migrations FROM %2$I",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %1$I TO %2$I",
    # Tables a later migration creates (run by the same owner) are covered too.
    "ALTER DEFAULT PRIVILEGES IN SCHEMA %1$I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %2$I",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA %1$I GRANT USAGE, SELECT ON SEQUENCES TO %2$I",
    # EXECUTE on the privileged functions only (PUBLIC runs the others). A role granted by
    # an older release holds it on every function, and by default on later ones: take
    # that back, so a function a later migration adds is granted only here, by name.
    "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA %1$I FROM %2$I",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA %1$I REVOKE EXECUTE ON FUNCTIONS FROM %2$I",
    "GRANT EXECUTE ON FUNCTION %1$I.vector_storage_ensure(), %1$I.vector_index_build(bigint),"
    " %1$I.vector_index_drop(bigint), %1$I.cache_set_durable(boolean), %1$I.maintain_analyze(text)"
    " TO %2$I",
)
# PostgreSQL 17+: MAINTAIN lets `unified-db maintain` VACUUM the churn tables
# (CHURN_TABLES); it also allows ANALYZE, REINDEX, CLUSTER and LOCK TABLE on them, none of
# which changes the schema. Nowhere else.
_MAINTAIN = (
    "REVOKE MAINTAIN ON ALL TABLES IN SCHEMA %1$I FROM %2$I",
    "GRANT MAINTAIN ON TABLE %1$I.cache_entries, %1$I.sessions, %1$I.memory_snapshots,"
    " %1$I.workflow_runs, %1$I.instance_stats TO %2$I",
)
_VERSION = "SELECT current_setting('server_version_num')::int"

_POWERS = ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")


class AppRole(BaseModel):
    """What :func:`grant_app_role` did."""

    role: str
    schema_name: str
    created: bool
    password_set: bool
    #: pgvector's item table exists (created now if needed), so the grants cover it
    vector_storage: bool = False
    #: MAINTAIN granted on the churn tables (PostgreSQL 17+): the role may VACUUM them
    maintain: bool = False


def check_role_name(role: object) -> str:
    """*role* if it is a plain lowercase identifier; InvalidInputError otherwise."""
    if not isinstance(role, str) or not ROLE_RE.match(role) or role.startswith("pg_"):
        raise InvalidInputError(
            f"app role {role!r} must be a plain lowercase identifier "
            "(letters, digits and _; at most 63 characters; not starting with pg_)"
        )
    return role


async def grant_app_role(db: UnifiedPostgreSQL, role: str, *, password: str | None = None) -> AppRole:
    """Create *role* (a login role) if missing and grant it the run-time privileges only.

    Run it after the migrations, as the schema owner. Idempotent: rerunning it
    re-grants (covering tables added since) and revokes any DDL-like table privilege the
    role had. *password* (optional) is set on the role. Raises InvalidInputError for a
    bad name or password, ConflictError when the role exists with superuser-like
    attributes (it would bypass every restriction). One transaction, about 30 round trips.
    """
    check_role_name(role)
    if password is not None and (not isinstance(password, str) or not password or "\x00" in password):
        raise InvalidInputError("app role password must be a non-empty string without NUL characters")
    schema = db.schema
    async with db._transaction() as con:

        async def run(template: str) -> None:
            statement = await con.fetchval(_RENDER, schema, role, template, password)
            await con.execute(statement)

        existing = await con.fetchrow(_ROLE, role)
        if existing is not None:
            powers = [p for p in _POWERS if existing[p]]
            if powers:
                raise ConflictError(
                    f"role {role!r} exists with {', '.join(p[3:].upper() for p in powers)}; "
                    "an app role must not have them: choose another name"
                )
        else:
            await run(_CREATE)
        if password is not None:
            await run(_PASSWORD)
        vector_storage = await _prepare_vector_storage(db, con)
        maintain = await con.fetchval(_VERSION) >= 170000
        for template in _GRANTS + (_MAINTAIN if maintain else ()):
            await run(template)
    return AppRole(
        role=role,
        schema_name=schema,
        created=existing is None,
        password_set=password is not None,
        vector_storage=vector_storage,
        maintain=maintain,
    )


async def _prepare_vector_storage(db: UnifiedPostgreSQL, con: Conn) -> bool:
    """Install pgvector and create its item table now, as the owner, when the server has it.

    CREATE EXTENSION needs a superuser (or a trusted extension), which the app role never
    is; the table the app role could create later through vector_storage_ensure(), but
    made now it is covered by the grants below at once. Returns whether the table exists;
    False (nothing done) on a server without pgvector or for an owner who may not
    install it: vectors then stay unavailable, as they would for the owner.
    """
    from .errors import FeatureUnavailableError
    from .vectors.pgvector import EXTENSION_STATUS, PgVectorBackend

    status = await con.fetchrow(EXTENSION_STATUS)
    if status["storage"]:
        return True
    if status["installed"] is None and not status["available"]:
        return False
    try:
        await PgVectorBackend(db)._ensure_storage(con)  # type: ignore[arg-type]
    except FeatureUnavailableError:
        return False
    return True

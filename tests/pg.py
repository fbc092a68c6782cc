"""Test support: a real PostgreSQL for the suite and a fresh database per test.

The server is the one named by ``UNIFIED_DB_TEST_DSN`` or, by default, an embedded
PostgreSQL started once per test session in a temporary directory. Each test gets a
database cloned from a template that was migrated once (``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from unified_db import UnifiedDB


def with_database(dsn: str, database: str) -> str:
    """*dsn* pointing at *database* instead."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def as_user(dsn: str, user: str, password: str | None = None) -> str:
    """*dsn* logging in as *user* instead (same host, port, database and options)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = user if password is None else f"{user}:{password}"
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def with_query(dsn: str, **params: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def start_embedded(data_dir: Path, cleanup_mode: str | None = "stop") -> str:
    """Start an embedded server in *data_dir*; returns its admin DSN."""
    from unified_db.embedded import _start

    return _start(data_dir, cleanup_mode)


async def _admin(dsn: str, *statements: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await con.execute(sql)
    finally:
        await con.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(admin_dsn, f'CREATE DATABASE "{name}"{clause}'))
    return with_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    asyncio.run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def build_template(admin_dsn: str, app_role: str | None = None) -> str:
    """A database with every migration applied, to clone for each test.

    With *app_role*, ``unified-db init --app-role`` then grants that role the run-time
    privileges, as a deployment would; the clones inherit the grants.
    """
    name = unique_name("udb_tpl")
    dsn = create_database(admin_dsn, name)

    async def migrate() -> None:
        db = UnifiedDB(dsn, min_size=1, max_size=1)
        await db.open()
        await db.close()

    asyncio.run(migrate())
    if app_role is not None:
        cli = Path(sys.executable).with_name("unified-db")
        done = subprocess.run(
            [str(cli), "init", "--dsn", dsn, "--app-role", app_role], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"unified-db init --app-role failed:\n{done.stdout}{done.stderr}")
    return name


def drop_role(admin_dsn: str, role: str) -> None:
    """Drop *role* and what it holds in the admin DSN's database (other databases are gone)."""

    asyncio.run(drop_role_in(admin_dsn, role))


async def drop_role_in(dsn: str, role: str) -> None:
    """DROP OWNED BY and DROP ROLE *role* through *dsn*, when the role exists."""
    con = await asyncpg.connect(dsn)
    try:
        if await con.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", role):
            # Names are test-made identifiers; the server quotes them.
            for template in ("DROP OWNED BY %I", "DROP ROLE %I"):
                await con.execute(await con.fetchval("SELECT format($1::text, $2::text)", template, role))
    finally:
        await con.close()


def urlsplit_db(dsn: str) -> str:
    """The database name of *dsn*."""
    return urlsplit(dsn).path.lstrip("/")

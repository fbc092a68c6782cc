"""Numbered SQL migrations with an up and a down part, applied under an advisory lock.

A migration file is ``NNNN_name.sql``::

    -- migrate:up
    CREATE TABLE __schema__.thing (...);
    -- migrate:down
    DROP TABLE __schema__.thing;

``__schema__`` is replaced by the quoted schema name. Each migration runs in its own
transaction holding a transaction-scoped advisory lock, so concurrent openers apply
each migration exactly once (and the lock is safe behind PgBouncer).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from .config import quote_ident
from .errors import MigrationError

SCHEMA_TOKEN = "__schema__"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_UP, _DOWN = "-- migrate:up", "-- migrate:down"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str
    checksum: str


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied: bool
    applied_at: datetime | None


def parse_migration(filename: str, text: str) -> Migration:
    m = _FILE_RE.match(filename)
    if not m:
        raise MigrationError(f"migration file {filename!r} is not named NNNN_name.sql")
    if _UP not in text or _DOWN not in text:
        raise MigrationError(f"migration {filename} needs '{_UP}' and '{_DOWN}' sections")
    up, down = text.split(_UP, 1)[1].split(_DOWN, 1)
    return Migration(
        version=int(m.group(1)),
        name=m.group(2),
        up=up.strip(),
        down=down.strip(),
        checksum=hashlib.sha256(text.encode()).hexdigest(),
    )


def load_migrations() -> list[Migration]:
    """Every migration shipped in ``unified_db/migrations``, by version."""
    folder = resources.files("unified_db") / "migrations"
    found = [
        parse_migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


def render(sql: str, schema: str) -> str:
    return sql.replace(SCHEMA_TOKEN, quote_ident(schema))


class Migrator:
    """Applies and reverts migrations in one schema over one connection."""

    def __init__(self, con: asyncpg.Connection, schema: str, migrations: list[Migration] | None = None):
        self.con = con
        self.schema = schema
        self.migrations = load_migrations() if migrations is None else migrations

    def _sql(self, sql: str) -> str:
        return render(sql, self.schema)

    async def _lock(self) -> None:
        await self.con.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('unified_db:migrate:' || $1, 0))",
            self.schema,
        )

    async def _ensure_table(self) -> None:
        await self.con.execute(
            self._sql(
                "CREATE SCHEMA IF NOT EXISTS __schema__;"
                "CREATE TABLE IF NOT EXISTS __schema__.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )

    async def _applied(self) -> dict[int, asyncpg.Record]:
        exists = await self.con.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(self.schema)}.schema_migrations"
        )
        if not exists:
            return {}
        rows = await self.con.fetch(
            self._sql("SELECT version, name, checksum, applied_at FROM __schema__.schema_migrations")
        )
        return {r["version"]: r for r in rows}

    def _verify(self, applied: dict[int, asyncpg.Record]) -> None:
        known = {m.version: m for m in self.migrations}
        for version, row in applied.items():
            m = known.get(version)
            if m is None:
                continue  # applied by a newer release; leave it alone
            if m.checksum != row["checksum"]:
                raise MigrationError(
                    f"migration {version:04d}_{m.name} was changed after it was applied "
                    f"(checksum {row['checksum'][:12]} in the database, {m.checksum[:12]} on disk); "
                    "restore the original file and add a new migration instead"
                )

    async def status(self) -> list[MigrationStatus]:
        applied = await self._applied()
        self._verify(applied)
        return [
            MigrationStatus(
                m.version,
                m.name,
                m.version in applied,
                applied[m.version]["applied_at"] if m.version in applied else None,
            )
            for m in self.migrations
        ]

    async def current_version(self) -> int:
        applied = await self._applied()
        return max(applied, default=0)

    async def up(self, target: int | None = None) -> list[int]:
        """Apply pending migrations up to *target* (all by default); returns the versions applied."""
        applied = await self._applied()
        self._verify(applied)
        wanted = [m for m in self.migrations if target is None or m.version <= target]
        if all(m.version in applied for m in wanted):
            return []  # the common case: no lock, no DDL (works for a role without DDL rights)
        done: list[int] = []
        for m in self.migrations:
            if target is not None and m.version > target:
                break
            async with self.con.transaction():
                await self._lock()
                await self._ensure_table()
                applied = await self._applied()
                self._verify(applied)
                if m.version in applied:
                    continue
                try:
                    await self.con.execute(self._sql(m.up))
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {m.version:04d}_{m.name} failed: {exc}; nothing of it was applied"
                    ) from exc
                await self.con.execute(
                    self._sql(
                        "INSERT INTO __schema__.schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)"
                    ),
                    m.version,
                    m.name,
                    m.checksum,
                )
                done.append(m.version)
        return done

    async def down(self, steps: int = 1) -> list[int]:
        """Revert the *steps* most recent applied migrations; returns the versions reverted."""
        if steps < 1:
            raise MigrationError("down needs a number of steps of at least 1")
        known = {m.version: m for m in self.migrations}
        done: list[int] = []
        for _ in range(steps):
            async with self.con.transaction():
                await self._lock()
                applied = await self._applied()
                self._verify(applied)
                if not applied:
                    break
                version = max(applied)
                m = known.get(version)
                if m is None:
                    raise MigrationError(
                        f"migration {version} is applied but unknown to this release; "
                        "revert it with the release that applied it"
                    )
                try:
                    await self.con.execute(self._sql(m.down))
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"reverting {version:04d}_{m.name} failed: {exc}") from exc
                await self.con.execute(
                    self._sql("DELETE FROM __schema__.schema_migrations WHERE version = $1"),
                    version,
                )
                done.append(version)
        return done

"""``UnifiedPostgreSQL``: the base class that owns the pool, settings, codecs and stats.

Feature mixins (``unified_db.extensions``) add methods on top and reach the database
only through the helpers here: ``_acquire``, ``_transaction``, ``_fetch``,
``_fetchrow``, ``_fetchval``, ``_execute`` and ``_executemany``. Those helpers render
the schema name into the SQL, map driver errors to ``unified_db.errors`` in one place,
and retry a read on a fresh connection when its connection was lost (a write is never
retried).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel

from . import stats as st
from .codecs import register_json_codecs
from .config import Settings
from .embedded import ensure_embedded
from .errors import (
    DatabaseUnavailableError,
    MigrationError,
    PoolClosedError,
    PoolTimeoutError,
    UnifiedDBError,
    is_connection_lost,
    map_driver_error,
)
from .migrate import MigrationStatus, Migrator, render

log = logging.getLogger("unified_db")

# The connection's own application_name, quoted by the server, as a statement to append
# to the pool's reset query.
_RESET_APPLICATION_NAME = (
    "SELECT format(E'\\nSET application_name = %L;', current_setting('application_name'))"
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def operation(name: str) -> Callable[[F], F]:
    """Decorate a public coroutine method so its calls and latency are counted as *name*."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(self: UnifiedPostgreSQL, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = await fn(self, *args, **kwargs)
            except BaseException:
                self._stats.record(name, time.perf_counter() - start, error=True)
                raise
            self._stats.record(name, time.perf_counter() - start)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


class Component(Protocol):
    """A long-lived helper (listener, sweeper, near-cache) the base starts and closes."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


ComponentFactory = Callable[["UnifiedPostgreSQL"], Component | None]
ConnectionSetup = Callable[["UnifiedPostgreSQL", asyncpg.Connection], Awaitable[None]]


class Health(BaseModel):
    """What ``health()`` reports."""

    ok: bool
    server_version: str | None = None
    latency_ms: float | None = None
    schema_name: str
    schema_version: int | None = None
    namespace: str
    pool_size: int = 0
    pool_idle: int = 0
    pool_max_size: int = 0
    embedded: bool
    error: str | None = None


class _Connection(asyncpg.Connection):
    """An asyncpg connection that remembers whether the client closed it.

    Lets the termination listener tell a connection the server dropped from one the
    pool retired, so ``connections_lost`` counts only the former.
    """

    _ud_closing = False
    _ud_reset_tail = ""
    _ud_opened = 0.0  # time.monotonic() when the pool opened it

    def get_reset_query(self) -> str:
        # The pool's reset ends with RESET ALL, which returns application_name to the
        # session's start value. Behind a transaction pooler (PgBouncer) that start value
        # is the pooler's (empty), so the name the server shows would be lost after the
        # first release: set it again in the same round trip.
        return super().get_reset_query() + self._ud_reset_tail

    async def close(self, *, timeout: float | None = None) -> None:
        self._ud_closing = True
        await super().close(timeout=timeout)

    def terminate(self) -> None:
        self._ud_closing = True
        super().terminate()


def connection_gone(con: asyncpg.Connection) -> bool:
    """True when the server connection behind *con* has died.

    asyncpg detaches a dead pooled connection from its proxy, after which every call on
    the proxy (``is_closed()`` included) raises InterfaceError; and a statement sent on a
    connection that died while idle can fail with an InternalClientError instead of a
    connection error. Both mean "lost", not "bad statement".
    """
    try:
        return con.is_closed()
    except asyncpg.InterfaceError:
        return True


class Conn:
    """A connection handed to a mixin: same query methods, schema rendered, errors mapped."""

    __slots__ = ("raw", "_db")

    def __init__(self, raw: asyncpg.Connection, db: UnifiedPostgreSQL):
        self.raw = raw
        self._db = db

    def _error(self, exc: BaseException) -> UnifiedDBError:
        return map_driver_error(exc, lost=connection_gone(self.raw))

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[asyncpg.Record]:
        try:
            return await self.raw.fetch(self._db._sql(query), *args, timeout=timeout)
        except Exception as exc:
            raise self._error(exc) from exc

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> asyncpg.Record | None:
        try:
            return await self.raw.fetchrow(self._db._sql(query), *args, timeout=timeout)
        except Exception as exc:
            raise self._error(exc) from exc

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        try:
            return await self.raw.fetchval(self._db._sql(query), *args, timeout=timeout)
        except Exception as exc:
            raise self._error(exc) from exc

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        try:
            return await self.raw.execute(self._db._sql(query), *args, timeout=timeout)
        except Exception as exc:
            raise self._error(exc) from exc

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        try:
            await self.raw.executemany(self._db._sql(query), args)
        except Exception as exc:
            raise self._error(exc) from exc


class UnifiedPostgreSQL:
    """The pool, the settings, the JSON codecs and the stats of one database.

    ``UnifiedPostgreSQL(dsn=None, **settings)``: with no DSN (argument or
    ``UNIFIED_DB_DSN``) an embedded PostgreSQL is started on :meth:`open`. Settings are
    validated here, before any connection is made (InvalidInputError).
    """

    #: Mixins add entries: name -> factory(db) returning a Component, or None when off.
    component_factories: ClassVar[dict[str, ComponentFactory]] = {}
    #: Mixins add coroutines run on every new pooled connection (codecs, SET ...).
    connection_setups: ClassVar[tuple[ConnectionSetup, ...]] = ()

    def __init__(self, dsn: str | None = None, **settings: Any) -> None:
        self.settings = Settings.load(dsn, **settings)
        self.namespace = self.settings.namespace
        self.schema = self.settings.schema
        self.instance_id = uuid.uuid4().hex
        self._dsn: str | None = None
        self._embedded = False
        self._pool: asyncpg.Pool | None = None
        self._closing = False
        self._stats = st.Stats()
        self._sql_cache: dict[str, str] = {}
        self._components: dict[str, Component] = {}
        self._open_lock = asyncio.Lock()
        self.started_at = time.time()
        self.hostname = socket.gethostname()
        self.pid = os.getpid()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> UnifiedPostgreSQL:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._closing

    @property
    def dsn(self) -> str | None:
        """The DSN in use once open (the embedded server's when none was configured)."""
        return self._dsn

    @property
    def embedded(self) -> bool:
        return self._embedded

    async def open(self) -> None:
        """Connect, apply pending migrations (unless ``auto_migrate=False``), start components.

        Raises DatabaseUnavailableError when the server cannot be reached within
        ``connect_timeout``, MigrationError when a migration fails. Idempotent.
        """
        async with self._open_lock:
            if self._pool is not None:
                return
            dsn = self.settings.dsn
            if dsn is None:
                dsn = await ensure_embedded(self.settings.data_dir)
                self._embedded = True
            self._dsn = dsn
            self._closing = False
            self._pool = await self._create_pool(dsn)
            try:
                if self.settings.auto_migrate:
                    await self.migrate()
                await self._start_components()
            except BaseException:
                await self._close_pool()
                raise

    async def close(self) -> None:
        """Stop components, then close the pool gracefully. Idempotent."""
        async with self._open_lock:
            if self._pool is None:
                return
            self._closing = True
            for name, component in reversed(list(self._components.items())):
                try:
                    await component.close()
                except Exception:  # closing must finish; say what failed
                    log.exception("unified_db: closing component %s failed", name)
            self._components.clear()
            await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self.settings.command_timeout)
        except (TimeoutError, Exception):
            pool.terminate()
        finally:
            self._closing = False

    async def _create_pool(self, dsn: str) -> asyncpg.Pool:
        s = self.settings
        min_size, max_size = s.pool_sizes()
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=s.command_timeout,
                statement_cache_size=s.statement_cache_size,
                max_inactive_connection_lifetime=s.inactive_lifetime,
                server_settings={"application_name": s.application_name},
                timeout=s.connect_timeout,
                init=self._init_connection,
                connection_class=_Connection,
            )
        except Exception as exc:
            raise DatabaseUnavailableError(
                f"cannot connect to PostgreSQL at {_redact(dsn)} within {s.connect_timeout}s "
                f"({exc.__class__.__name__}: {exc}); check the DSN and that the server is up"
            ) from exc

    async def _init_connection(self, con: asyncpg.Connection) -> None:
        await register_json_codecs(con)
        if isinstance(con, _Connection):
            con._ud_opened = time.monotonic()
            con._ud_reset_tail = await con.fetchval(_RESET_APPLICATION_NAME)
        con.add_termination_listener(self._on_connection_terminated)
        for setup in self._declared_setups():
            await setup(self, con)

    def _on_connection_terminated(self, con: asyncpg.Connection) -> None:
        if not getattr(con, "_ud_closing", False) and not self._closing:
            self._stats.incr(st.CONNECTIONS_LOST)

    @classmethod
    def _declared_factories(cls) -> dict[str, ComponentFactory]:
        merged: dict[str, ComponentFactory] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("component_factories", {}))
        return merged

    @classmethod
    def _declared_setups(cls) -> list[ConnectionSetup]:
        return [s for klass in reversed(cls.__mro__) for s in klass.__dict__.get("connection_setups", ())]

    async def _start_components(self) -> None:
        for name, factory in self._declared_factories().items():
            component = factory(self)
            if component is None:
                continue
            await component.start()
            self._components[name] = component

    def _component(self, name: str) -> Any:
        """The running component *name*, or None when it is off."""
        return self._components.get(name)

    async def connect_direct(self, dsn: str | None = None) -> asyncpg.Connection:
        """A new connection outside the pool (for LISTEN), with the codecs installed.

        Uses ``listen_dsn`` when set, since LISTEN needs a session a transaction
        pooler cannot give. The caller closes it.
        """
        target = dsn or self.settings.listen_dsn or self._dsn
        if target is None:
            raise PoolClosedError("open the instance before asking for a direct connection")
        try:
            con = await asyncpg.connect(
                target,
                timeout=self.settings.connect_timeout,
                command_timeout=self.settings.command_timeout,
                statement_cache_size=self.settings.statement_cache_size,
                server_settings={"application_name": self.settings.application_name},
            )
        except Exception as exc:
            raise map_driver_error(exc, "connect") from exc
        await register_json_codecs(con)
        return con

    # ------------------------------------------------------------------ helpers for mixins

    def _sql(self, query: str) -> str:
        """*query* with ``__schema__`` replaced by the quoted schema (cached)."""
        rendered = self._sql_cache.get(query)
        if rendered is None:
            rendered = self._sql_cache[query] = render(query, self.schema)
        return rendered

    def _require_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is None or self._closing:
            raise PoolClosedError(
                "this UnifiedDB is not open: use `async with UnifiedDB(...) as db` or await db.open()"
            )
        return pool

    async def _acquire_raw(self, pool: asyncpg.Pool) -> asyncpg.Connection:
        start = time.perf_counter()
        try:
            con = await pool.acquire(timeout=self.settings.acquire_timeout)
        except TimeoutError as exc:
            self._stats.incr(st.ACQUIRE_TIMEOUTS)
            raise PoolTimeoutError(
                f"no connection became free within acquire_timeout={self.settings.acquire_timeout}s "
                f"(pool max_size={pool.get_max_size()}); raise max_size or acquire_timeout, "
                "or lower the concurrency"
            ) from exc
        except Exception as exc:
            raise map_driver_error(exc, "acquire") from exc
        self._stats.record_acquire(time.perf_counter() - start)
        return con

    async def _release(self, pool: asyncpg.Pool, con: asyncpg.Connection) -> None:
        """Return *con* to the pool; a failure there does not undo the work already done.

        The pool resets a connection on release (one round trip). When the server went
        away after the last statement, that reset fails and asyncpg closes the
        connection; the caller's statements had succeeded, so their result stands.
        """
        try:
            await pool.release(con)
        except Exception:
            log.debug("unified_db: resetting a released connection failed; it was closed", exc_info=True)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        """A pooled connection for several statements; released (shielded) on exit."""
        pool = self._require_pool()
        con = await self._acquire_raw(pool)
        try:
            yield Conn(con, self)
        finally:
            await self._release(pool, con)

    @asynccontextmanager
    async def _transaction(
        self, *, isolation: str | None = None, readonly: bool = False
    ) -> AsyncIterator[Conn]:
        """A pooled connection inside a transaction: committed on exit, rolled back on error."""
        async with self._acquire() as con:
            tr = con.raw.transaction(isolation=isolation, readonly=readonly)
            try:
                await tr.start()
            except Exception as exc:
                raise map_driver_error(exc, "begin", lost=connection_gone(con.raw)) from exc
            try:
                yield con
            except BaseException:
                if not connection_gone(con.raw):
                    try:
                        await tr.rollback()
                    except Exception:  # the original error matters more
                        log.debug("rollback failed", exc_info=True)
                raise
            try:
                await tr.commit()
            except Exception as exc:
                raise map_driver_error(exc, "commit", lost=connection_gone(con.raw)) from exc

    async def _run(
        self, method: str, query: str, args: tuple[Any, ...], write: bool, timeout: float | None
    ) -> Any:
        sql = self._sql(query)
        pool = self._require_pool()
        self._stats.incr(st.REQUESTS_NUM)
        first_loss: float | None = None
        attempts_left = pool.get_max_size() + 1  # a hard bound, whatever the driver reports
        while True:
            attempts_left -= 1
            con = await self._acquire_raw(pool)
            opened = getattr(con, "_ud_opened", 0.0)
            try:
                return await getattr(con, method)(sql, *args, timeout=timeout)
            except Exception as exc:
                # A timed-out statement is not replayed even if the cancel cost the connection.
                lost = not isinstance(exc, TimeoutError) and (is_connection_lost(exc) or connection_gone(con))
                # A read is retried on a connection opened after the loss. Connections
                # that died in the same event (a restart, a mass kill) can still look
                # open; they fail fast and are replaced, so skip through them: at most
                # one attempt per pooled connection.
                if lost and not write and attempts_left > 0 and (first_loss is None or opened < first_loss):
                    if first_loss is None:
                        first_loss = time.monotonic()
                    self._stats.incr(st.RETRIES)
                    continue
                self._stats.incr(st.REQUESTS_ERRORS)
                raise map_driver_error(exc, lost=lost) from exc
            finally:
                await self._release(pool, con)

    async def _fetch(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> list[asyncpg.Record]:
        """Rows of *query*. A read (``write=False``) is retried on a fresh connection when its
        connection was lost (skipping pooled connections that died at the same time)."""
        return await self._run("fetch", query, args, write, timeout)

    async def _fetchrow(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> asyncpg.Record | None:
        return await self._run("fetchrow", query, args, write, timeout)

    async def _fetchval(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> Any:
        return await self._run("fetchval", query, args, write, timeout)

    async def _execute(self, query: str, *args: Any, write: bool = True, timeout: float | None = None) -> str:
        """Run a statement; treated as a write (never retried) unless ``write=False``."""
        return await self._run("execute", query, args, write, timeout)

    async def _executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        async with self._acquire() as con:
            await con.executemany(query, args)

    # ------------------------------------------------------------------ public API

    @asynccontextmanager
    async def _migrator(self) -> AsyncIterator[Migrator]:
        """A Migrator on a pooled connection, its driver errors mapped like every helper's."""
        async with self._acquire() as con:
            try:
                yield Migrator(con.raw, self.schema)
            except asyncpg.InsufficientPrivilegeError as exc:
                raise MigrationError(
                    f"migrations need the schema owner's rights ({exc}); run `unified-db migrate` "
                    "as the owner, and connect the application with its own role"
                ) from exc
            except Exception as exc:
                raise map_driver_error(exc, "migrate", lost=connection_gone(con.raw)) from exc

    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations (up to *target*); returns the versions applied."""
        async with self._migrator() as migrator:
            return await migrator.up(target)

    async def migrate_down(self, steps: int = 1) -> list[int]:
        """Revert the *steps* most recent migrations; returns the versions reverted."""
        async with self._migrator() as migrator:
            return await migrator.down(steps)

    async def migration_status(self) -> list[MigrationStatus]:
        async with self._migrator() as migrator:
            return await migrator.status()

    async def health(self) -> Health:
        """Server version, round-trip latency, schema version and pool figures.

        ``ok`` is False (with ``error``) when the server cannot be reached; raises
        PoolClosedError only when the instance is not open. One or two round trips.
        """
        pool = self._require_pool()
        base = dict(
            schema_name=self.schema,
            namespace=self.namespace,
            embedded=self._embedded,
            pool_size=pool.get_size(),
            pool_idle=pool.get_idle_size(),
            pool_max_size=pool.get_max_size(),
        )
        try:
            start = time.perf_counter()
            row = await self._fetchrow(
                "SELECT current_setting('server_version') AS v,"
                " (SELECT max(version) FROM __schema__.schema_migrations) AS schema_version"
            )
            latency = (time.perf_counter() - start) * 1000
        except UnifiedDBError as exc:
            return Health(ok=False, error=str(exc), **base)
        assert row is not None
        return Health(
            ok=True,
            server_version=row["v"],
            latency_ms=round(latency, 3),
            schema_version=row["schema_version"],
            **base,
        )

    def get_stats(self) -> dict[str, object]:
        """Counters and per-operation latency (p50/p95/p99) since the last pop_stats()."""
        return self._stats.get_stats()

    def pop_stats(self) -> dict[str, object]:
        """Like get_stats(), then reset the counters."""
        return self._stats.pop_stats()


def _redact(dsn: str) -> str:
    """The DSN without its password, for error messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn

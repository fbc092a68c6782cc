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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel

from . import stats as st
from .codecs import register_json_codecs
from .config import Settings
from .connection_pool import ConnectionPool, PoolClosingError
from .embedded import ensure_embedded
from .errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    MigrationError,
    PoolClosedError,
    PoolTimeoutError,
    UnifiedDBError,
    is_connection_lost,
    map_driver_error,
)
from .migrate import MigrationStatus, Migrator, render

log = logging.getLogger("unified_db")

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
    _ud_lost_counted = False  # connections_lost counted it already
    _ud_opened = 0.0  # time.monotonic() when the pool opened it

    def get_reset_query(self) -> str:
        # asyncpg sends "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL"
        # on every release: a second round trip for each one-statement operation.
        # unified_db leaves no session state on a pooled connection (LISTEN runs on a
        # direct connection, advisory locks are transaction-scoped, settings are SET
        # LOCAL), so there is nothing to reset; an open transaction is still rolled back
        # by asyncpg before this query would run. It also keeps application_name behind
        # PgBouncer, where RESET ALL would return it to the pooler's (empty) start value.
        return ""

    # Only a close of a connection that is still open is ours: the pool also "closes" a
    # connection the server already dropped, before the (deferred) listener has run.
    async def close(self, *, timeout: float | None = None) -> None:
        if not self.is_closed():
            self._ud_closing = True
        await super().close(timeout=timeout)

    def terminate(self) -> None:
        if not self.is_closed():
            self._ud_closing = True
        super().terminate()


def connection_gone(con: asyncpg.Connection) -> bool:
    """True when the server connection behind *con* has died.

    A statement sent on a connection that died while idle can fail with an
    InternalClientError instead of a connection error: both mean "lost", not "bad
    statement". (An InterfaceError from a detached asyncpg pool proxy counts as gone too.)
    """
    try:
        return con.is_closed()
    except asyncpg.InterfaceError:
        return True


class Conn:
    """A connection handed to a mixin: same query methods, schema rendered, errors mapped."""

    __slots__ = ("raw", "_db", "_when_done")

    def __init__(self, raw: asyncpg.Connection, db: UnifiedPostgreSQL):
        self.raw = raw
        self._db = db
        self._when_done: list[Callable[[], None]] | None = None

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call *callback* (plain, no I/O) once this connection is given back.

        Under ``_transaction()`` that is after the COMMIT or the ROLLBACK, whichever
        happened, and also when the block raised. A near-cache drops its own copies
        there: dropped earlier, a concurrent read of the not yet committed rows could
        put the old value back.
        """
        if self._when_done is None:
            self._when_done = []
        self._when_done.append(callback)

    def _done(self) -> None:
        callbacks, self._when_done = self._when_done, None
        for callback in callbacks or ():
            try:
                callback()
            except Exception:  # one failing callback must not skip the others
                log.exception("unified_db: a when_done callback failed")

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
    #: Mixins add coroutines run on every new pooled connection (codecs, SET ...). A
    #: session setting made here lasts for the connection's life: pooled connections are
    #: not reset on release (see _Connection.get_reset_query).
    connection_setups: ClassVar[tuple[ConnectionSetup, ...]] = ()

    def __init__(self, dsn: str | None = None, **settings: Any) -> None:
        self.settings = Settings.load(dsn, **settings)
        self.namespace = self.settings.namespace
        self.schema = self.settings.schema
        self.instance_id = uuid.uuid4().hex
        self._dsn: str | None = None
        self._embedded = False
        self._pool: ConnectionPool | None = None
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
                await self._fit_pool_to_server()
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
            # Components close while the pool still serves them: a final flush or an
            # UNLISTEN needs it. Only then is the instance marked closing.
            for name, component in reversed(list(self._components.items())):
                try:
                    await component.close()
                except Exception:  # closing must finish; say what failed
                    log.exception("unified_db: closing component %s failed", name)
            self._components.clear()
            self._closing = True
            await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self.settings.command_timeout)
        except (TimeoutError, Exception):
            log.warning("unified_db: connections still in use after command_timeout; terminating them")
            pool.terminate()
        finally:
            self._closing = False

    async def _create_pool(
        self, dsn: str, min_size: int | None = None, max_size: int | None = None
    ) -> ConnectionPool:
        s = self.settings
        if min_size is None or max_size is None:
            min_size, max_size = s.pool_sizes()
        pool = ConnectionPool(
            functools.partial(self._connect_pooled, dsn),
            min_size=min_size,
            max_size=max_size,
            inactive_lifetime=s.inactive_lifetime,
            reset_timeout=s.command_timeout,
        )
        try:
            await pool.open()
        except Exception as exc:
            raise DatabaseUnavailableError(
                f"cannot connect to PostgreSQL at {_redact(dsn)} within {s.connect_timeout}s "
                f"({exc.__class__.__name__}: {exc}); check the DSN and that the server is up"
            ) from exc
        return pool

    async def _connect_pooled(self, dsn: str) -> asyncpg.Connection:
        """A new pooled connection, set up (codecs, termination listener, mixin setups)."""
        s = self.settings
        con = await asyncpg.connect(
            dsn,
            timeout=s.connect_timeout,
            command_timeout=s.command_timeout,
            statement_cache_size=s.statement_cache_size,
            server_settings={"application_name": s.application_name},
            connection_class=_Connection,
        )
        try:
            await self._init_connection(con)
        except BaseException:
            con.terminate()
            raise
        return con

    async def _fit_pool_to_server(self) -> None:
        """Cap a default-sized pool by the server's max_connections (resource-aware default).

        Only when max_size was not set (and not for the serverless profile): one query,
        and a resize only when the server allows fewer connections than the CPU-based
        default would open.
        """
        if self.settings.max_size is not None or self.settings.profile == "serverless":
            return  # serverless: 2 connections fit any server; save the cold start a query
        usable = await self._fetchval(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        want = self.settings.pool_sizes(server_max_connections=usable)
        pool = self._require_pool()
        if want != (pool.get_min_size(), pool.get_max_size()):
            await self._resize_pool(*want)

    async def _resize_pool(self, min_size: int, max_size: int) -> None:
        """New pool bounds, in place, failing no query in flight: surplus idle connections
        close now, surplus lent ones when they come back; a larger max_size lets waiters
        connect at once. Raises PoolClosedError when not open."""
        self._require_pool().resize(min_size, max_size)

    def _pool_figures(self) -> dict[str, int]:
        """Size, bounds, idle, in-use and waiting counts of the pool (no I/O)."""
        pool = self._require_pool()
        size, idle = pool.get_size(), pool.get_idle_size()
        return {
            "size": size,
            "min_size": pool.get_min_size(),
            "max_size": pool.get_max_size(),
            "idle": idle,
            "in_use": max(0, size - idle),
            "waiting": pool.get_waiting(),
        }

    async def _init_connection(self, con: asyncpg.Connection) -> None:
        await register_json_codecs(con)
        if isinstance(con, _Connection):
            con._ud_opened = time.monotonic()
        # Bound to the connection itself, so it can tell a drop by the server from our own
        # close (_Connection marks the latter).
        con.add_termination_listener(functools.partial(self._on_connection_terminated, con))
        for setup in self._declared_setups():
            await setup(self, con)

    def _on_connection_terminated(self, con: asyncpg.Connection, _ref: object = None) -> None:
        if not getattr(con, "_ud_closing", False) and not self._closing:
            self._count_lost(con)

    def _count_lost(self, con: asyncpg.Connection) -> None:
        """Count *con* in connections_lost once, whether a failed call or asyncpg's
        termination listener (scheduled a loop turn later) notices first."""
        if not getattr(con, "_ud_lost_counted", True):
            con._ud_lost_counted = True
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

    def _require_pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is None or self._closing:
            raise PoolClosedError(
                "this UnifiedDB is not open: use `async with UnifiedDB(...) as db` or await db.open()"
            )
        return pool

    async def _acquire_raw(self, pool: ConnectionPool) -> asyncpg.Connection:
        """A connection of *pool* when none is idle; the caller gives it back with
        ``pool.release``. Waits at most ``acquire_timeout`` once every slot is taken."""
        start = time.perf_counter()
        try:
            if pool.get_size() < pool.get_max_size():
                # A free slot: no wait for another caller, so no timer (a new connection
                # is bounded by connect_timeout).
                con = await pool.acquire()
            else:
                async with asyncio.timeout(self.settings.acquire_timeout):
                    con = await pool.acquire()
        except TimeoutError as exc:
            self._stats.incr(st.ACQUIRE_TIMEOUTS)
            raise PoolTimeoutError(
                f"no connection became free within acquire_timeout={self.settings.acquire_timeout}s "
                f"(pool max_size={pool.get_max_size()}); raise max_size or acquire_timeout, "
                "or lower the concurrency"
            ) from exc
        except PoolClosingError as exc:
            raise PoolClosedError("this UnifiedDB was closed while waiting for a connection") from exc
        except Exception as exc:
            raise map_driver_error(exc, "acquire") from exc
        self._stats.record_acquire(time.perf_counter() - start)
        return con

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        """A pooled connection for several statements; released (shielded) on exit."""
        pool = self._require_pool()
        con = pool.try_acquire()
        if con is None:
            con = await self._acquire_raw(pool)
        else:
            self._stats.record_acquire(0.0)
        conn = Conn(con, self)
        clean = False
        try:
            yield conn
            clean = True
        finally:
            pool.release(con, clean=clean)
            conn._done()

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
        stats = self._stats
        stats.incr(st.REQUESTS_NUM)
        first_loss: float | None = None
        attempts_left: int | None = None
        while True:
            pool = self._require_pool()
            if attempts_left is None:
                attempts_left = pool.get_max_size() + 1  # a hard bound, whatever the driver reports
            attempts_left -= 1
            con = pool.try_acquire()
            if con is None:
                con = await self._acquire_raw(pool)
            else:
                stats.record_acquire(0.0)
            clean = False
            try:
                result = await getattr(con, method)(sql, *args, timeout=timeout)
                clean = True
                return result
            except Exception as exc:
                # A timed-out statement is not replayed even if the cancel cost the connection.
                lost = not isinstance(exc, TimeoutError) and (is_connection_lost(exc) or connection_gone(con))
                if lost:
                    self._count_lost(con)
                    if not connection_gone(con):  # broken but open: never hand it out again
                        con.terminate()
                # A read is retried on a connection opened after the loss; one opened after
                # it failing too means the server is really gone. At most one attempt per
                # pooled connection.
                opened = getattr(con, "_ud_opened", 0.0)
                if lost and not write and attempts_left > 0 and (first_loss is None or opened < first_loss):
                    if first_loss is None:
                        first_loss = time.monotonic()
                    stats.incr(st.RETRIES)
                    continue
                stats.incr(st.REQUESTS_ERRORS)
                raise map_driver_error(exc, lost=lost) from exc
            finally:
                pool.release(con, clean=clean)

    # The four shortcuts return _run's coroutine instead of awaiting it: the same call for
    # the caller (``await self._fetchrow(...)``), one coroutine frame less to resume on
    # every I/O wake-up of every operation.

    def _fetch(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> Coroutine[Any, Any, list[asyncpg.Record]]:
        """Rows of *query*. A read (``write=False``) is retried on a fresh connection when its
        connection was lost (skipping pooled connections that died at the same time)."""
        return self._run("fetch", query, args, write, timeout)

    def _fetchrow(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> Coroutine[Any, Any, asyncpg.Record | None]:
        return self._run("fetchrow", query, args, write, timeout)

    def _fetchval(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> Coroutine[Any, Any, Any]:
        return self._run("fetchval", query, args, write, timeout)

    def _execute(
        self, query: str, *args: Any, write: bool = True, timeout: float | None = None
    ) -> Coroutine[Any, Any, str]:
        """Run a statement; treated as a write (never retried) unless ``write=False``."""
        return self._run("execute", query, args, write, timeout)

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
        """Revert the *steps* most recent migrations; returns the versions reverted.

        Raises InvalidInputError (before any I/O) unless *steps* is a positive int.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidInputError(f"steps must be a positive integer (got {steps!r})")
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

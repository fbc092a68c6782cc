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
        self._pool: asyncpg.Pool | None = None
        self._closing = False
        self._stats = st.Stats()
        self._sql_cache: dict[str, str] = {}
        self._components: dict[str, Component] = {}
        self._open_lock = asyncio.Lock()
        # Acquirers blocked in pool.acquire(), and per pool the acquisitions not yet
        # released (waiting or in use): _resize_pool waits for the old pool's to reach 0.
        self._waiting = 0
        self._leases: dict[asyncpg.Pool, int] = {}
        self._drained: dict[asyncpg.Pool, asyncio.Event] = {}
        self._resize_lock = asyncio.Lock()
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
            pool.terminate()
        finally:
            self._closing = False

    async def _create_pool(
        self, dsn: str, min_size: int | None = None, max_size: int | None = None
    ) -> asyncpg.Pool:
        s = self.settings
        if min_size is None or max_size is None:
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

    async def _fit_pool_to_server(self) -> None:
        """Cap a default-sized pool by the server's max_connections (resource-aware default).

        Only when max_size was not set (and not for the serverless profile): one query,
        and a pool swap only when the server allows fewer connections than the CPU-based
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
        """Replace the pool by one of the new sizes without failing any query in flight.

        asyncpg has no public resize, and editing its private holder list would tie this
        library to one asyncpg release. So a new pool is built and swapped in: every new
        acquire goes to it at once, while each acquisition of the old pool (waiting or in
        use) finishes there. The old pool is closed once its last lease is released, when
        its close() has nothing left to wait for; a lease held longer than
        command_timeout + acquire_timeout (a long transaction) is left to the old pool's
        graceful close, which waits for it. Raises PoolClosedError when not open and
        DatabaseUnavailableError when the new pool cannot connect (the old one stays).
        """
        async with self._resize_lock:  # one swap at a time, so none is silently lost
            old = self._require_pool()
            assert self._dsn is not None
            new = await self._create_pool(self._dsn, min_size, max_size)
            if self._pool is not old or self._closing:
                await new.close()
                raise PoolClosedError("the instance was closed while its pool was being resized")
            self._pool = new
            await self._retire_pool(old)

    async def _retire_pool(self, pool: asyncpg.Pool) -> None:
        drained = self._drained[pool] = asyncio.Event()
        if self._leases.get(pool, 0) == 0:
            drained.set()
        try:
            limit = self.settings.command_timeout + self.settings.acquire_timeout
            await asyncio.wait_for(drained.wait(), timeout=limit)
        except TimeoutError:
            pass  # a long lease: close() below waits for it gracefully
        finally:
            self._drained.pop(pool, None)
        try:
            await asyncio.wait_for(pool.close(), timeout=self.settings.command_timeout)
        except (TimeoutError, Exception):
            log.warning("unified_db: the replaced pool did not close in time; terminating it")
            pool.terminate()

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
            "waiting": self._waiting,
        }

    async def _init_connection(self, con: asyncpg.Connection) -> None:
        await register_json_codecs(con)
        if isinstance(con, _Connection):
            con._ud_opened = time.monotonic()
        # asyncpg calls a termination listener with the pool's proxy when the connection
        # is leased, and a proxy whose connection closed is detached: bind the listener to
        # the connection itself, so it can tell a drop by the server from our own close.
        con.add_termination_listener(functools.partial(self._on_connection_terminated, con))
        for setup in self._declared_setups():
            await setup(self, con)

    def _on_connection_terminated(self, con: asyncpg.Connection, _ref: object = None) -> None:
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
        """A connection of *pool*; the caller gives it back with :meth:`_release_raw`."""
        start = time.perf_counter()
        held = self._leases.get(pool, 0)
        self._leases[pool] = held + 1
        self._waiting += 1
        try:
            if held < pool.get_max_size():
                # Every acquisition of the pool goes through here, so fewer leases than
                # max_size means a free slot: the acquire cannot wait and needs no timer.
                # A free slot without a connection connects under connect_timeout.
                con = await pool.acquire()
            else:
                # Not acquire(timeout=...): that wraps the wait in asyncio.wait_for, a new
                # task per call, paid exactly when the pool is busiest.
                async with asyncio.timeout(self.settings.acquire_timeout):
                    con = await pool.acquire()
        except TimeoutError as exc:
            self._end_lease(pool)
            self._stats.incr(st.ACQUIRE_TIMEOUTS)
            raise PoolTimeoutError(
                f"no connection became free within acquire_timeout={self.settings.acquire_timeout}s "
                f"(pool max_size={pool.get_max_size()}); raise max_size or acquire_timeout, "
                "or lower the concurrency"
            ) from exc
        except BaseException as exc:
            self._end_lease(pool)
            if isinstance(exc, Exception):
                raise map_driver_error(exc, "acquire") from exc
            raise
        finally:
            self._waiting -= 1
        self._stats.record_acquire(time.perf_counter() - start)
        return con

    async def _release_raw(self, pool: asyncpg.Pool, con: asyncpg.Connection) -> None:
        """Return *con* to the pool; a failure there does not undo the work already done.

        When the server went away after the last statement, asyncpg's release fails and
        closes the connection; the caller's statements had succeeded, so their result
        stands.
        """
        try:
            await pool.release(con)
        except Exception:
            log.debug("unified_db: releasing a connection failed; it was closed", exc_info=True)
        finally:
            self._end_lease(pool)

    def _end_lease(self, pool: asyncpg.Pool) -> None:
        left = self._leases.get(pool, 0) - 1
        if left > 0:
            self._leases[pool] = left
            return
        self._leases.pop(pool, None)
        drained = self._drained.get(pool)
        if drained is not None:
            drained.set()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        """A pooled connection for several statements; released (shielded) on exit."""
        pool = self._require_pool()
        con = await self._acquire_raw(pool)
        conn = Conn(con, self)
        try:
            yield conn
        finally:
            try:
                await self._release_raw(pool, con)
            finally:
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
        self._stats.incr(st.REQUESTS_NUM)
        first_loss: float | None = None
        attempts_left: int | None = None
        while True:
            # Looked up on every attempt: a retry after _resize_pool must use the new pool.
            pool = self._require_pool()
            if attempts_left is None:
                attempts_left = pool.get_max_size() + 1  # a hard bound, whatever the driver reports
            attempts_left -= 1
            con = await self._acquire_raw(pool)
            opened = getattr(con, "_ud_opened", 0.0)
            try:
                return await getattr(con, method)(sql, *args, timeout=timeout)
            except Exception as exc:
                # A timed-out statement is not replayed even if the cancel cost the connection.
                lost = not isinstance(exc, TimeoutError) and (is_connection_lost(exc) or connection_gone(con))
                if lost and not connection_gone(con):  # broken but open: never hand it out again
                    con.terminate()
                    self._stats.incr(st.CONNECTIONS_LOST)
                # A read is retried on a connection opened after the loss; one opened after
                # it failing too means the server is really gone. At most one attempt per
                # pooled connection.
                if lost and not write and attempts_left > 0 and (first_loss is None or opened < first_loss):
                    if first_loss is None:
                        first_loss = time.monotonic()
                    self._stats.incr(st.RETRIES)
                    continue
                self._stats.incr(st.REQUESTS_ERRORS)
                raise map_driver_error(exc, lost=lost) from exc
            finally:
                await self._release_raw(pool, con)

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

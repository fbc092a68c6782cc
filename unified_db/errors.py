"""The exceptions unified_db raises.

Every error is a :class:`UnifiedDBError`. Driver errors never reach the caller
unwrapped: :func:`map_driver_error` turns them into one of these classes, with the
original chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio

import asyncpg


class UnifiedDBError(Exception):
    """Base class of every unified_db error."""


class InvalidInputError(UnifiedDBError, ValueError):
    """An argument or setting is invalid; nothing was written."""


class NotFoundError(UnifiedDBError, LookupError):
    """The object named does not exist (in this namespace)."""


class ConflictError(UnifiedDBError):
    """A concurrent change or a uniqueness rule prevented the write; nothing was written."""


class DatabaseUnavailableError(UnifiedDBError, ConnectionError):
    """The server could not be reached, or the connection was lost mid-operation."""


class PoolTimeoutError(DatabaseUnavailableError, TimeoutError):
    """No pooled connection became free within ``acquire_timeout``."""


class OperationTimeoutError(UnifiedDBError, TimeoutError):
    """A statement ran longer than ``command_timeout`` and was cancelled."""


class PoolClosedError(UnifiedDBError):
    """The instance is not open: call ``await db.open()`` or use ``async with``."""


class MigrationError(UnifiedDBError):
    """A migration could not be applied, or an applied one was changed on disk."""


class PermissionDeniedError(UnifiedDBError, PermissionError):
    """The database role lacks a privilege the operation needs (see ``init --app-role``)."""


class FeatureUnavailableError(UnifiedDBError):
    """A feature needs something the server does not have (an extension, a direct connection)."""


_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionError,
    OSError,
)


def is_connection_lost(exc: BaseException) -> bool:
    """True when *exc* means the connection (not the statement) failed."""
    if isinstance(exc, TimeoutError):  # an OSError since 3.11, but a statement timeout here
        return False
    if isinstance(exc, _CONNECTION_LOST):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        return "connection is closed" in text or "connection was closed" in text
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # A backend killed while its connection sat idle in the pool can leave asyncpg's
        # protocol mid-state ("cannot switch to state ..."): the connection is unusable.
        return "cannot switch to state" in str(exc)
    return False


def map_driver_error(exc: BaseException, operation: str = "query", *, lost: bool = False) -> UnifiedDBError:
    """Translate a driver (or socket) error into the unified_db error for it.

    The one place that knows asyncpg's exception classes; the caller raises the
    result ``from exc``. *lost*: the caller saw the connection die, whatever *exc*
    says (asyncpg can report a dead connection as an InternalClientError or as a
    proxy "released back to the pool").
    """
    if isinstance(exc, UnifiedDBError):
        return exc
    if lost or is_connection_lost(exc):
        return DatabaseUnavailableError(
            f"{operation}: the database connection was lost or refused ({exc.__class__.__name__}: "
            f"{exc}); check that the server is up, then retry"
        )
    if isinstance(exc, (asyncio.TimeoutError, asyncpg.QueryCanceledError)):
        return OperationTimeoutError(
            f"{operation}: the statement exceeded command_timeout and was cancelled; raise "
            "command_timeout or make the operation smaller"
        )
    if isinstance(exc, asyncpg.UniqueViolationError):
        return ConflictError(f"{operation}: a row with the same key already exists ({exc})")
    if isinstance(exc, (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)):
        return ConflictError(f"{operation}: a concurrent transaction conflicted; retry ({exc})")
    if isinstance(
        exc,
        (
            asyncpg.DataError,
            asyncpg.CharacterNotInRepertoireError,
            asyncpg.UntranslatableCharacterError,
            asyncpg.ProgramLimitExceededError,
        ),
    ):
        return InvalidInputError(f"{operation}: the server rejected the input: {exc}")
    if isinstance(exc, RecursionError):
        # A deeply nested value: asyncpg's own error message (a repr of it) recursed too.
        return InvalidInputError(
            f"{operation}: a value is nested too deeply to encode (JSON nests at most 254 levels)"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return PermissionDeniedError(
            f"{operation}: the database role may not do this ({exc}); run it as the schema owner "
            "(migrations, DDL) or grant the privilege"
        )
    if isinstance(exc, asyncpg.UndefinedTableError):
        return MigrationError(
            f"{operation}: a table is missing ({exc}); run `unified-db migrate up` "
            "or open with auto_migrate=True"
        )
    if isinstance(exc, asyncpg.InterfaceError) and "pool is closed" in str(exc):
        return PoolClosedError(f"{operation}: the pool is closed; open the instance first")
    return UnifiedDBError(f"{operation}: {exc.__class__.__name__}: {exc}")

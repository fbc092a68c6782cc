from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from unified_db import UnifiedDB

from . import pg


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    """A superuser DSN: UNIFIED_DB_TEST_ADMIN_DSN, else UNIFIED_DB_TEST_DSN, else an
    embedded server of this test session.

    The embedded server lives in its own mkdtemp() directory, not under pytest's
    basetemp: pytest prunes old basetemp folders when a session starts, which would
    delete the data of a suite still running beside it. Stopped and deleted at exit.
    """
    dsn = os.environ.get("UNIFIED_DB_TEST_ADMIN_DSN") or os.environ.get("UNIFIED_DB_TEST_DSN")
    if dsn:
        return dsn
    return pg.start_embedded(Path(tempfile.mkdtemp(prefix="udb-test-")) / "pgdata", "delete")


@pytest.fixture(scope="session")
def client_dsn(admin_dsn: str) -> str:
    """What the library connects through: UNIFIED_DB_TEST_DSN (a pooler such as PgBouncer
    when UNIFIED_DB_TEST_ADMIN_DSN names the server itself), else the admin DSN."""
    return os.environ.get("UNIFIED_DB_TEST_DSN") or admin_dsn


#: UNIFIED_DB_TEST_APP_ROLE=1: the library connects as a least-privilege role, as in a
#: deployment where the deploy step ran ``unified-db init --app-role`` (see app_role).
APP_ROLE_MODE = os.environ.get("UNIFIED_DB_TEST_APP_ROLE") == "1"
#: UNIFIED_DB_TEST_PGBOUNCER=1: the library connects through PgBouncer in transaction mode
#: (.ci/pgbouncer.sh); UNIFIED_DB_TEST_ADMIN_DSN then names the server itself.
POOLER_MODE = os.environ.get("UNIFIED_DB_TEST_PGBOUNCER") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_owner(reason): the test changes the schema or roles, or needs the schema owner; "
        "skipped when the suite runs as the app role (UNIFIED_DB_TEST_APP_ROLE=1)",
    )
    config.addinivalue_line(
        "markers",
        "needs_session(reason): the test needs a server session a transaction pooler cannot "
        "give (LISTEN without listen_dsn, this pool's own backends in pg_stat_activity); "
        "skipped behind PgBouncer (UNIFIED_DB_TEST_PGBOUNCER=1)",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("needs_owner")
    if APP_ROLE_MODE and marker is not None:
        reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
        pytest.skip(f"needs the schema owner, not the app role: {reason}")
    marker = item.get_closest_marker("needs_session")
    if POOLER_MODE and marker is not None:
        reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
        pytest.skip(f"needs a server session, not a transaction pooler: {reason}")


@pytest.fixture(scope="session")
def app_role(admin_dsn: str) -> Iterator[str | None]:
    """The login role db_dsn connects as in app-role mode (None otherwise)."""
    if not APP_ROLE_MODE:
        yield None
        return
    name = f"udb_app_{os.getpid()}"
    yield name
    pg.drop_role(admin_dsn, name)


@pytest.fixture(scope="session")
def template_db(admin_dsn: str, app_role: str | None) -> Iterator[str]:
    name = pg.build_template(admin_dsn, app_role)
    yield name
    pg.drop_database(admin_dsn, name)


@pytest.fixture
def db_dsn(admin_dsn: str, client_dsn: str, template_db: str, app_role: str | None) -> Iterator[str]:
    """A fresh, migrated database for one test (as the app role in app-role mode)."""
    name = pg.unique_name("udb_t")
    pg.create_database(admin_dsn, name, template=template_db)
    dsn = pg.with_database(client_dsn, name)
    yield dsn if app_role is None else pg.as_user(dsn, app_role)
    pg.drop_database(admin_dsn, name)


@pytest.fixture
def owner_dsn(admin_dsn: str, db_dsn: str) -> str:
    """db_dsn's database as the admin (schema owner), for a test's own DDL or setup."""
    return pg.with_database(admin_dsn, pg.urlsplit_db(db_dsn))


@pytest.fixture
def empty_dsn(admin_dsn: str, client_dsn: str) -> Iterator[str]:
    """A fresh database with nothing applied."""
    name = pg.unique_name("udb_e")
    pg.create_database(admin_dsn, name)
    yield pg.with_database(client_dsn, name)
    pg.drop_database(admin_dsn, name)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[UnifiedDB]:
    async with UnifiedDB(db_dsn, min_size=1, max_size=10) as instance:
        yield instance


@pytest.fixture
async def other_ns(db_dsn: str) -> AsyncIterator[UnifiedDB]:
    """A second instance on the same database in another namespace (isolation tests)."""
    async with UnifiedDB(db_dsn, namespace="other", min_size=1, max_size=4) as instance:
        yield instance


@pytest.fixture
async def nearcache_pair(db_dsn: str) -> AsyncIterator[tuple[UnifiedDB, UnifiedDB]]:
    """Two instances on one database, each with a near-cache whose listener is up."""
    async with (
        UnifiedDB(db_dsn, cache_local_size=1000, max_size=3) as a,
        UnifiedDB(db_dsn, cache_local_size=1000, max_size=3) as b,
    ):
        assert a._component("nearcache").available and b._component("nearcache").available
        yield a, b

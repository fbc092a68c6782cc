from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from unified_db import UnifiedDB

from . import pg


@pytest.fixture(scope="session")
def admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A superuser DSN: UNIFIED_DB_TEST_ADMIN_DSN, else UNIFIED_DB_TEST_DSN, else an
    embedded server of this test session."""
    dsn = os.environ.get("UNIFIED_DB_TEST_ADMIN_DSN") or os.environ.get("UNIFIED_DB_TEST_DSN")
    if dsn:
        return dsn
    return pg.start_embedded(tmp_path_factory.mktemp("embedded") / "pgdata")


@pytest.fixture(scope="session")
def client_dsn(admin_dsn: str) -> str:
    """What the library connects through: UNIFIED_DB_TEST_DSN (a pooler such as PgBouncer
    when UNIFIED_DB_TEST_ADMIN_DSN names the server itself), else the admin DSN."""
    return os.environ.get("UNIFIED_DB_TEST_DSN") or admin_dsn


@pytest.fixture(scope="session")
def template_db(admin_dsn: str) -> Iterator[str]:
    name = pg.build_template(admin_dsn)
    yield name
    pg.drop_database(admin_dsn, name)


@pytest.fixture
def db_dsn(admin_dsn: str, client_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = pg.unique_name("udb_t")
    pg.create_database(admin_dsn, name, template=template_db)
    yield pg.with_database(client_dsn, name)
    pg.drop_database(admin_dsn, name)


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

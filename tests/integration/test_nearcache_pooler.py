"""Behind PgBouncer in transaction mode the near-cache works when ``listen_dsn`` reaches
the server directly (LISTEN through the pooler would never hear a NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from unified_db import UnifiedDB

from .. import pg

pytestmark = pytest.mark.skipif(
    os.environ.get("UNIFIED_DB_TEST_PGBOUNCER") != "1",
    reason="runs behind PgBouncer only (.ci/pgbouncer.sh); the other near-cache tests cover a direct server",
)


async def test_near_cache_behind_pgbouncer_listens_through_listen_dsn(db_dsn: str, admin_dsn: str):
    direct = pg.with_database(admin_dsn, pg.urlsplit_db(db_dsn))
    settings = {"cache_local_size": 100, "listen_dsn": direct}
    async with UnifiedDB(db_dsn, **settings) as writer, UnifiedDB(db_dsn, **settings) as reader:
        await writer.cache_set("k", 1)
        # The writer's own invalidation of "k" may reach the reader after its first read
        # filled L1: read until a read is served from L1.
        deadline = time.monotonic() + 2
        while reader.get_stats().get("local_hits", 0) < 1:
            assert await reader.cache_get("k") == 1
            assert time.monotonic() < deadline, "the reader never served k from its L1"
            await asyncio.sleep(0.01)
        await writer.cache_set("k", 2)
        deadline = time.monotonic() + 2
        while await reader.cache_get("k") != 2:
            assert time.monotonic() < deadline, "the write never reached the reader's L1"
            await asyncio.sleep(0.01)

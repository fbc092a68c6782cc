"""The near-cache (L1) against a real PostgreSQL: coherence between instances, listener loss."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from unified_db import UnifiedDB
from unified_db.nearcache import NearCacheService, publish

# LISTEN through a transaction pooler never hears a NOTIFY: behind PgBouncer the near-cache
# needs listen_dsn (tests/integration/test_nearcache_pooler.py covers that).
pytestmark = pytest.mark.needs_session("the near-cache LISTENs on the test DSN")


def local(db: UnifiedDB) -> NearCacheService:
    svc = db._component("nearcache")
    assert svc is not None
    return svc


async def cached_in_l1(db: UnifiedDB, key: str) -> bool:
    hit, _ = local(db).cache.get("cache", key)
    return hit


async def fill_l1(db: UnifiedDB, key: str) -> object:
    """Read *key* until it sits in db's L1 (a read racing an earlier write's invalidation is
    rightly not cached, so the first read may not stick)."""
    deadline = time.monotonic() + 2
    while True:
        value = await db.cache_get(key)
        if await cached_in_l1(db, key):
            return value
        assert time.monotonic() < deadline, f"{key} never stayed in L1"
        await asyncio.sleep(0.01)


async def drop_latency(db: UnifiedDB, key: str, write: Callable[[], Awaitable[object]]) -> float:
    """Seconds from the end of *write* (in another instance) until *key* left db's L1."""
    await fill_l1(db, key)
    await write()
    start = time.monotonic()
    while await cached_in_l1(db, key):
        if time.monotonic() - start > 2:
            pytest.fail(f"{key} still in L1 2 s after the write")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def test_l1_serves_repeated_reads_without_a_round_trip(nearcache_pair):
    a, _ = nearcache_pair
    await a.cache_set("k", {"v": 1}, ttl=30)
    assert await a.cache_get("k") == {"v": 1}  # fills L1
    before = a.get_stats()["requests_num"]
    for _ in range(100):
        assert await a.cache_get("k") == {"v": 1}
    assert a.get_stats()["requests_num"] == before
    value = await a.cache_get("k")
    value["v"] = 99  # callers get their own copy
    assert await a.cache_get("k") == {"v": 1}
    info = await a.cache_info()
    assert info.local_enabled and info.local_available and info.local_entries == 1
    assert info.local_hits >= 101 and info.local_hit_ratio > 0.9


async def test_every_kind_of_write_drops_the_key_from_other_l1s_within_100ms(nearcache_pair):
    a, b = nearcache_pair
    await b.cache_set_many({f"k{i}": i for i in range(12)}, ttl=30, tags=("tg",))
    await b.cache_set("counter", 1)
    writes = {
        "k0": lambda: b.cache_set("k0", "new"),
        "k1": lambda: b.cache_delete("k1"),
        "k2": lambda: b.cache_touch("k2", 0.5),
        "k3": lambda: b.cache_persist("k3"),
        "counter": lambda: b.cache_incr("counter"),
        "k4": lambda: b.cache_set_many({"k4": "new", "other": 1}),
        "k5": lambda: b.cache_delete_many(["k5", "k6"]),
        "k7": lambda: b.cache_invalidate_tags(["tg"]),
    }
    latencies = [await drop_latency(a, key, write) for key, write in writes.items()]
    await a.cache_set("k0", "again")
    latencies.append(await drop_latency(a, "k0", lambda: b.cache_clear()))
    assert statistics.median(latencies) < 0.1, latencies
    assert max(latencies) < 1.0, latencies  # generous: the machine is shared
    assert await a.cache_get("k0") is None and await a.cache_get("k1") is None


async def test_a_reader_never_sees_a_stale_value_after_a_write(nearcache_pair):
    a, b = nearcache_pair
    for i in range(20):
        await b.cache_set("k", i)
        deadline = time.monotonic() + 1
        while await a.cache_get("k") != i:  # L1 may lag by the notification delay only
            assert time.monotonic() < deadline, f"stale value after write {i}"
            await asyncio.sleep(0.005)


async def test_l1_entries_never_outlive_their_ttl(nearcache_pair):
    a, _ = nearcache_pair
    await a.cache_set("short", "v", ttl=0.3)
    assert await a.cache_get("short") == "v"
    assert await cached_in_l1(a, "short")
    await asyncio.sleep(0.4)
    assert not await cached_in_l1(a, "short")
    assert await a.cache_get("short") is None


async def test_losing_the_listener_flushes_l1_until_it_is_back(nearcache_pair, admin_dsn: str):
    a, b = nearcache_pair
    await b.cache_set("k", "v1")
    assert await fill_l1(a, "k") == "v1"
    svc = local(a)
    pid = svc.backend_pid
    admin = await asyncpg.connect(admin_dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    deadline = time.monotonic() + 3
    while svc.cache.available and svc.reconnects == 0:
        assert time.monotonic() < deadline, "the lost listener was not noticed"
        await asyncio.sleep(0.005)
    # Flushed at once; while the listener is away the L1 neither serves nor stores.
    assert not await cached_in_l1(a, "k")
    await b.cache_set("k", "v2")  # its notification may be lost: the value must not be
    assert await a.cache_get("k") == "v2"
    assert await svc.wait_available(5)
    assert svc.backend_pid != pid and svc.reconnects >= 1
    assert await fill_l1(a, "k") == "v2"
    assert await drop_latency(a, "k", lambda: b.cache_set("k", "v3")) < 1.0
    assert await a.cache_get("k") == "v3"


async def test_a_writer_without_l1_publishes_when_told_to(db_dsn: str):
    async with (
        UnifiedDB(db_dsn, cache_local_size=100, max_size=2) as reader,
        UnifiedDB(db_dsn, cache_publish_invalidations=True, max_size=2) as writer,
    ):
        assert writer._component("nearcache") is None
        await writer.cache_set("k", 1)
        assert await drop_latency(reader, "k", lambda: writer.cache_set("k", 2)) < 1.0
        assert await reader.cache_get("k") == 2


async def test_other_namespaces_do_not_invalidate(db_dsn: str):
    async with (
        UnifiedDB(db_dsn, cache_local_size=100, max_size=2) as a,
        UnifiedDB(db_dsn, namespace="other", cache_local_size=100, max_size=2) as other,
    ):
        await a.cache_set("k", "mine")
        await a.cache_get("k")
        await other.cache_set("k", "theirs")
        await other.cache_clear()
        await asyncio.sleep(0.2)
        assert await cached_in_l1(a, "k")
        assert await a.cache_get("k") == "mine"


async def test_publish_helper_for_other_kinds(nearcache_pair):
    """The API another feature (personas) uses: its own kind, invalidated after commit."""
    a, b = nearcache_pair
    svc = local(a)
    svc.cache.put("persona", "p1", "cached persona", 30, svc.cache.token())
    async with b._transaction() as con:
        await publish(con, b.schema, b.namespace, "persona", ["p1"])
        await asyncio.sleep(0.2)
        assert svc.cache.get("persona", "p1") == (True, "cached persona")  # not before commit
    deadline = time.monotonic() + 1
    while svc.cache.get("persona", "p1")[0]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    svc.cache.put("persona", "p2", "x", 30, svc.cache.token())
    try:
        async with b._transaction() as con:
            await publish(con, b.schema, b.namespace, "persona", None)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    await asyncio.sleep(0.2)
    assert svc.cache.get("persona", "p2") == (True, "x")  # a rolled back write sends nothing

"""Personas through the near-cache (L1) against a real PostgreSQL: hits, coherence between
instances for every kind of write, writers without an L1, listener loss, namespaces."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from unified_db import ConflictError, UnifiedDB
from unified_db.extensions.personas import KIND, USER_KIND, Persona
from unified_db.nearcache import NearCacheService

# LISTEN through a transaction pooler never hears a NOTIFY: behind PgBouncer the near-cache
# needs listen_dsn (tests/integration/test_nearcache_pooler.py covers that).
pytestmark = pytest.mark.needs_session("the near-cache LISTENs on the test DSN")


def spec(name: str, **kw) -> dict:
    return {"name": name, "system_prompt": f"You are {name}.", **kw}


def local(db: UnifiedDB) -> NearCacheService:
    svc = db._component("nearcache")
    assert svc is not None
    return svc


def in_l1(db: UnifiedDB, kind: str, key: str) -> bool:
    return local(db).cache.get(kind, key)[0]


Read = Callable[[], Awaitable[Persona | None]]


async def fill_l1(db: UnifiedDB, kind: str, key: str, read: Read) -> Persona | None:
    """Read until the entry sits in db's L1 (a read racing an earlier write's invalidation
    is rightly not cached, so the first read may not stick)."""
    deadline = time.monotonic() + 2
    while True:
        value = await read()
        if in_l1(db, kind, key):
            return value
        assert time.monotonic() < deadline, f"{kind}:{key} never stayed in L1"
        await asyncio.sleep(0.01)


async def visible_after(
    read: Read, check: Callable[[Persona | None], bool], write: Callable[[], Awaitable[object]]
) -> float:
    """Seconds from the end of *write* until *read* (in another instance) passes *check*."""
    await write()
    start = time.monotonic()
    while not check(await read()):
        if time.monotonic() - start > 2:
            pytest.fail("the change was still not visible 2 s after the write")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def test_repeated_reads_are_served_from_l1_without_a_round_trip(nearcache_pair):
    a, b = nearcache_pair
    await b.persona_initialize_default()
    await b.persona_create(spec("p", expertise=["sql"], personality_traits={"tone": {"warm": True}}))
    await b.persona_set_user_preference("u1", "p")
    first = await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))
    await fill_l1(a, USER_KIND, "u1", lambda: a.persona_get_for_user("u1"))
    await fill_l1(a, KIND, "nobody", lambda: a.persona_get("nobody"))  # absence is cached too
    stats = a.get_stats()
    before, hits = stats["requests_num"], stats.get("persona_local_hits", 0)
    for _ in range(50):
        assert await a.persona_get("p") == first
        assert (await a.persona_get_for_user("u1")).name == "p"
        assert await a.persona_get("nobody") is None
    stats = a.get_stats()
    assert stats["requests_num"] == before
    assert stats["persona_local_hits"] - hits == 150
    assert first == await b.persona_get("p")  # what the table says
    # callers get their own copy: mutating it changes nothing for the next one
    mine = await a.persona_get("p")
    mine.expertise.append("rust")
    mine.personality_traits["tone"]["warm"] = False
    again = await a.persona_get("p")
    assert again.expertise == ["sql"] and again.personality_traits == {"tone": {"warm": True}}
    # the cache's own figures are not mixed with the personas'
    assert (await a.cache_info()).local_hits == 0


async def test_every_kind_of_write_in_one_instance_is_seen_by_the_other_within_100ms(nearcache_pair):
    a, b = nearcache_pair
    await b.persona_initialize_default()
    await b.persona_create(spec("p", role="v1"))
    await b.persona_create(spec("q"))
    await b.persona_update("p", {"role": "v2"})

    def get(name: str, **kw) -> Read:
        return lambda: a.persona_get(name, **kw)

    def for_user(user: str) -> Read:
        return lambda: a.persona_get_for_user(user)

    # (what A reads, how it is cached, the write in B, what A must then see)
    steps: list[tuple[str, str, Read, Callable[[], Awaitable[object]], Callable[[Persona | None], bool]]] = [
        ("update", "p", get("p"), lambda: b.persona_update("p", {"role": "v3"}), lambda p: p.role == "v3"),
        ("rollback", "p", get("p"), lambda: b.persona_rollback("p", 1), lambda p: p.role == "v1"),
        ("delete", "q", get("q"), lambda: b.persona_delete("q"), lambda p: p is None),
        (
            "restore",
            "q",
            get("q", include_inactive=True),
            lambda: b.persona_restore("q"),
            lambda p: p is not None and p.is_active,
        ),
        ("set_default", "p", get("p"), lambda: b.persona_set_default("p"), lambda p: p.is_default),
        (
            "set_default (old default)",
            "p",
            get("p"),
            lambda: b.persona_set_default("q"),
            lambda p: not p.is_default,
        ),
        (
            "import",
            "p",
            get("p"),
            lambda: b.persona_import([spec("p", role="imported"), spec("r")]),
            lambda p: p.role == "imported",
        ),
        ("import (new)", "r2", get("r2"), lambda: b.persona_import([spec("r2")]), lambda p: p is not None),
        ("create", "s", get("s"), lambda: b.persona_create(spec("s")), lambda p: p is not None),
        ("purge", "r", get("r"), lambda: b.persona_purge("r"), lambda p: p is None),
    ]
    user_steps = [
        ("user preference", "u1", lambda: b.persona_set_user_preference("u1", "p"), "p"),
        ("user preference cleared", "u1", lambda: b.persona_set_user_preference("u1", None), "q"),
        ("default moved", "u2", lambda: b.persona_set_default("s"), "s"),
        ("chosen persona deleted", "u3", lambda: b.persona_delete("r2"), "s"),
        ("chosen persona purged", "u4", lambda: b.persona_purge("p"), "s"),
    ]
    latencies: dict[str, float] = {}
    for label, name, read, write, check in steps:
        await fill_l1(a, KIND, name, read)
        assert not check(await read()), label  # A serves the old state from L1 ...
        latencies[label] = await visible_after(read, check, write)  # ... until B's write
    await b.persona_set_user_preference("u3", "r2")
    await b.persona_set_user_preference("u4", "p")
    for label, user, write, expected in user_steps:
        await fill_l1(a, USER_KIND, user, for_user(user))
        assert (await a.persona_get_for_user(user)).name != expected, label
        latencies[label] = await visible_after(for_user(user), lambda p, e=expected: p.name == e, write)
    print({k: round(v * 1000, 2) for k, v in latencies.items()})
    assert statistics.median(latencies.values()) < 0.1, latencies
    assert max(latencies.values()) < 1.0, latencies  # generous: two shared cores


async def test_a_writer_without_a_near_cache_still_invalidates(nearcache_pair, db_dsn: str):
    a, _ = nearcache_pair
    async with UnifiedDB(db_dsn, max_size=2) as plain:
        assert plain._component("nearcache") is None
        assert plain.settings.cache_publish_invalidations is None  # personas publish anyway
        await plain.persona_initialize_default()
        await plain.persona_create(spec("p", role="old"))
        await plain.persona_set_user_preference("u", "p")
        await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))
        await fill_l1(a, USER_KIND, "u", lambda: a.persona_get_for_user("u"))
        took = await visible_after(
            lambda: a.persona_get("p"),
            lambda p: p.role == "new",
            lambda: plain.persona_update("p", {"role": "new"}),
        )
        assert took < 1.0
        took = await visible_after(
            lambda: a.persona_get_for_user("u"),
            lambda p: p.name == "assistant",
            lambda: plain.persona_delete("p"),
        )
        assert took < 1.0


async def test_own_writes_are_read_back_at_once_even_with_readers_racing(nearcache_pair):
    """The writer's own L1 is dropped when its transaction ends, so the next read in the
    same process sees the write, even when a concurrent read of the old row tried to put it."""
    a, _ = nearcache_pair
    await a.persona_create(spec("p", role="0"))
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            await a.persona_get("p")
            await asyncio.sleep(0)  # an L1 hit never yields to the loop by itself

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    try:
        for i in range(1, 30):
            await a.persona_update("p", {"role": str(i)})
            assert (await a.persona_get("p")).role == str(i)
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert a.get_stats()["persona_local_hits"] > 0


async def test_a_reader_never_goes_back_to_an_older_version(nearcache_pair):
    a, b = nearcache_pair
    await b.persona_create(spec("p", role="0"))
    await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))
    for i in range(1, 15):
        await b.persona_update("p", {"role": str(i)})
        deadline = time.monotonic() + 1
        while (await a.persona_get("p")).role != str(i):  # L1 may lag by the notification only
            assert time.monotonic() < deadline, f"stale persona after write {i}"
            await asyncio.sleep(0.003)


async def test_a_rolled_back_write_invalidates_nothing_elsewhere(nearcache_pair):
    a, b = nearcache_pair
    await b.persona_create(spec("p", role="kept"))
    await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))
    with pytest.raises(ConflictError):
        await b.persona_update("p", {"role": "lost"}, expected_version=7)
    await b.persona_initialize_default()
    await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))
    with pytest.raises(ConflictError):
        await b.persona_purge("assistant")  # the default
    await asyncio.sleep(0.2)
    assert in_l1(a, KIND, "p")
    assert (await a.persona_get("p")).role == "kept"


async def test_losing_the_listener_flushes_l1_and_bypasses_it_until_it_is_back(
    nearcache_pair, admin_dsn: str
):
    a, b = nearcache_pair
    await b.persona_create(spec("p", role="v1"))
    await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))
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
    assert not in_l1(a, KIND, "p")  # flushed at once
    await b.persona_update("p", {"role": "v2"})  # its notification may be lost: the value must not be
    if not svc.available:  # still reconnecting: reads go to the table and are not kept
        misses = a.get_stats().get("persona_local_misses", 0)
        assert (await a.persona_get("p")).role == "v2"
        assert a.get_stats().get("persona_local_misses", 0) == misses  # L1 not even consulted
    assert await svc.wait_available(5)
    assert svc.backend_pid != pid
    assert (await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))).role == "v2"
    took = await visible_after(
        lambda: a.persona_get("p"), lambda p: p.role == "v3", lambda: b.persona_update("p", {"role": "v3"})
    )
    assert took < 1.0


async def test_other_namespaces_neither_share_nor_invalidate_l1(db_dsn: str):
    async with (
        UnifiedDB(db_dsn, cache_local_size=100, max_size=2) as a,
        UnifiedDB(db_dsn, namespace="other", cache_local_size=100, max_size=2) as other,
    ):
        await a.persona_create(spec("p", role="mine"))
        await other.persona_create(spec("p", role="theirs"))
        assert (await fill_l1(a, KIND, "p", lambda: a.persona_get("p"))).role == "mine"
        assert (await fill_l1(other, KIND, "p", lambda: other.persona_get("p"))).role == "theirs"
        await other.persona_update("p", {"role": "theirs-2"})
        await other.persona_purge("p")
        await other.persona_import([spec("p", role="theirs-3")])
        await asyncio.sleep(0.2)
        assert in_l1(a, KIND, "p")
        assert (await a.persona_get("p")).role == "mine"
        assert (await other.persona_get("p")).role == "theirs-3"

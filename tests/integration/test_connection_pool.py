"""The connection pool (unified_db/connection_pool.py) against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from unified_db.connection_pool import ConnectionPool, PoolClosingError

pytestmark = pytest.mark.needs_session("counts and kills this pool's own server backends")


@pytest.fixture
async def make_pool(db_dsn: str) -> AsyncIterator:
    pools: list[ConnectionPool] = []

    async def make(min_size: int = 0, max_size: int = 2, lifetime: float = 0.0) -> ConnectionPool:
        pool = ConnectionPool(
            lambda: asyncpg.connect(db_dsn),
            min_size=min_size,
            max_size=max_size,
            inactive_lifetime=lifetime,
            reset_timeout=5.0,
        )
        await pool.open()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await asyncio.wait_for(pool.close(), 10)


async def pid(con: asyncpg.Connection) -> int:
    return await con.fetchval("SELECT pg_backend_pid()")


async def test_opens_min_size_and_lends_the_last_returned_first(make_pool):
    pool = await make_pool(min_size=2, max_size=3)
    assert (pool.get_size(), pool.get_idle_size()) == (2, 2)
    a = pool.try_acquire()
    b = pool.try_acquire()
    assert a is not None and b is not None and a is not b
    assert pool.try_acquire() is None  # none idle: the caller awaits acquire()
    pool.release(a)
    pool.release(b)
    assert pool.try_acquire() is b  # LIFO: the warmest first
    pool.release(b)


async def test_connects_up_to_max_size_then_queues_waiters_in_order(make_pool):
    pool = await make_pool(max_size=1)
    con = await pool.acquire()
    assert pool.get_size() == 1
    order: list[int] = []

    async def waiter(i: int) -> None:
        c = await pool.acquire()
        order.append(i)
        await asyncio.sleep(0)
        pool.release(c)

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    await asyncio.sleep(0.05)
    assert pool.get_waiting() == 5 and pool.get_size() == 1
    pool.release(con)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert (pool.get_size(), pool.get_idle_size(), pool.get_waiting()) == (1, 1, 0)


async def test_a_cancelled_waiter_passes_its_connection_on(make_pool):
    pool = await make_pool(max_size=1)
    con = await pool.acquire()
    first = asyncio.create_task(pool.acquire())
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(con)  # handed to `first`, which is cancelled before it runs
    first.cancel()
    got = await asyncio.wait_for(second, 2)
    assert got is con
    pool.release(got)
    assert (pool.get_size(), pool.get_idle_size()) == (1, 1)


async def test_an_unclean_release_rolls_back_before_the_connection_is_lent_again(make_pool):
    pool = await make_pool(max_size=1)
    con = await pool.acquire()
    await con.execute("BEGIN")
    await con.execute("CREATE TEMP TABLE t_pool_probe (x int)")
    pool.release(con)  # still in a transaction: reset in the background first
    again = await asyncio.wait_for(pool.acquire(), 5)
    assert again is con and not again.is_in_transaction()
    assert await again.fetchval("SELECT to_regclass('pg_temp.t_pool_probe')") is None
    pool.release(again)


async def test_a_cancelled_statement_is_waited_for_and_the_connection_reused(make_pool):
    pool = await make_pool(max_size=1)
    con = await pool.acquire()
    backend = await pid(con)
    task = asyncio.create_task(con.execute("SELECT pg_sleep(10)"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool.release(con, clean=False)
    again = await asyncio.wait_for(pool.acquire(), 5)
    assert again is con and await pid(again) == backend
    pool.release(again)


async def test_a_connection_that_died_idle_is_dropped_and_replaced(make_pool, admin_dsn: str):
    pool = await make_pool(min_size=1, max_size=1)
    con = pool.try_acquire()
    backend = await pid(con)
    pool.release(con)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", backend)
    finally:
        await admin.close()
    for _ in range(500):
        if pool.get_size() == 0:
            break
        await asyncio.sleep(0.01)
    assert pool.get_size() == 0  # noticed while idle, not lent
    fresh = await pool.acquire()
    assert await pid(fresh) != backend
    pool.release(fresh)


async def test_resize_closes_surplus_and_lets_waiters_connect(make_pool):
    pool = await make_pool(min_size=0, max_size=1)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    pool.resize(0, 2)  # a free slot: the waiter connects at once
    extra = await asyncio.wait_for(waiter, 5)
    assert pool.get_size() == 2
    pool.resize(0, 1)
    pool.release(extra)  # surplus: closed, not kept
    pool.release(held)
    await asyncio.sleep(0.05)
    assert (pool.get_size(), pool.get_idle_size()) == (1, 1)
    assert extra.is_closed() and not held.is_closed()


async def test_idle_connections_above_min_size_expire(make_pool):
    pool = await make_pool(min_size=1, max_size=3, lifetime=60.0)
    cons = [await pool.acquire() for _ in range(3)]
    for con in cons:
        pool.release(con)
    assert pool.expire_idle() == 0  # not idle long enough
    assert pool.expire_idle(now=time.monotonic() + 61) == 2
    await asyncio.sleep(0.05)
    assert (pool.get_size(), pool.get_idle_size()) == (1, 1)


async def test_close_waits_for_lent_connections_and_wakes_waiters(make_pool):
    pool = await make_pool(max_size=1)
    con = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(pool.close())
    with pytest.raises(PoolClosingError):
        await asyncio.wait_for(waiter, 2)
    await asyncio.sleep(0.05)
    assert not closing.done()  # a connection is still lent
    pool.release(con)
    await asyncio.wait_for(closing, 5)
    assert con.is_closed() and pool.get_size() == 0
    with pytest.raises(PoolClosingError):
        await pool.acquire()


async def test_terminate_closes_lent_connections_too(make_pool):
    pool = await make_pool(min_size=2, max_size=2)
    lent = await pool.acquire()
    pool.terminate()
    assert lent.is_closed() and pool.get_size() == 0
    pool.release(lent)  # a late release of a terminated connection is harmless
    assert pool.get_size() == 0

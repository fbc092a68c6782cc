"""The connection pool: asyncpg connections, lent and taken back with no I/O and no task.

asyncpg's own pool lends a proxy per acquire, shields every release in a new task and
re-arms an inactivity timer each time: measured here, that bookkeeping cost more client
CPU than the one-statement query it wrapped. This pool keeps what unified_db needs and
no more, in the manner of psycopg_pool:

- a LIFO stack of idle connections (the warmest is lent first, the coldest expire);
- ``try_acquire()`` / ``release()`` are plain calls: a connection that finished its work
  cleanly goes straight back to the stack or to the first waiter;
- a connection released after an error or a cancellation is reset in a tracked
  background task (asyncpg waits for a pending cancel, an open transaction is rolled
  back) and comes back only if that succeeds; otherwise it is closed;
- waiters queue in FIFO order; a closed connection or a larger ``max_size`` frees a slot
  and wakes one of them to connect;
- ``resize()`` changes the bounds in place; surplus connections close as they come back;
- idle connections above ``min_size`` close after ``inactive_lifetime`` seconds.

Connections are made by the ``connect`` callable (the caller's DSN, settings and
per-connection setup); a dead idle connection is noticed through asyncpg's termination
listener and dropped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger("unified_db")


async def _wait_for_cancel(con: asyncpg.Connection) -> None:
    """Wait until a statement cancelled by a timeout or a task cancellation is acknowledged.

    Until then asyncpg refuses every statement on the connection. asyncpg's own pool calls
    the same protocol method on release; without it (another asyncpg) the connection is
    closed instead, which is safe but not reused.
    """
    wait = getattr(getattr(con, "_protocol", None), "_wait_for_cancellation", None)
    if wait is None:
        raise RuntimeError("this asyncpg cannot wait for a cancellation")
    await wait()


class PoolClosingError(Exception):
    """The pool was closed while a caller waited for a connection (mapped by the caller)."""


class ConnectionPool:
    """A bounded pool of asyncpg connections (see the module docstring)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        min_size: int,
        max_size: int,
        inactive_lifetime: float,
        reset_timeout: float,
    ) -> None:
        self._connect = connect
        self._min_size = min_size
        self._max_size = max_size
        self._lifetime = inactive_lifetime
        self._reset_timeout = reset_timeout
        self._idle: deque[asyncpg.Connection] = deque()  # LIFO: append and pop on the right
        self._idle_since: dict[asyncpg.Connection, float] = {}
        self._members: set[asyncpg.Connection] = set()  # open or being lent, idle or not
        self._connecting = 0
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._returned = asyncio.Event()  # set whenever a lent connection comes back
        self._expirer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ figures

    def get_size(self) -> int:
        """Connections open or being opened, lent or idle."""
        return len(self._members) + self._connecting

    def get_idle_size(self) -> int:
        return len(self._idle)

    def get_min_size(self) -> int:
        return self._min_size

    def get_max_size(self) -> int:
        return self._max_size

    def get_waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Open ``min_size`` connections; on a failure close those made and raise it."""
        results = await asyncio.gather(
            *(self._new_connection() for _ in range(self._min_size)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for con in results:
            if isinstance(con, asyncpg.Connection):
                if errors:
                    self._forget(con)
                    con.terminate()
                else:
                    self._put_idle(con)
        if errors:
            raise errors[0]
        if self._lifetime > 0:
            self._expirer = asyncio.get_running_loop().create_task(self._expire_loop())

    async def close(self) -> None:
        """Refuse new acquires, wait for lent connections to come back, close them all."""
        self._closing = True
        self._wake_all()
        if self._expirer is not None:
            self._expirer.cancel()
        while self._members or self._tasks:
            for con in list(self._idle):
                self._forget(con)
                await con.close()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            elif self._members:
                self._returned.clear()
                await self._returned.wait()

    def terminate(self) -> None:
        """Close every connection at once, lent or idle (when close() took too long)."""
        self._closing = True
        self._wake_all()
        if self._expirer is not None:
            self._expirer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for con in list(self._members):
            self._forget(con)
            con.terminate()

    def resize(self, min_size: int, max_size: int) -> None:
        """New bounds, at once: surplus idle connections close now, lent ones on release."""
        self._min_size, self._max_size = min_size, max_size
        while self._idle and self.get_size() > max_size:
            self._close_in_background(self._idle.popleft())
        for _ in range(max(0, max_size - self.get_size())):
            if not self._wake_one(None):
                break

    # ------------------------------------------------------------------ lending

    def try_acquire(self) -> asyncpg.Connection | None:
        """An idle connection, or None when there is none (then await :meth:`acquire`)."""
        idle = self._idle
        while idle and not self._closing:
            con = idle.pop()
            if not con.is_closed():
                return con
            self._forget(con)
        return None

    async def acquire(self) -> asyncpg.Connection:
        """A connection: an idle one, a new one while below max_size, else the next released.

        Waits without a bound; the caller puts a timeout around it.
        """
        while True:
            if self._closing:
                raise PoolClosingError("the pool is closing")
            con = self.try_acquire()
            if con is not None:
                return con
            if self.get_size() < self._max_size:
                return await self._new_connection()
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                con = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self.release(waiter.result())  # handed over as we were cancelled: pass it on
                elif not waiter.done():
                    waiter.cancel()
                else:
                    self._wake_one(None)  # a slot handed to us: hand it on
                raise
            if con is not None:
                return con
            # None: a slot opened (a connection closed, the pool grew or is closing): look again

    def release(self, con: asyncpg.Connection, *, clean: bool = True) -> None:
        """Take *con* back. ``clean``: its last statement finished normally, so it can be
        lent again as it is; otherwise it is reset first, in the background."""
        if con not in self._members:
            return  # terminated meanwhile and already forgotten
        if con.is_closed() or self._closing or self.get_size() > self._max_size:
            self._returned.set()
            if con.is_closed():
                self._forget(con)
                self._wake_one(None)
            else:
                self._close_in_background(con)
            return
        if not clean or con.is_in_transaction():
            self._spawn(self._reset(con))
            return
        self._returned.set()
        self._hand_over(con)

    # ------------------------------------------------------------------ internals

    def _hand_over(self, con: asyncpg.Connection) -> None:
        if not self._wake_one(con):
            self._put_idle(con)

    def _wake_one(self, value: asyncpg.Connection | None) -> bool:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return True
        return False

    def _wake_all(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _put_idle(self, con: asyncpg.Connection) -> None:
        self._idle_since[con] = time.monotonic()
        self._idle.append(con)

    def _forget(self, con: asyncpg.Connection) -> None:
        self._members.discard(con)
        self._idle_since.pop(con, None)
        with contextlib.suppress(ValueError):
            self._idle.remove(con)

    async def _new_connection(self) -> asyncpg.Connection:
        self._connecting += 1
        try:
            con = await self._connect()
        except BaseException:
            self._connecting -= 1
            self._wake_one(None)  # the slot is free again for the next waiter
            raise
        self._connecting -= 1
        self._members.add(con)
        con.add_termination_listener(self._on_terminated)
        return con

    def _on_terminated(self, con: asyncpg.Connection) -> None:
        if con in self._members:
            idle = con in self._idle_since
            self._forget(con)
            if idle:
                self._wake_one(None)
            # a lent one is dropped when it is released (release() sees it closed)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_in_background(self, con: asyncpg.Connection) -> None:
        self._forget(con)
        self._spawn(self._close(con))
        self._wake_one(None)

    async def _close(self, con: asyncpg.Connection) -> None:
        try:
            await con.close(timeout=self._reset_timeout)
        except Exception:
            con.terminate()

    async def _reset(self, con: asyncpg.Connection) -> None:
        try:
            async with asyncio.timeout(self._reset_timeout):
                await _wait_for_cancel(con)
                await con.reset()  # rolls back an open transaction
        except (Exception, asyncio.CancelledError):
            log.debug("unified_db: resetting a released connection failed; closing it", exc_info=True)
            self._forget(con)
            con.terminate()
            self._returned.set()
            self._wake_one(None)
            return
        self._returned.set()
        if self._closing or self.get_size() > self._max_size:
            self._close_in_background(con)
        else:
            self._hand_over(con)

    async def _expire_loop(self) -> None:
        period = max(0.5, min(self._lifetime / 2, 30.0))
        while True:
            await asyncio.sleep(period)
            self.expire_idle()

    def expire_idle(self, now: float | None = None) -> int:
        """Close idle connections unused for ``inactive_lifetime`` while above ``min_size``."""
        now = time.monotonic() if now is None else now
        closed = 0
        while self._idle and self.get_size() > self._min_size:
            oldest = self._idle[0]
            if now - self._idle_since.get(oldest, now) < self._lifetime:
                break
            self._close_in_background(self._idle.popleft())
            closed += 1
        return closed

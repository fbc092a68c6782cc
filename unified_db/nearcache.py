"""A per-process near-cache (L1) kept coherent across processes by LISTEN/NOTIFY.

Any feature can keep its own objects here, keyed by ``(kind, key)``: kind ``"cache"`` is
the cache's, ``"persona"`` and ``"persona_user"`` the personas'. The pieces:

* :class:`NearCache`: the in-memory LRU, no I/O. ``get`` says hit or miss; ``put`` stores
  with a TTL, but only when no invalidation of that key arrived since the caller's
  ``token()`` (taken *before* reading the database), so a value read just before a
  concurrent write is never cached after that write's invalidation went by.
* :func:`invalidation_payloads` / :data:`NOTIFY_SQL`: what a writer sends. A writer calls
  ``pg_notify`` in the same transaction as its write (so it is delivered only after
  commit) with the payloads for ``(namespace, kind, keys)``; keys are batched under
  PostgreSQL's 8000-byte payload limit and fall back to "flush this kind".
  :func:`publish` does it on a connection inside the caller's transaction.
* :class:`NearCacheService`: the component the base starts. It owns the ``NearCache`` and
  a listening connection from ``db.connect_direct()`` (which honours ``listen_dsn``). When
  that connection is lost the L1 is flushed whole and refuses every ``get``/``put`` until
  the listener is back, so a stale value is never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import asyncpg

    from .core import Conn, UnifiedPostgreSQL

log = logging.getLogger("unified_db.nearcache")

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; keep a margin.
PAYLOAD_LIMIT = 7900
#: More payloads than this for one write and the writer asks for a flush of the kind.
MAX_PAYLOADS = 32
#: Every notification of the batch in one statement; meant to run inside the writer's transaction.
NOTIFY_SQL = "SELECT count(pg_notify($1, p)::text) FROM unnest($2::text[]) AS p"

_MISS = object()


def channel(schema: str) -> str:
    """The NOTIFY channel of one schema (at most 63 bytes, PostgreSQL's identifier limit)."""
    return ("udb_nearcache_" + schema)[:63]


def _header(namespace: str, kind: str, origin: str | None) -> dict[str, str]:
    head = {"ns": namespace, "kind": kind}
    if origin is not None:
        head["origin"] = origin
    return head


def flush_payload(namespace: str, kind: str, origin: str | None = None) -> str:
    return orjson.dumps({**_header(namespace, kind, origin), "all": True}).decode()


def invalidation_payloads(
    namespace: str, kind: str, keys: Iterable[str] | None, *, origin: str | None = None
) -> list[str]:
    """The NOTIFY payloads that drop *keys* of *kind* in *namespace* from every L1.

    Keys are packed into as few payloads as fit under :data:`PAYLOAD_LIMIT`; ``None``, a
    key too long for one payload, or more than :data:`MAX_PAYLOADS` payloads give a
    single "flush kind" payload instead. *origin* (the writer's ``db.instance_id``) lets
    the writer's own service skip the echo; a writer that sets it must drop its own L1
    copies itself once the write is done.
    """
    if keys is None:
        return [flush_payload(namespace, kind, origin)]
    head = orjson.dumps(_header(namespace, kind, origin))[:-1] + b',"keys":['
    payloads: list[str] = []
    batch: list[bytes] = []
    size = len(head) + 2
    for key in keys:
        enc = orjson.dumps(key)
        if len(head) + len(enc) + 2 > PAYLOAD_LIMIT:
            return [flush_payload(namespace, kind, origin)]
        if batch and size + len(enc) + 1 > PAYLOAD_LIMIT:
            payloads.append((head + b",".join(batch) + b"]}").decode())
            batch, size = [], len(head) + 2
        batch.append(enc)
        size += len(enc) + 1
    if batch:
        payloads.append((head + b",".join(batch) + b"]}").decode())
    if len(payloads) > MAX_PAYLOADS:
        return [flush_payload(namespace, kind, origin)]
    return payloads


def parse_payload(payload: str) -> tuple[str, str, list[str] | None] | None:
    """(namespace, kind, keys or None for "all") from a payload; None when it is not ours."""
    parsed = parse_message(payload)
    return None if parsed is None else parsed[:3]


def parse_message(payload: str) -> tuple[str, str, list[str] | None, str | None] | None:
    """(namespace, kind, keys or None for "all", origin) from a payload; None when not ours."""
    try:
        msg = orjson.loads(payload)
        ns, kind, origin = msg["ns"], msg["kind"], msg.get("origin")
        keys = None if msg.get("all") else msg["keys"]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(ns, str) or not isinstance(kind, str) or not isinstance(keys, (list, type(None))):
        return None
    if keys is not None:
        keys = [k for k in keys if isinstance(k, str)]
    return ns, kind, keys, origin if isinstance(origin, str) else None


async def publish(
    con: Conn,
    schema: str,
    namespace: str,
    kind: str,
    keys: Iterable[str] | None,
    *,
    origin: str | None = None,
) -> None:
    """Send the invalidation of *keys* (None: the whole kind) on *con*, inside its transaction.

    Call it in the same transaction as the write: PostgreSQL delivers the notification
    only after commit, and not at all after a rollback. With ``origin=db.instance_id``
    the writer's own L1 ignores the echo, so the writer must call
    ``service.cache.invalidate(kind, keys)`` itself after the transaction ends (commit
    or error). One round trip.
    """
    payloads = invalidation_payloads(namespace, kind, keys, origin=origin)
    await con.fetchval(NOTIFY_SQL, channel(schema), payloads)


class NearCache:
    """An LRU of ``(kind, key) -> value`` with per-entry expiry. Pure, no I/O, no locks.

    Values are returned as stored: store immutable (or encoded) values, since every
    caller gets the same object. ``available`` is False while invalidations cannot be
    received; then ``get`` misses and ``put`` refuses.
    """

    def __init__(self, max_entries: int, max_ttl: float, clock: Callable[[], float] = time.monotonic):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.available = False
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._data: OrderedDict[tuple[str, str], tuple[Any, float]] = OrderedDict()
        self._seq = 0
        # Recent invalidations: (kind, key) -> seq, bounded; older ones are summarised
        # by _forgotten_upto (a put with a token older than that is refused).
        self._recent: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._recent_max = max(1024, 4 * max_entries)
        self._forgotten_upto = 0
        self._kind_flushed: dict[str, int] = {}
        self._all_flushed = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, kind: str, key: str) -> tuple[bool, Any]:
        """(True, value) on a hit, (False, None) on a miss (or while unavailable)."""
        if not self.available:
            self.misses += 1
            return False, None
        item = self._data.get((kind, key))
        if item is None:
            self.misses += 1
            return False, None
        value, expires = item
        if expires <= self._clock():
            del self._data[(kind, key)]
            self.misses += 1
            return False, None
        self._data.move_to_end((kind, key))
        self.hits += 1
        return True, value

    def token(self) -> int:
        """Take before reading the value from the database; hand it to :meth:`put`."""
        return self._seq

    def put(self, kind: str, key: str, value: Any, ttl: float | None, token: int) -> bool:
        """Store *value* for at most min(*ttl*, max_ttl) seconds; False when refused.

        Refused while unavailable, and when *key* (or its kind, or everything) was
        invalidated after *token* was taken: the value may predate that write.
        """
        if not self.available or token < self._all_flushed or token < self._forgotten_upto:
            return False
        if token < self._kind_flushed.get(kind, 0):
            return False
        seen = self._recent.get((kind, key))
        if seen is not None and seen > token:
            return False
        life = self.max_ttl if ttl is None else min(ttl, self.max_ttl)
        if life <= 0:
            return False
        self._data[(kind, key)] = (value, self._clock() + life)
        self._data.move_to_end((kind, key))
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return True

    def invalidate(self, kind: str, keys: Iterable[str]) -> None:
        """Drop *keys* of *kind*, and refuse puts of them based on older reads."""
        self._seq += 1
        for key in keys:
            self._data.pop((kind, key), None)
            self._recent[(kind, key)] = self._seq
            self._recent.move_to_end((kind, key))
        while len(self._recent) > self._recent_max:
            _, seq = self._recent.popitem(last=False)
            self._forgotten_upto = max(self._forgotten_upto, seq)

    def invalidate_kind(self, kind: str) -> None:
        self._seq += 1
        self._kind_flushed[kind] = self._seq
        for k in [k for k in self._data if k[0] == kind]:
            del self._data[k]

    def flush(self) -> None:
        """Drop everything (the listener was lost or is back)."""
        self._seq += 1
        self._all_flushed = self._seq
        self._data.clear()
        self._recent.clear()


class NearCacheService:
    """The component: a :class:`NearCache` plus the connection that listens for invalidations.

    ``start()`` waits up to ``connect_timeout`` for the first LISTEN; if it fails the L1
    stays unavailable (every lookup misses) and the service keeps retrying in the
    background. A lost listener flushes the L1 at once; a ping every ``ping_interval``
    seconds catches a connection that died silently.
    """

    def __init__(self, db: UnifiedPostgreSQL, max_entries: int, max_ttl: float, ping_interval: float = 2.0):
        self.db = db
        self.namespace = db.namespace
        self.instance_id = db.instance_id
        self.channel = channel(db.schema)
        self.cache = NearCache(max_entries, max_ttl)
        self.ping_interval = ping_interval
        self.reconnects = 0
        self._con: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._ready = asyncio.Event()

    @property
    def available(self) -> bool:
        """True while invalidations are being received (the L1 may be used)."""
        con = self._con
        # The socket may be known closed a loop turn before the termination callback runs.
        return self.cache.available and con is not None and not con.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The listening backend's pid (tests and diagnostics)."""
        con = self._con
        return None if con is None or con.is_closed() else con.get_server_pid()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="unified_db-nearcache")
        if not await self.wait_available(self.db.settings.connect_timeout):
            log.warning("near-cache: listener not connected yet; L1 stays off until it is")

    async def close(self) -> None:
        self.cache.available = False
        self.cache.flush()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_connection()

    async def wait_available(self, timeout: float) -> bool:
        """Wait until the listener is connected (tests; after a reconnect)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self.available

    def _on_notify(self, _con: Any, _pid: int, _channel: str, payload: str) -> None:
        parsed = parse_message(payload)
        if parsed is None or parsed[0] != self.namespace:
            return
        _, kind, keys, origin = parsed
        if origin == self.instance_id:
            return  # our own write: already dropped here when it finished
        if keys is None:
            self.cache.invalidate_kind(kind)
        else:
            self.cache.invalidate(kind, keys)

    def _on_terminated(self, _con: Any) -> None:
        self._mark_lost()

    def _mark_lost(self) -> None:
        # Flushed first, synchronously: from here on nothing stale can be served.
        self.cache.available = False
        self.cache.flush()
        self._ready.clear()
        self._lost.set()

    async def _drop_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None and not con.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(con.close(), 2)
            if not con.is_closed():
                con.terminate()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                con = await self.db.connect_direct()
                self._con = con
                self._lost.clear()
                con.add_termination_listener(self._on_terminated)
                await con.add_listener(self.channel, self._on_notify)
                # Anything cached before this LISTEN may have missed an invalidation.
                self.cache.flush()
                self.cache.available = True
                self._ready.set()
                delay = 0.05
                while not self._lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._lost.wait(), self.ping_interval)
                    if self._lost.is_set():
                        break
                    await con.fetchval("SELECT 1", timeout=max(1.0, self.ping_interval))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the listener means "lost": retry
                log.warning("near-cache: listener lost (%s: %s); L1 flushed", exc.__class__.__name__, exc)
            self._mark_lost()
            await self._drop_connection()
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def factory(db: UnifiedPostgreSQL) -> NearCacheService | None:
    """The base's component factory: a service when ``cache_local_size`` > 0, else None."""
    size = db.settings.cache_local_size
    if size <= 0:
        return None
    return NearCacheService(db, size, db.settings.cache_local_ttl)

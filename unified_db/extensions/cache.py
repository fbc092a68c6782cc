"""CacheMixin: a Redis-style key/value cache in one PostgreSQL table.

Entries live in ``cache_entries`` (UNLOGGED by default), one row per (namespace, key).
Expiry is decided by the database clock on every read, so an expired entry is never
returned whether or not the sweeper has removed it. Values are orjson JSON, or raw
bytes. An optional per-process near-cache (``unified_db.nearcache``) sits in front,
kept coherent by NOTIFY messages each write sends in its own statement.
See docs/cache.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import BaseModel

from .. import nearcache
from .. import stats as st
from ..core import operation
from ..errors import InvalidInputError, NotFoundError, UnifiedDBError
from .cache_logic import (
    check_batch_size,
    check_delta,
    check_key,
    check_keys,
    check_tags,
    decode_value,
    encode_mapping,
    encode_value,
    eviction_excess,
    hit_ratio,
    ttl_seconds,
)

if TYPE_CHECKING:
    from ..core import UnifiedPostgreSQL
    from ._protocol import DBProtocol as _Base
else:
    _Base = object

log = logging.getLogger("unified_db.cache")

KIND = "cache"  # this feature's kind in the near-cache
TTL = int | float | timedelta | None
Loader = Callable[[], Any] | Callable[[], Awaitable[Any]]

# Reads compare expires_at with the database clock: an expired entry is never returned,
# swept or not. Every write sends its near-cache invalidations (the last parameter, a
# text[] that is empty when publishing is off) in the same statement, so they are
# delivered only after commit.

GET_SQL = """SELECT value, is_bytes FROM __schema__.cache_entries
 WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > now())"""

GET_WITH_TTL_SQL = """SELECT value, is_bytes, extract(epoch FROM expires_at - now())::float8 AS ttl
  FROM __schema__.cache_entries WHERE namespace = $1
   AND key = $2 AND (expires_at IS NULL OR expires_at > now())"""

GET_MANY_SQL = """SELECT key, value, is_bytes FROM __schema__.cache_entries
 WHERE namespace = $1 AND key = ANY($2::text[]) AND (expires_at IS NULL OR expires_at > now())"""

SET_SQL = """WITH w AS (
  INSERT INTO __schema__.cache_entries (namespace, key, value, is_bytes, tags, expires_at, updated_at)
  VALUES ($1, $2, $3, $4, $5::text[], now() + make_interval(secs => $6::float8), now())
  ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value,
   is_bytes = EXCLUDED.is_bytes, tags = EXCLUDED.tags, expires_at = EXCLUDED.expires_at,
   updated_at = EXCLUDED.updated_at RETURNING 1)
SELECT (SELECT count(*) FROM w), (SELECT count(pg_notify($7, p)::text) FROM unnest($8::text[]) AS p)"""

SET_MANY_SQL = """WITH w AS (
  INSERT INTO __schema__.cache_entries (namespace, key, value, is_bytes, tags, expires_at, updated_at)
  SELECT $1, u.k, u.v, u.b, $5::text[], now() + make_interval(secs => $6::float8), now()
    FROM unnest($2::text[], $3::bytea[], $4::bool[]) AS u(k, v, b)
  ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value,
   is_bytes = EXCLUDED.is_bytes, tags = EXCLUDED.tags, expires_at = EXCLUDED.expires_at,
   updated_at = EXCLUDED.updated_at RETURNING 1)
SELECT (SELECT count(*) FROM w), (SELECT count(pg_notify($7, p)::text) FROM unnest($8::text[]) AS p)"""

DELETE_SQL = """WITH d AS (
  DELETE FROM __schema__.cache_entries WHERE namespace = $1 AND key = ANY($2::text[])
  RETURNING expires_at)
SELECT (SELECT count(*) FROM d WHERE (expires_at IS NULL OR expires_at > now())),
       (SELECT count(pg_notify($3, p)::text) FROM unnest($4::text[]) AS p)"""

EXISTS_SQL = """SELECT EXISTS (SELECT 1 FROM __schema__.cache_entries
 WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > now()))"""

TOUCH_SQL = """WITH u AS (
  UPDATE __schema__.cache_entries SET expires_at = now() + make_interval(secs => $3::float8)
   WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > now()) RETURNING 1)
SELECT (SELECT count(*) FROM u), (SELECT count(pg_notify($4, p)::text) FROM unnest($5::text[]) AS p)"""

# Only a live entry that has a TTL changes (Redis PERSIST answers 0 otherwise).
PERSIST_SQL = """WITH u AS (
  UPDATE __schema__.cache_entries SET expires_at = NULL
   WHERE namespace = $1 AND key = $2 AND expires_at > now() RETURNING 1)
SELECT (SELECT count(*) FROM u), (SELECT count(pg_notify($3, p)::text) FROM unnest($4::text[]) AS p)"""

TTL_SQL = """SELECT extract(epoch FROM expires_at - now())::float8 AS ttl
  FROM __schema__.cache_entries WHERE namespace = $1 AND key = $2
   AND (expires_at IS NULL OR expires_at > now())"""

# A live entry is incremented in place and keeps its TTL and tags (as Redis INCR does);
# a missing or expired one starts at delta with the given TTL. A bytes value gives NULL,
# which the NOT NULL constraint turns into an error the method reports.
INCR_SQL = """WITH w AS (
  INSERT INTO __schema__.cache_entries AS c (namespace, key, value, is_bytes, expires_at, updated_at)
  VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'), false,
          now() + make_interval(secs => $4::float8), now())
  ON CONFLICT (namespace, key) DO UPDATE SET
    value = CASE
      WHEN c.expires_at IS NOT NULL AND c.expires_at <= now() THEN EXCLUDED.value
      WHEN c.is_bytes THEN NULL
      ELSE convert_to((convert_from(c.value, 'UTF8')::bigint + $3::bigint)::text, 'UTF8') END,
    tags = CASE WHEN c.expires_at IS NOT NULL AND c.expires_at <= now() THEN '{}' ELSE c.tags END,
    expires_at = CASE WHEN c.expires_at IS NOT NULL AND c.expires_at <= now()
                      THEN EXCLUDED.expires_at ELSE c.expires_at END,
    updated_at = now()
  RETURNING convert_from(value, 'UTF8')::bigint AS n)
SELECT (SELECT n FROM w), (SELECT count(pg_notify($5, p)::text) FROM unnest($6::text[]) AS p)"""

TAGS_ANY_SQL = """SELECT key, value, is_bytes FROM __schema__.cache_entries
 WHERE namespace = $1 AND cardinality(tags) > 0 AND tags && $2::text[]
   AND (expires_at IS NULL OR expires_at > now())"""

TAGS_ALL_SQL = """SELECT key, value, is_bytes FROM __schema__.cache_entries
 WHERE namespace = $1 AND cardinality(tags) > 0 AND tags @> $2::text[]
   AND (expires_at IS NULL OR expires_at > now())"""

INVALIDATE_TAGS_SQL = """DELETE FROM __schema__.cache_entries
 WHERE namespace = $1 AND cardinality(tags) > 0 AND tags && $2::text[]
 RETURNING key, (expires_at IS NULL OR expires_at > now()) AS live"""

CLEAR_SQL = """WITH d AS (DELETE FROM __schema__.cache_entries WHERE namespace = $1 RETURNING expires_at)
SELECT (SELECT count(*) FROM d WHERE (expires_at IS NULL OR expires_at > now())),
       (SELECT count(pg_notify($2, p)::text) FROM unnest($3::text[]) AS p)"""

LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# Expired rows of one namespace, a batch at a time; SKIP LOCKED so concurrent sweepers
# share the work instead of queueing, and plain readers never wait (they take no locks).
SWEEP_BATCH_SQL = """WITH doomed AS (
  SELECT ctid FROM __schema__.cache_entries
   WHERE namespace = $1 AND expires_at <= now()
   LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM __schema__.cache_entries
 WHERE namespace = $1 AND ctid = ANY(ARRAY(SELECT ctid FROM doomed))"""

COUNT_EXPIRED_SQL = """SELECT count(*) FROM __schema__.cache_entries
 WHERE namespace = $1 AND expires_at <= now()"""

TOTALS_SQL = """SELECT count(*) AS entries, coalesce(sum(size_bytes), 0)::bigint AS bytes
  FROM __schema__.cache_entries WHERE namespace = $1"""

# The least recently written entries first, until $3 entries and $4 bytes are gone.
EVICT_BATCH_SQL = """WITH candidates AS (
  SELECT ctid AS id, key, size_bytes, updated_at FROM __schema__.cache_entries
   WHERE namespace = $1 ORDER BY updated_at, key LIMIT $2 FOR UPDATE SKIP LOCKED
), ranked AS (
  SELECT id, row_number() OVER w AS rn, sum(size_bytes) OVER w - size_bytes AS before
    FROM candidates WINDOW w AS (ORDER BY updated_at, key)
)
DELETE FROM __schema__.cache_entries
 WHERE namespace = $1 AND ctid = ANY(ARRAY(SELECT id FROM ranked WHERE rn <= $3 OR before < $4))
 RETURNING size_bytes"""

COUNT_EVICTABLE_SQL = """SELECT count(*) FROM (
  SELECT row_number() OVER w AS rn, sum(size_bytes) OVER w - size_bytes AS before
    FROM __schema__.cache_entries WHERE namespace = $1 WINDOW w AS (ORDER BY updated_at, key)
) r WHERE rn <= $2 OR before < $3"""

INFO_SQL = """SELECT count(*) FILTER (WHERE (expires_at IS NULL OR expires_at > now())) AS entries,
       count(*) FILTER (WHERE expires_at <= now()) AS expired_pending,
       coalesce(sum(size_bytes) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0)::bigint AS bytes,
       (SELECT relpersistence = 'p' FROM pg_class
         WHERE oid = to_regclass('__schema__.cache_entries')) AS durable
  FROM __schema__.cache_entries WHERE namespace = $1"""

PERSISTENCE_SQL = """SELECT relpersistence = 'p' FROM pg_class
 WHERE oid = to_regclass('__schema__.cache_entries')"""
# ALTER TABLE ... SET LOGGED / UNLOGGED in a SECURITY DEFINER function of the schema owner
# (0008_privileged.sql), so a role without DDL rights may switch it too; true if it changed.
SET_DURABLE_SQL = "SELECT __schema__.cache_set_durable($1)"

_NOT_AN_INTEGER = {"22P02", "23502", "22021"}
_OUT_OF_RANGE = "22003"


def _decode_rows(rows: list[Any]) -> dict[str, Any]:
    """{key: value} of (key, value, is_bytes) rows; inlined decoding, since batches are hot."""
    loads = orjson.loads
    return {key: value if is_bytes else loads(value) for key, value, is_bytes in rows}


class CacheInfo(BaseModel):
    """What ``cache_info()`` reports for this namespace and this process."""

    namespace: str
    entries: int
    expired_pending: int
    bytes: int
    durable: bool
    hits: int
    misses: int
    hit_ratio: float | None
    local_enabled: bool
    local_available: bool
    local_entries: int
    local_max_entries: int
    local_hits: int
    local_misses: int
    local_hit_ratio: float | None


def eviction_check_every(max_entries: int | None, max_bytes: int | None) -> int | None:
    """Entries written by this process between two checks of the size bounds (None: no bounds).

    A tenth of ``max_entries`` (100 to 10,000), so the bound is overshot by about 10 % per
    writing process at most, and the count it costs is paid once per many writes.
    """
    if max_entries is None and max_bytes is None:
        return None
    if max_entries is None:
        return 1000
    return max(100, min(max_entries // 10, 10_000))


class CacheRuntime:
    """The cache's component: single flight, write-triggered eviction, the sweeper, durability.

    Always on (the single-flight map is needed by ``cache_get_or_set``); the sweeper task
    runs only when ``cache_sweep_interval`` > 0, eviction only with size bounds.
    """

    def __init__(self, db: UnifiedPostgreSQL):
        self.db = db
        self.flights: dict[str, asyncio.Future[Any]] = {}
        self.sweeps = 0
        self.evictions = 0
        self._task: asyncio.Task[None] | None = None
        self._evict_every = eviction_check_every(db.settings.cache_max_entries, db.settings.cache_max_bytes)
        self._written = 0
        self._evicting: asyncio.Task[None] | None = None

    def note_writes(self, n: int) -> None:
        """Count entries written; start one background eviction pass every so many."""
        if self._evict_every is None:
            return
        self._written += n
        if self._written >= self._evict_every and (self._evicting is None or self._evicting.done()):
            self._written = 0
            self._evicting = asyncio.create_task(self._evict(), name="cache-evict")

    async def _evict(self) -> None:
        try:
            await self.db._cache_evict(10_000, dry_run=False)  # type: ignore[attr-defined]
            self.evictions += 1
        except UnifiedDBError as exc:  # the next pass (or the cleanup command) catches up
            log.warning("cache eviction: %s", exc)

    async def idle(self) -> None:
        """Wait for a running eviction pass (tests)."""
        if self._evicting is not None:
            await self._evicting

    async def start(self) -> None:
        s = self.db.settings
        if s.cache_durable:
            await self._ensure_logged()
        if s.cache_sweep_interval > 0:
            self._task = asyncio.create_task(self._sweep_loop(s.cache_sweep_interval), name="cache-sweeper")

    async def close(self) -> None:
        for task in (self._task, self._evicting):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._evicting = None

    async def _ensure_logged(self) -> None:
        if not await self.db._fetchval(PERSISTENCE_SQL):
            log.warning("cache_durable=True: converting cache_entries to a logged table (one rewrite)")
            await self.db._execute(SET_DURABLE_SQL, True)

    async def _sweep_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.db._cleanup_cache(dry_run=False, batch_size=10_000)  # type: ignore[attr-defined]
                self.sweeps += 1
            except UnifiedDBError as exc:  # keep sweeping; the next run may succeed
                log.warning("cache sweeper: %s", exc)


def _runtime_factory(db: UnifiedPostgreSQL) -> CacheRuntime:
    return CacheRuntime(db)


class CacheMixin(_Base):
    """Redis-style cache methods: ``cache_*``. See docs/cache.md."""

    component_factories: ClassVar[dict[str, Any]] = {
        "cache": _runtime_factory,
        "nearcache": nearcache.factory,
    }
    cleanup_steps: ClassVar[tuple[str, ...]] = ("cache",)

    # ------------------------------------------------------------------ internals

    def _cache_ttl(self, ttl: object, name: str = "ttl") -> float | None:
        return ttl_seconds(ttl, self.settings.cache_default_ttl, name)

    def _cache_publishing(self) -> bool:
        publish = self.settings.cache_publish_invalidations
        return self.settings.cache_local_size > 0 if publish is None else publish

    def _cache_payloads(self, keys: Iterable[str] | None) -> list[str]:
        """NOTIFY payloads for a write of *keys* (None: all), or [] when not publishing."""
        if not self._cache_publishing():
            return []
        return nearcache.invalidation_payloads(self.namespace, KIND, keys, origin=self.instance_id)

    def _cache_channel(self) -> str:
        return nearcache.channel(self.schema)

    async def _cache_write(self, query: str, *args: Any, keys: list[str] | None) -> Any:
        """Run a one-statement write whose last two parameters are the NOTIFY channel and payloads.

        This process's L1 copies are dropped after the statement, whatever its outcome (a
        write may have committed even when its answer was lost), since this process
        ignores the echo of its own notifications.
        """
        try:
            return await self._fetchval(
                query, *args, self._cache_channel(), self._cache_payloads(keys), write=True
            )
        finally:
            self._cache_local_drop(keys)

    def _cache_note_writes(self, n: int) -> None:
        runtime: CacheRuntime | None = self._component("cache")
        if runtime is not None:
            runtime.note_writes(n)

    def _cache_local_drop(self, keys: Iterable[str] | None) -> None:
        """Drop this process's L1 copies at once (the NOTIFY echo comes a little later)."""
        svc = self._component("nearcache")
        if svc is None:
            return
        if keys is None:
            svc.cache.invalidate_kind(KIND)
        else:
            svc.cache.invalidate(KIND, keys)

    async def _cache_lookup(self, key: str) -> tuple[bool, Any]:
        """(found, value) through L1 then the table; counts hits and misses."""
        stats = self._stats
        svc = self._component("nearcache")
        if svc is not None and svc.available:
            hit, item = svc.cache.get(KIND, key)
            if hit:
                stats.incr(st.LOCAL_HITS)
                stats.incr(st.CACHE_HITS)
                return True, decode_value(*item)
            stats.incr(st.LOCAL_MISSES)
            token = svc.cache.token()
            row = await self._fetchrow(GET_WITH_TTL_SQL, self.namespace, key)
            if row is None:
                stats.incr(st.CACHE_MISSES)
                return False, None
            svc.cache.put(KIND, key, (row["value"], row["is_bytes"]), row["ttl"], token)
        else:
            row = await self._fetchrow(GET_SQL, self.namespace, key)
            if row is None:
                stats.incr(st.CACHE_MISSES)
                return False, None
        stats.incr(st.CACHE_HITS)
        return True, decode_value(row["value"], row["is_bytes"])

    # ------------------------------------------------------------------ single keys

    @operation("cache_set")
    async def cache_set(self, key: str, value: Any, ttl: TTL = None, *, tags: Iterable[str] = ()) -> None:
        """Store *value* under *key*, replacing any value, TTL and tags it had.

        ``ttl``: seconds or a timedelta; None uses ``cache_default_ttl`` (None: never
        expires). ``tags``: names for ``cache_get_by_tags`` / ``cache_invalidate_tags``.
        Raises InvalidInputError for a bad key, ttl, tag or an unencodable or too large
        value (nothing written). One round trip.
        """
        key = check_key(key)
        seconds = self._cache_ttl(ttl)
        tag_list = check_tags(tags)
        data, is_bytes = encode_value(value, self.settings.cache_max_value_bytes)
        await self._cache_write(SET_SQL, self.namespace, key, data, is_bytes, tag_list, seconds, keys=[key])
        self._cache_note_writes(1)

    @operation("cache_get")
    async def cache_get(self, key: str, default: Any = None) -> Any:
        """The value under *key*, or *default* when it is missing or expired.

        Served from the near-cache when it is on and holds the key (no round trip);
        otherwise one round trip. Raises InvalidInputError for a bad key.
        """
        key = check_key(key)
        found, value = await self._cache_lookup(key)
        return value if found else default

    @operation("cache_delete")
    async def cache_delete(self, key: str) -> bool:
        """Remove *key*; True when a live entry was removed.

        Raises InvalidInputError for a bad key. One round trip.
        """
        key = check_key(key)
        return bool(await self._cache_write(DELETE_SQL, self.namespace, [key], keys=[key]))

    @operation("cache_exists")
    async def cache_exists(self, key: str) -> bool:
        """True when *key* holds a live (unexpired) entry.

        Raises InvalidInputError for a bad key. One round trip.
        """
        key = check_key(key)
        return bool(await self._fetchval(EXISTS_SQL, self.namespace, key))

    # ------------------------------------------------------------------ batches

    @operation("cache_get_many")
    async def cache_get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """{key: value} of the live entries among *keys*; missing and expired keys are absent.

        One round trip whatever the number of keys (none for an empty list). Raises
        InvalidInputError when *keys* is a bare str or holds a bad key.
        """
        wanted = check_keys(keys)
        if not wanted:
            return {}
        rows = await self._fetch(GET_MANY_SQL, self.namespace, wanted)
        self._stats.incr(st.CACHE_HITS, len(rows))
        self._stats.incr(st.CACHE_MISSES, len(wanted) - len(rows))
        return _decode_rows(rows)

    @operation("cache_set_many")
    async def cache_set_many(
        self, mapping: Mapping[str, Any], ttl: TTL = None, *, tags: Iterable[str] = ()
    ) -> int:
        """Store every key -> value of *mapping* with one TTL and one set of tags; returns the count.

        All or nothing: one statement, one round trip. Raises InvalidInputError for any
        bad key, value, ttl or tag, before anything is written.
        """
        keys, values, flags = encode_mapping(mapping, self.settings.cache_max_value_bytes)
        seconds = self._cache_ttl(ttl)
        tag_list = check_tags(tags)
        if not keys:
            return 0
        n = await self._cache_write(
            SET_MANY_SQL, self.namespace, keys, values, flags, tag_list, seconds, keys=keys
        )
        self._cache_note_writes(len(keys))
        return int(n)

    @operation("cache_delete_many")
    async def cache_delete_many(self, keys: Iterable[str]) -> int:
        """Remove *keys*; returns how many live entries were removed.

        Raises InvalidInputError when *keys* is a bare str or holds a bad key (nothing
        removed). One round trip (none for an empty list).
        """
        doomed = check_keys(keys)
        if not doomed:
            return 0
        return int(await self._cache_write(DELETE_SQL, self.namespace, doomed, keys=doomed))

    # ------------------------------------------------------------------ TTL

    @operation("cache_touch")
    async def cache_touch(self, key: str, ttl: int | float | timedelta) -> bool:
        """Give a live *key* a new TTL without rewriting its value; False when it is missing.

        ``ttl`` is required (use ``cache_persist`` to remove a TTL). Raises
        InvalidInputError for a bad key or ttl. One round trip.
        """
        key = check_key(key)
        if ttl is None:
            raise InvalidInputError("ttl must be seconds or a timedelta; use cache_persist() to remove a TTL")
        seconds = ttl_seconds(ttl)
        return bool(await self._cache_write(TOUCH_SQL, self.namespace, key, seconds, keys=[key]))

    @operation("cache_ttl")
    async def cache_ttl(self, key: str) -> float | None:
        """Seconds left before *key* expires; None when it never expires.

        Raises NotFoundError when the key is missing or expired (Redis answers -2 there).
        One round trip.
        """
        key = check_key(key)
        row = await self._fetchrow(TTL_SQL, self.namespace, key)
        if row is None:
            raise NotFoundError(f"cache key {key!r} does not exist in namespace {self.namespace!r}")
        ttl = row["ttl"]
        return None if ttl is None else max(ttl, 0.0)

    @operation("cache_persist")
    async def cache_persist(self, key: str) -> bool:
        """Remove the TTL of a live *key*; True when it had one (as Redis PERSIST).

        Raises InvalidInputError for a bad key. One round trip.
        """
        key = check_key(key)
        return bool(await self._cache_write(PERSIST_SQL, self.namespace, key, keys=[key]))

    # ------------------------------------------------------------------ counters

    @operation("cache_incr")
    async def cache_incr(self, key: str, delta: int = 1, *, ttl: TTL = None) -> int:
        """Add *delta* to the integer under *key* atomically and return the new value.

        A missing or expired key starts at *delta* with ``ttl`` (None: the default TTL);
        a live key keeps its TTL, as Redis INCR does. Raises InvalidInputError when the
        stored value is not an integer or the result leaves the signed 64-bit range
        (nothing changes). One round trip.
        """
        key = check_key(key)
        delta = check_delta(delta)
        seconds = self._cache_ttl(ttl)
        try:
            n = await self._cache_write(INCR_SQL, self.namespace, key, delta, seconds, keys=[key])
        except UnifiedDBError as exc:
            code = getattr(exc.__cause__, "sqlstate", None)
            if code in _NOT_AN_INTEGER:
                raise InvalidInputError(f"cache_incr: the value under {key!r} is not an integer") from exc
            if code == _OUT_OF_RANGE:
                raise InvalidInputError(
                    f"cache_incr: {key!r} + {delta} leaves the signed 64-bit integer range"
                ) from exc
            raise
        return int(n)

    # ------------------------------------------------------------------ tags

    @operation("cache_get_by_tags")
    async def cache_get_by_tags(self, tags: Iterable[str], *, match_all: bool = False) -> dict[str, Any]:
        """{key: value} of live entries carrying any of *tags* (all of them with ``match_all``).

        Served by the GIN index on tags. Raises InvalidInputError when *tags* is empty, a
        bare str, or holds a bad tag. One round trip.
        """
        wanted = check_tags(tags, required=True)
        rows = await self._fetch(TAGS_ALL_SQL if match_all else TAGS_ANY_SQL, self.namespace, wanted)
        return _decode_rows(rows)

    @operation("cache_invalidate_tags")
    async def cache_invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of *tags*; returns how many live entries went.

        One round trip; two (in one transaction) when invalidations are published for
        the near-cache, since the removed keys are known only after the delete. Raises
        InvalidInputError when *tags* is empty, a bare str, or holds a bad tag.
        """
        doomed = check_tags(tags, required=True)
        try:
            if not self._cache_publishing():
                rows = await self._fetch(INVALIDATE_TAGS_SQL, self.namespace, doomed, write=True)
            else:
                async with self._transaction() as con:
                    rows = await con.fetch(INVALIDATE_TAGS_SQL, self.namespace, doomed)
                    keys = [r["key"] for r in rows]
                    if keys:
                        await con.fetchval(NOTIFY_SQL, self._cache_channel(), self._cache_payloads(keys))
        except BaseException:
            self._cache_local_drop(None)  # which keys went is unknown: drop them all
            raise
        self._cache_local_drop([r["key"] for r in rows])
        return sum(1 for r in rows if r["live"])

    # ------------------------------------------------------------------ get_or_set

    @operation("cache_get_or_set")
    async def cache_get_or_set(
        self, key: str, loader: Loader, ttl: TTL = None, *, tags: Iterable[str] = ()
    ) -> Any:
        """The value under *key*; on a miss, ``loader()`` (sync or async) is called once and stored.

        Concurrent misses of one key run the loader once: callers in this process wait
        for the first one (single flight), and processes serialise on a
        transaction-scoped advisory lock (safe behind PgBouncer), re-reading the key once
        they hold it. The lock's transaction keeps one pooled connection for as long as
        the loader runs. The returned value is the stored one, decoded (what later
        ``cache_get`` calls return). Raises InvalidInputError for bad arguments or a value
        the loader returned that cannot be stored; the loader's own exceptions propagate
        and nothing is stored. One round trip on a hit, four on a miss.
        """
        key = check_key(key)
        if not callable(loader):
            raise InvalidInputError(f"loader must be a callable, got {type(loader).__name__}")
        seconds = self._cache_ttl(ttl)
        tag_list = check_tags(tags)
        found, value = await self._cache_lookup(key)
        if found:
            return value
        runtime: CacheRuntime | None = self._component("cache")
        if runtime is None:  # not open: let the load raise PoolClosedError
            return await self._cache_load(key, loader, seconds, tag_list)
        while True:
            flight = runtime.flights.get(key)
            if flight is None:
                break
            try:
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                if flight.cancelled():  # the leader was cancelled, not us: take over
                    continue
                raise
        flight = asyncio.get_running_loop().create_future()
        runtime.flights[key] = flight
        try:
            value = await self._cache_load(key, loader, seconds, tag_list)
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: followers may be none
            raise
        else:
            flight.set_result(value)
        finally:
            runtime.flights.pop(key, None)
        return value

    async def _cache_load(self, key: str, loader: Loader, seconds: float | None, tags: list[str]) -> Any:
        try:
            value = await self._cache_load_locked(key, loader, seconds, tags)
        finally:
            self._cache_local_drop((key,))
        self._cache_note_writes(1)
        return value

    async def _cache_load_locked(
        self, key: str, loader: Loader, seconds: float | None, tags: list[str]
    ) -> Any:
        async with self._transaction() as con:
            await con.execute(LOCK_SQL, f"unified_db:cache:{self.schema}:{self.namespace}\x1f{key}")
            row = await con.fetchrow(GET_SQL, self.namespace, key)
            if row is not None:  # another process loaded it while we waited for the lock
                return decode_value(row["value"], row["is_bytes"])
            result = loader()
            if inspect.isawaitable(result):
                result = await result
            data, is_bytes = encode_value(result, self.settings.cache_max_value_bytes, "loader result")
            await con.fetchrow(
                SET_SQL,
                self.namespace,
                key,
                data,
                is_bytes,
                tags,
                seconds,
                self._cache_channel(),
                self._cache_payloads((key,)),
            )
        return decode_value(data, is_bytes)

    # ------------------------------------------------------------------ namespace-wide

    @operation("cache_clear")
    async def cache_clear(self) -> int:
        """Remove every entry of this namespace (only); returns how many live entries went.

        One round trip; cost grows with the namespace's size.
        """
        return int(await self._cache_write(CLEAR_SQL, self.namespace, keys=None))

    @operation("cache_cleanup_expired")
    async def cache_cleanup_expired(self, batch_size: int = 10_000) -> int:
        """Delete this namespace's expired entries, *batch_size* rows per statement; returns the count.

        Batches lock with SKIP LOCKED, so concurrent sweepers share the work and readers
        never wait. Raises InvalidInputError when *batch_size* is not an int >= 1. One
        round trip per batch.
        """
        batch_size = check_batch_size(batch_size)
        return await self._cache_sweep(batch_size)

    async def _cache_sweep(self, batch_size: int) -> int:
        total = 0
        while True:
            status = await self._execute(SWEEP_BATCH_SQL, self.namespace, batch_size)
            n = int(status.split()[-1])
            total += n
            if n < batch_size:
                return total

    async def _cache_evict(self, batch_size: int, *, dry_run: bool) -> int:
        """Remove the least recently written entries until the size bounds hold."""
        max_entries, max_bytes = self.settings.cache_max_entries, self.settings.cache_max_bytes
        if max_entries is None and max_bytes is None:
            return 0
        totals = await self._fetchrow(TOTALS_SQL, self.namespace)
        assert totals is not None
        over_entries, over_bytes = eviction_excess(totals["entries"], totals["bytes"], max_entries, max_bytes)
        if dry_run:
            if not over_entries and not over_bytes:
                return 0
            return int(await self._fetchval(COUNT_EVICTABLE_SQL, self.namespace, over_entries, over_bytes))
        total = 0
        while over_entries > 0 or over_bytes > 0:
            rows = await self._fetch(
                EVICT_BATCH_SQL, self.namespace, batch_size, over_entries, over_bytes, write=True
            )
            if not rows:
                break
            total += len(rows)
            over_entries -= len(rows)
            over_bytes -= sum(r["size_bytes"] for r in rows)
        return total

    async def _cleanup_cache(self, *, dry_run: bool, batch_size: int) -> int:
        """Maintenance step "cache": expired entries, then the size bounds; returns the rows deleted."""
        batch_size = check_batch_size(batch_size)
        if dry_run:
            expired = int(await self._fetchval(COUNT_EXPIRED_SQL, self.namespace))
            return expired + await self._cache_evict(batch_size, dry_run=True)
        swept = await self._cache_sweep(batch_size)
        return swept + await self._cache_evict(batch_size, dry_run=False)

    @operation("cache_info")
    async def cache_info(self) -> CacheInfo:
        """Entries, expired-but-unswept entries, bytes and durability of this namespace, plus
        this process's hit/miss counters and near-cache figures.

        One round trip that scans the namespace's entries: a diagnostic, not a hot path.
        """
        row = await self._fetchrow(INFO_SQL, self.namespace)
        assert row is not None
        counters = self._stats.counters
        hits, misses = counters.get(st.CACHE_HITS, 0), counters.get(st.CACHE_MISSES, 0)
        lhits, lmisses = counters.get(st.LOCAL_HITS, 0), counters.get(st.LOCAL_MISSES, 0)
        svc = self._component("nearcache")
        return CacheInfo(
            namespace=self.namespace,
            entries=row["entries"],
            expired_pending=row["expired_pending"],
            bytes=row["bytes"],
            durable=bool(row["durable"]),
            hits=hits,
            misses=misses,
            hit_ratio=hit_ratio(hits, misses),
            local_enabled=svc is not None,
            local_available=bool(svc is not None and svc.available),
            local_entries=len(svc.cache) if svc is not None else 0,
            local_max_entries=self.settings.cache_local_size,
            local_hits=lhits,
            local_misses=lmisses,
            local_hit_ratio=hit_ratio(lhits, lmisses),
        )

    @operation("cache_set_durable")
    async def cache_set_durable(self, durable: bool) -> bool:
        """Make the cache table logged (crash-safe, replicated) or UNLOGGED (fast); returns *durable*.

        Affects every namespace and process: it is one table. Rewrites the table under an
        ACCESS EXCLUSIVE lock (readers and writers wait until it is done); nothing when it
        already is. Runs through the schema owner's ``cache_set_durable()`` function, so the
        app role may call it. One round trip.
        """
        if not isinstance(durable, bool):
            raise InvalidInputError(f"durable must be True or False, got {durable!r}")
        await self._execute(SET_DURABLE_SQL, durable)
        return durable


NOTIFY_SQL = nearcache.NOTIFY_SQL

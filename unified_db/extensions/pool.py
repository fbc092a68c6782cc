"""PoolDiagnosticsMixin: pool figures, this application's backends, live resizing,
recommendations, and the stats flush the dashboard reads from other processes.

The figures that need no I/O come from the base (``_pool_figures``, the stats); the rest
are single queries over pg_stat_activity and pg_stat_user_tables. A backend belongs to
"this application" when it is connected to the same database with the same
``application_name`` setting. The pure logic lives in ``_pool_logic``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..core import operation
from ..errors import UnifiedDBError
from ..stats import percentile
from ._pool_logic import (
    CACHE_TABLE,
    EXPIRED_COUNT_CAP,
    SESSION_TABLE,
    WATCHED_TABLES,
    WORKFLOW_TABLE,
    BackendSummary,
    ConnectionDiagnostic,
    ExtendedPoolStats,
    OperationFigures,
    PoolStats,
    Recommendation,
    ServerFigures,
    TableFigures,
    check_pool_sizes,
    check_seconds,
    counters_of,
    pool_stats,
    recommend,
    summarize_backends,
)

if TYPE_CHECKING:
    from ._protocol import DBProtocol as _Base
else:
    _Base = object

log = logging.getLogger("unified_db")

__all__ = [
    "BackendSummary",
    "ConnectionDiagnostic",
    "ExtendedPoolStats",
    "OperationFigures",
    "PoolDiagnosticsMixin",
    "PoolStats",
    "Recommendation",
    "StatsFlusher",
    "TableFigures",
]

BACKENDS_SQL = """
SELECT a.pid, a.state,
       CASE WHEN a.wait_event IS NULL THEN NULL
            ELSE a.wait_event_type || ':' || a.wait_event END AS wait_event,
       extract(epoch FROM clock_timestamp() - a.query_start)::float8 AS query_age_s,
       extract(epoch FROM clock_timestamp() - a.backend_start)::float8 AS backend_age_s,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS transaction_age_s,
       extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS state_age_s,
       host(a.client_addr) AS client_addr, s.ssl
  FROM pg_stat_activity a
  LEFT JOIN pg_stat_ssl s ON s.pid = a.pid
 WHERE a.datname = current_database() AND a.application_name = $1
   AND a.backend_type = 'client backend'
 ORDER BY a.backend_start, a.pid
"""

# The subquery terminates each matching backend once; count the ones that were ended.
TERMINATE_IDLE_SQL = """
SELECT count(*)::int FROM (
  SELECT pg_terminate_backend(pid) AS ended
    FROM pg_stat_activity
   WHERE datname = current_database() AND application_name = $1
     AND backend_type = 'client backend' AND state = 'idle'
     AND state_change <= clock_timestamp() - make_interval(secs => $2)
     AND pid <> pg_backend_pid()
) t WHERE ended
"""

SERVER_SQL = """
SELECT current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections
"""

# Other features' tables, by name: to_regclass gives NULL for a missing one.
TABLES_SQL = """
SELECT t.name, c.oid IS NOT NULL AS present,
       coalesce(s.n_live_tup, 0)::bigint AS live_rows,
       coalesce(s.n_dead_tup, 0)::bigint AS dead_rows,
       coalesce(pg_total_relation_size(c.oid), 0)::bigint AS total_bytes
  FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord)
  LEFT JOIN pg_class c ON c.oid = to_regclass('__schema__.' || t.name)
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 ORDER BY t.ord
"""

# The rows `unified-db cleanup` would delete by age, with the same predicate as each
# feature's cleanup step (cache.py, sessions.py, agents.py), counted up to a cap ($2) so a
# large backlog costs a bounded scan. $3: workflow_retention_days in seconds.
EXPIRED_SQL = {
    CACHE_TABLE: """
        SELECT count(*) FROM (SELECT 1 FROM __schema__.cache_entries
         WHERE namespace = $1 AND expires_at <= now() LIMIT $2) x""",
    SESSION_TABLE: """
        SELECT count(*) FROM (SELECT 1 FROM __schema__.sessions
         WHERE namespace = $1 AND (expires_at <= now() OR absolute_expires_at <= now()) LIMIT $2) x""",
    WORKFLOW_TABLE: """
        SELECT count(*) FROM (SELECT 1 FROM __schema__.workflow_runs
         WHERE namespace = $1 AND status IN ('succeeded', 'failed', 'cancelled')
           AND finished_at < now() - make_interval(secs => $3) LIMIT $2) x""",
}

FLUSH_SQL = """
WITH pruned AS (
  DELETE FROM __schema__.instance_stats
   WHERE namespace = $2 AND instance_id <> $1 AND flushed_at < now() - interval '1 hour'
)
INSERT INTO __schema__.instance_stats
       (instance_id, namespace, application_name, hostname, pid, started_at, flushed_at, stats)
VALUES ($1, $2, $3, $4, $5, to_timestamp($6), now(), $7)
ON CONFLICT (instance_id) DO UPDATE SET flushed_at = now(), stats = EXCLUDED.stats
"""

FORGET_SQL = "DELETE FROM __schema__.instance_stats WHERE instance_id = $1 AND namespace = $2"


class StatsFlusher:
    """Writes this instance's figures to ``instance_stats`` every *interval* seconds.

    The row carries get_stats(), the pool figures, the latency histograms and each
    operation's calls per second over the last interval, so a dashboard in another
    process can show them. The row is removed on close; rows of processes that died
    without closing are pruned after an hour by any flusher of the namespace.
    """

    def __init__(self, db: Any, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[float, dict[str, int]] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="unified_db.stats_flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self.db._execute(FORGET_SQL, self.db.instance_id, self.db.namespace)
        except UnifiedDBError as exc:  # closing goes on; the row is pruned later
            log.warning("unified_db: could not remove this instance's stats row: %s", exc)

    async def _loop(self) -> None:
        while True:
            try:
                await self.flush()
            except UnifiedDBError as exc:  # a dashboard gap, not an application failure
                log.warning("unified_db: stats flush failed: %s", exc)
            await asyncio.sleep(self.interval)

    def payload(self) -> dict[str, Any]:
        """What one flush writes (also what an in-process dashboard shows for itself)."""
        db = self.db
        stats = db.get_stats()
        now = time.monotonic()
        counts = {k: int(v["count"]) for k, v in stats["operations"].items()}
        rates: dict[str, float] = {}
        if self._last is not None:
            then, before = self._last
            dt = max(now - then, 1e-6)
            for name, n in counts.items():
                delta = n - before.get(name, 0)
                rates[name] = (delta if delta >= 0 else n) / dt  # negative: pop_stats() reset
        self._last = (now, counts)
        return {
            "stats": stats,
            "pool": db._pool_figures(),
            "histograms": db._stats.histograms(),
            "rates": rates,
            "interval": self.interval,
        }

    async def flush(self) -> None:
        db = self.db
        await db._execute(
            FLUSH_SQL,
            db.instance_id,
            db.namespace,
            db.settings.application_name,
            db.hostname,
            db.pid,
            db.started_at,
            self.payload(),
        )


def _stats_flusher(db: Any) -> StatsFlusher | None:
    interval = db.settings.stats_flush_interval
    return StatsFlusher(db, interval) if interval > 0 else None


class PoolDiagnosticsMixin(_Base):
    """Pool figures, this application's backends, live resizing and recommendations."""

    component_factories: ClassVar[dict[str, Any]] = {"stats_flush": _stats_flusher}

    def get_pool_stats(self) -> PoolStats:
        """Pool size, bounds, idle/in-use/waiting, acquire p50/p99 and the counters.

        Counters run since the last pop_stats(). No I/O (not a coroutine); raises
        PoolClosedError when the instance is not open.
        """
        # Not get_stats(): that sorts every operation's samples; only acquire's are needed.
        st = self._stats
        acquire = sorted(st.acquire_samples)
        p50, p99 = percentile(acquire, 50), percentile(acquire, 99)
        return pool_stats(
            self._pool_figures(),
            {
                **st.counters,
                "acquire_p50_ms": None if p50 is None else p50 * 1000,
                "acquire_p99_ms": None if p99 is None else p99 * 1000,
            },
        )

    @operation("get_extended_pool_stats")
    async def get_extended_pool_stats(self) -> ExtendedPoolStats:
        """get_pool_stats() plus per-operation counts and latency percentiles, the other
        counters (cache hits, ...) and this application's backends as the server sees
        them (states, wait events, oldest transaction). One round trip."""
        stats = self.get_stats()
        pool = pool_stats(self._pool_figures(), stats)
        rows = await self._fetch(BACKENDS_SQL, self.settings.application_name)
        operations = stats.get("operations", {})
        assert isinstance(operations, dict)
        return ExtendedPoolStats(
            pool=pool,
            operations={k: OperationFigures(**v) for k, v in operations.items()},
            counters=counters_of(stats),
            backends=summarize_backends(dict(r) for r in rows),
        )

    @operation("adjust_pool_size")
    async def adjust_pool_size(
        self, *, min_size: int | None = None, max_size: int | None = None
    ) -> PoolStats:
        """Resize the pool live, in place: no query in flight fails.

        A missing bound keeps its current value (a max below the current min pulls the
        min down with it). Surplus idle connections close at once, surplus ones in use
        when they are released; a larger max lets waiting tasks connect at once. Raises
        InvalidInputError for a bad size (nothing changes).
        """
        figures = self._pool_figures()
        new_min, new_max = check_pool_sizes(min_size, max_size, (figures["min_size"], figures["max_size"]))
        if (new_min, new_max) != (figures["min_size"], figures["max_size"]):
            await self._resize_pool(new_min, new_max)
        return self.get_pool_stats()

    @operation("get_connection_diagnostics")
    async def get_connection_diagnostics(self) -> list[ConnectionDiagnostic]:
        """One row per backend of this application: pid, state, wait event, query,
        transaction and backend age, client address, ssl. The backend running this
        query is included (it is one of them). One round trip."""
        rows = await self._fetch(BACKENDS_SQL, self.settings.application_name)
        return [ConnectionDiagnostic(**dict(r)) for r in rows]

    @operation("terminate_idle_connections")
    async def terminate_idle_connections(self, *, idle_for: float = 300) -> int:
        """End this application's backends idle for at least *idle_for* seconds.

        Only backends on the same database with the same application_name, in state
        ``idle`` (never one inside a transaction), and never the one running the
        statement. This process's own pooled connections count too: the pool replaces
        them on their next acquire. Returns how many were ended. Raises
        InvalidInputError for a negative or non-numeric *idle_for*. One round trip.
        """
        seconds = check_seconds("idle_for", idle_for)
        return int(
            await self._fetchval(TERMINATE_IDLE_SQL, self.settings.application_name, seconds, write=True)
        )

    @operation("get_pool_recommendations")
    async def get_pool_recommendations(self) -> list[Recommendation]:
        """Findings, most severe first, with the change that addresses each: waiters with
        slow acquires, a mostly idle pool, a server near max_connections, backends idle in
        transaction, dead rows in the cache or session table, an expired backlog (cache
        entries, sessions, finished workflow runs past their retention).
        Three round trips, plus one capped count per table with an age rule."""
        pool = self.get_pool_stats()
        rows = await self._fetch(BACKENDS_SQL, self.settings.application_name)
        server = await self._fetchrow(SERVER_SQL)
        assert server is not None
        tables = await self._pool_table_figures()
        return recommend(
            pool,
            summarize_backends(dict(r) for r in rows),
            ServerFigures(**dict(server)),
            tables,
        )

    async def _pool_table_figures(self) -> list[TableFigures]:
        """Size and dead rows of the other features' tables that exist, and the
        namespace's expired rows where the table has an age rule (see EXPIRED_SQL)."""
        rows = await self._fetch(TABLES_SQL, list(WATCHED_TABLES))
        out = []
        for r in rows:
            if not r["present"]:
                continue
            expired = None
            sql = EXPIRED_SQL.get(r["name"])
            if sql is not None:
                args: list[Any] = [self.namespace, EXPIRED_COUNT_CAP]
                if r["name"] == WORKFLOW_TABLE:
                    args.append(float(self.settings.workflow_retention_days) * 86400.0)
                expired = int(await self._fetchval(sql, *args))
            out.append(
                TableFigures(
                    name=r["name"],
                    live_rows=r["live_rows"],
                    dead_rows=r["dead_rows"],
                    total_bytes=r["total_bytes"],
                    expired=expired,
                )
            )
        return out

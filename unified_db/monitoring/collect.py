"""The figures behind the dashboard and the metrics exporter, for one namespace.

Per-process figures (calls, latency, hits, the pool) come from the ``instance_stats``
rows that each ``UnifiedDB`` with ``stats_flush_interval > 0`` writes, plus, when asked,
the live figures of the instance doing the collecting. Database figures (table sizes,
dead rows, expired backlog, live cache entries, active sessions, snapshots, workflow
runs) are read from the feature tables the migrations create, with each feature's own
expiry rules; a table that does not exist (``vector_items`` before the first pgvector
collection) is left out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..extensions._pool_logic import (
    CACHE_TABLE,
    SESSION_TABLE,
    SNAPSHOT_TABLE,
    WORKFLOW_TABLE,
    PoolStats,
    Recommendation,
    ServerFigures,
    TableFigures,
    feature_of,
    recommend,
    summarize_backends,
)
from ..extensions.pool import BACKENDS_SQL, SERVER_SQL
from ..stats import LATENCY_BUCKETS

if TYPE_CHECKING:
    from ..db import UnifiedDB

# A row is shown while it is fresh: three of its own flush intervals, at least 5 s.
INSTANCES_SQL = """
SELECT instance_id, hostname, pid, application_name, stats,
       extract(epoch FROM clock_timestamp() - flushed_at)::float8 AS flushed_age_s,
       extract(epoch FROM clock_timestamp() - started_at)::float8 AS uptime_s
  FROM __schema__.instance_stats
 WHERE namespace = $1
   AND flushed_at > now() - make_interval(
         secs => greatest(5, 3 * coalesce((stats->>'interval')::float8, 1)))
 ORDER BY started_at, instance_id
"""

# The namespace's figures of the feature tables, in one round trip, with each feature's
# own predicates: a cache entry is live until expires_at (NULL: no TTL), a session until
# its idle or absolute expiry; pending and running runs are read through their partial
# indexes. Scans the namespace's cache entries and sessions: cheap at dashboard rates.
FEATURE_FIGURES_SQL = """
SELECT (SELECT count(*) FROM __schema__.cache_entries
         WHERE namespace = $1 AND (expires_at IS NULL OR expires_at > now()))::bigint AS cache_entries,
       (SELECT count(*) FROM __schema__.sessions
         WHERE namespace = $1 AND expires_at > now() AND absolute_expires_at > now())::bigint
         AS active_sessions,
       snap.n AS snapshots, snap.bytes AS snapshot_bytes,
       (SELECT count(*) FROM __schema__.workflow_runs
         WHERE namespace = $1 AND status = 'pending')::bigint AS runs_pending,
       (SELECT count(*) FROM __schema__.workflow_runs
         WHERE namespace = $1 AND status = 'running')::bigint AS runs_running
  FROM (SELECT count(*)::bigint AS n, coalesce(sum(size_bytes), 0)::bigint AS bytes
          FROM __schema__.memory_snapshots WHERE namespace = $1) snap
"""
#: The tables FEATURE_FIGURES_SQL reads; it runs only when all of them exist.
FEATURE_FIGURE_TABLES = frozenset({CACHE_TABLE, SESSION_TABLE, SNAPSHOT_TABLE, WORKFLOW_TABLE})


class InstanceFigures(BaseModel):
    """One process using the namespace, as of its last flush."""

    instance_id: str
    hostname: str
    pid: int
    application_name: str
    flushed_age_s: float
    uptime_s: float
    pool: dict[str, int]
    ops_per_s: float


class OperationRow(BaseModel):
    """One operation summed over the instances: calls, errors, rate and latency.

    ``p50_ms`` is the call-weighted mean of the instances' medians and ``p99_ms`` the
    worst instance's p99: percentiles of different processes cannot be merged exactly.
    """

    operation: str
    feature: str
    count: int
    errors: int
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None


class Snapshot(BaseModel):
    """Everything one dashboard frame shows (``unified-db dashboard --json`` prints it)."""

    taken_at: datetime
    schema_name: str
    namespace: str
    instances: list[InstanceFigures]
    features: dict[str, float]
    operations: list[OperationRow]
    counters: dict[str, int]
    histograms: dict[str, dict[str, Any]]
    pool: PoolStats
    #: hits / reads of cache_get and the batch reads, near-cache hits included
    cache_hit_ratio: float | None
    #: near-cache hits / near-cache lookups (None without cache_local_size)
    near_cache_hit_ratio: float | None
    #: The namespace's figures of the feature tables (None when a table is missing).
    cache_entries: int | None
    active_sessions: int | None
    snapshots: int | None
    snapshot_bytes: int | None
    workflow_runs_pending: int | None
    workflow_runs_running: int | None
    tables: list[TableFigures]
    server: ServerFigures
    backends: dict[str, int]
    recommendations: list[Recommendation]


def ratio(hits: int, misses: int) -> float | None:
    """hits / (hits + misses), None when there were no lookups."""
    total = hits + misses
    return None if total == 0 else hits / total


def merge(payloads: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the flushed figures of several instances (pure).

    Counters, calls, rates, histogram buckets and pool figures add up; acquire p50 is
    the mean and p99 the worst of the instances.
    """
    counters: dict[str, int] = {}
    ops: dict[str, dict[str, Any]] = {}
    hists: dict[str, dict[str, Any]] = {}
    pool = {"size": 0, "min_size": 0, "max_size": 0, "idle": 0, "in_use": 0, "waiting": 0}
    acq50: list[float] = []
    acq99: list[float] = []
    for p in payloads:
        stats = p.get("stats", {})
        rates = p.get("rates", {})
        for k, v in stats.items():
            if isinstance(v, int) and not isinstance(v, bool):
                counters[k] = counters.get(k, 0) + v
        if stats.get("acquire_p50_ms") is not None:
            acq50.append(stats["acquire_p50_ms"])
        if stats.get("acquire_p99_ms") is not None:
            acq99.append(stats["acquire_p99_ms"])
        for name, o in stats.get("operations", {}).items():
            m = ops.setdefault(name, {"count": 0, "errors": 0, "rate": 0.0, "p50_w": 0.0, "p99": None})
            n = int(o.get("count", 0))
            m["count"] += n
            m["errors"] += int(o.get("errors", 0))
            m["rate"] += float(rates.get(name, 0.0))
            if o.get("p50_ms") is not None:
                m["p50_w"] += o["p50_ms"] * n
            if o.get("p99_ms") is not None:
                m["p99"] = o["p99_ms"] if m["p99"] is None else max(m["p99"], o["p99_ms"])
        for name, h in p.get("histograms", {}).items():
            buckets = list(h.get("buckets", []))
            if len(buckets) != len(LATENCY_BUCKETS) + 1:
                continue  # another release's buckets: cannot be added up
            m = hists.setdefault(name, {"buckets": [0] * len(buckets), "sum": 0.0, "count": 0})
            m["buckets"] = [a + b for a, b in zip(m["buckets"], buckets, strict=True)]
            m["sum"] += float(h.get("sum", 0.0))
            m["count"] += int(h.get("count", 0))
        for k in pool:
            pool[k] += int(p.get("pool", {}).get(k, 0))
    rows = [
        OperationRow(
            operation=name,
            feature=feature_of(name),
            count=m["count"],
            errors=m["errors"],
            ops_per_s=m["rate"],
            p50_ms=(m["p50_w"] / m["count"]) if m["count"] and m["p50_w"] else None,
            p99_ms=m["p99"],
        )
        for name, m in sorted(ops.items())
    ]
    features: dict[str, float] = {}
    for r in rows:
        features[r.feature] = features.get(r.feature, 0.0) + r.ops_per_s
    return {
        "counters": counters,
        "operations": rows,
        "features": dict(sorted(features.items())),
        "histograms": hists,
        "pool": pool,
        "acquire_p50_ms": sum(acq50) / len(acq50) if acq50 else None,
        "acquire_p99_ms": max(acq99) if acq99 else None,
    }


class Collector:
    """Takes dashboard snapshots of one namespace through an open UnifiedDB.

    ``include_self``: add this instance's live figures (an application showing its own
    dashboard); the CLI leaves it off, since its own queries are not the workload.
    """

    def __init__(self, db: UnifiedDB, *, include_self: bool = False) -> None:
        self.db = db
        self.include_self = include_self
        self._own_last: tuple[float, dict[str, int]] | None = None

    def _own_payload(self) -> dict[str, Any]:
        db = self.db
        stats = db.get_stats()
        now = time.monotonic()
        counts = {k: int(v["count"]) for k, v in stats["operations"].items()}  # type: ignore[attr-defined]
        rates: dict[str, float] = {}
        if self._own_last is not None:
            then, before = self._own_last
            dt = max(now - then, 1e-6)
            rates = {k: max(0, n - before.get(k, 0)) / dt for k, n in counts.items()}
        self._own_last = (now, counts)
        return {
            "stats": stats,
            "rates": rates,
            "pool": db._pool_figures(),
            "histograms": db._stats.histograms(),
        }

    async def collect(self) -> Snapshot:
        """One snapshot: five round trips (instances, backends, server, tables, feature
        figures) plus one capped count per table with an age rule. The feature figures
        scan the namespace's cache entries and sessions."""
        db = self.db
        rows = await db._fetch(INSTANCES_SQL, db.namespace)
        payloads: list[Mapping[str, Any]] = []
        instances: list[InstanceFigures] = []
        for r in rows:
            if self.include_self and r["instance_id"] == db.instance_id:
                continue  # the live figures below are newer
            payload = r["stats"] or {}
            payloads.append(payload)
            instances.append(
                InstanceFigures(
                    instance_id=r["instance_id"],
                    hostname=r["hostname"],
                    pid=r["pid"],
                    application_name=r["application_name"],
                    flushed_age_s=max(0.0, r["flushed_age_s"]),
                    uptime_s=max(0.0, r["uptime_s"]),
                    pool={k: int(v) for k, v in payload.get("pool", {}).items()},
                    ops_per_s=sum(payload.get("rates", {}).values()),
                )
            )
        if self.include_self:
            own = self._own_payload()
            payloads.append(own)
            instances.append(
                InstanceFigures(
                    instance_id=db.instance_id,
                    hostname=db.hostname,
                    pid=db.pid,
                    application_name=db.settings.application_name,
                    flushed_age_s=0.0,
                    uptime_s=time.time() - db.started_at,
                    pool=own["pool"],
                    ops_per_s=sum(own["rates"].values()),
                )
            )
        merged = merge(payloads)
        c = merged["counters"]
        pool = PoolStats(
            **merged["pool"],
            acquire_p50_ms=merged["acquire_p50_ms"],
            acquire_p99_ms=merged["acquire_p99_ms"],
            acquire_timeouts=c.get("acquire_timeouts", 0),
            connections_lost=c.get("connections_lost", 0),
            requests=c.get("requests_num", 0),
            request_errors=c.get("requests_errors", 0),
            retries=c.get("retries", 0),
        )
        backend_rows = await db._fetch(BACKENDS_SQL, db.settings.application_name)
        backends = summarize_backends(dict(r) for r in backend_rows)
        server_row = await db._fetchrow(SERVER_SQL)
        server = ServerFigures(**dict(server_row or {}))
        tables = await db._pool_table_figures()
        present = {t.name for t in tables}
        figures: dict[str, Any] = {}
        if FEATURE_FIGURE_TABLES <= present:
            row = await db._fetchrow(FEATURE_FIGURES_SQL, db.namespace)
            figures = {k: int(v) for k, v in dict(row or {}).items()}
        return Snapshot(
            taken_at=datetime.now(UTC),
            schema_name=db.schema,
            namespace=db.namespace,
            instances=instances,
            features=merged["features"],
            operations=merged["operations"],
            counters=c,
            histograms=merged["histograms"],
            pool=pool,
            cache_hit_ratio=ratio(c.get("cache_hits", 0), c.get("cache_misses", 0)),
            near_cache_hit_ratio=ratio(c.get("local_hits", 0), c.get("local_misses", 0)),
            cache_entries=figures.get("cache_entries"),
            active_sessions=figures.get("active_sessions"),
            snapshots=figures.get("snapshots"),
            snapshot_bytes=figures.get("snapshot_bytes"),
            workflow_runs_pending=figures.get("runs_pending"),
            workflow_runs_running=figures.get("runs_running"),
            tables=tables,
            server=server,
            backends=backends.states,
            recommendations=recommend(pool, backends, server, tables),
        )

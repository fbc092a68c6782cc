"""Prometheus metrics (extra ``unified-db[metrics]``: prometheus-client).

Two ways to use it:

* in the application: ``REGISTRY.register(UnifiedDBCollector(db))`` exposes that
  process's figures (read at scrape time, no I/O);
* as an exporter: ``unified-db metrics --port 9187`` serves the figures every instance
  of a namespace flushes to the database (``stats_flush_interval``), plus table sizes,
  dead and expired rows, live cache entries, active sessions, snapshots and workflow
  runs, refreshed every few seconds.

Names follow the Prometheus conventions: ``unified_db_`` prefix, ``_total`` counters,
base units (seconds, bytes), an ``unified_db_operation_seconds`` histogram by operation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector as _Collector
    from prometheus_client.registry import CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ..errors import FeatureUnavailableError

    raise FeatureUnavailableError(
        "Prometheus metrics need prometheus-client: pip install 'unified-db[metrics]'"
    ) from exc

from ..stats import LATENCY_BUCKETS
from .collect import Collector, Snapshot

if TYPE_CHECKING:
    from ..db import UnifiedDB

#: stats counter -> (metric name without _total, help)
COUNTERS = {
    "requests_num": ("unified_db_requests", "Statements run through the pool helpers."),
    "requests_errors": ("unified_db_request_errors", "Statements that failed."),
    "retries": ("unified_db_retries", "Reads retried once after a lost connection."),
    "connections_lost": ("unified_db_connections_lost", "Pooled connections the server dropped."),
    "acquire_timeouts": ("unified_db_acquire_timeouts", "Acquires that hit acquire_timeout."),
    "cache_hits": ("unified_db_cache_hits", "Cache reads that found the key (near-cache hits included)."),
    "cache_misses": ("unified_db_cache_misses", "Cache reads that found nothing."),
    "local_hits": ("unified_db_cache_local_hits", "Cache reads answered by the near-cache."),
    "local_misses": ("unified_db_cache_local_misses", "Cache reads the near-cache could not answer."),
}
POOL_GAUGES = {
    "size": ("unified_db_pool_size", "Open pooled connections."),
    "min_size": ("unified_db_pool_min_size", "Connections the pool keeps open."),
    "max_size": ("unified_db_pool_max_size", "Most connections the pool may open."),
    "idle": ("unified_db_pool_idle", "Pooled connections not in use."),
    "in_use": ("unified_db_pool_in_use", "Pooled connections checked out."),
    "waiting": ("unified_db_pool_waiting", "Tasks waiting for a pooled connection."),
}


def families(
    namespace: str,
    counters: Mapping[str, int],
    operations: Mapping[str, Mapping[str, Any]],
    histograms: Mapping[str, Mapping[str, Any]],
    pool: Mapping[str, int],
    acquire_ms: Mapping[str, float | None],
) -> Iterator[Metric]:
    """The metric families of one set of figures (pure: figures in, families out)."""
    labels = ["namespace"]
    for key, (name, doc) in COUNTERS.items():
        c = CounterMetricFamily(name, doc, labels=labels)
        c.add_metric([namespace], counters.get(key, 0))
        yield c
    calls = CounterMetricFamily(
        "unified_db_operations", "Calls of each public operation.", labels=[*labels, "operation"]
    )
    errors = CounterMetricFamily(
        "unified_db_operation_errors", "Calls that raised, by operation.", labels=[*labels, "operation"]
    )
    for op, o in operations.items():
        calls.add_metric([namespace, op], int(o.get("count", 0)))
        errors.add_metric([namespace, op], int(o.get("errors", 0)))
    yield calls
    yield errors
    hist = HistogramMetricFamily(
        "unified_db_operation_seconds", "Latency of each public operation.", labels=[*labels, "operation"]
    )
    bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
    for op, h in histograms.items():
        hist.add_metric([namespace, op], list(zip(bounds, h["buckets"], strict=True)), float(h["sum"]))
    yield hist
    for key, (name, doc) in POOL_GAUGES.items():
        g = GaugeMetricFamily(name, doc, labels=labels)
        g.add_metric([namespace], pool.get(key, 0))
        yield g
    acquire = GaugeMetricFamily(
        "unified_db_pool_acquire_seconds",
        "Time to get a pooled connection, by quantile over the last 2048 acquires.",
        labels=[*labels, "quantile"],
    )
    for q, key in (("0.5", "acquire_p50_ms"), ("0.99", "acquire_p99_ms")):
        v = acquire_ms.get(key)
        if v is not None:
            acquire.add_metric([namespace, q], v / 1000)
    yield acquire


def snapshot_families(snap: Snapshot) -> Iterator[Metric]:
    """The families of an exporter snapshot: every reporting instance summed, plus the
    database figures."""
    ns = snap.namespace
    yield from families(
        ns,
        snap.counters,
        {r.operation: {"count": r.count, "errors": r.errors} for r in snap.operations},
        snap.histograms,
        snap.pool.model_dump(include={"size", "min_size", "max_size", "idle", "in_use", "waiting"}),
        {"acquire_p50_ms": snap.pool.acquire_p50_ms, "acquire_p99_ms": snap.pool.acquire_p99_ms},
    )
    g = GaugeMetricFamily("unified_db_instances", "Instances flushing figures.", labels=["namespace"])
    g.add_metric([ns], len(snap.instances))
    yield g
    per_table = {
        "unified_db_table_bytes": ("Total size on disk, indexes included.", "total_bytes"),
        "unified_db_table_live_rows": ("Live rows (statistics estimate).", "live_rows"),
        "unified_db_table_dead_rows": ("Dead rows waiting for vacuum.", "dead_rows"),
        "unified_db_expired_rows": ("Rows of the namespace past expiry, waiting for cleanup.", "expired"),
    }
    for name, (doc, attr) in per_table.items():
        g = GaugeMetricFamily(name, doc, labels=["namespace", "table"])
        for t in snap.tables:
            v = getattr(t, attr)
            if v is not None:
                g.add_metric([ns, t.name], v)
        yield g
    for name, doc, value in (
        ("unified_db_cache_entries", "Cache entries not yet expired.", snap.cache_entries),
        ("unified_db_sessions_active", "Sessions not yet expired.", snap.active_sessions),
        ("unified_db_snapshots", "Memory snapshots stored.", snap.snapshots),
        ("unified_db_snapshot_bytes", "Bytes of memory snapshots stored.", snap.snapshot_bytes),
    ):
        if value is not None:
            g = GaugeMetricFamily(name, doc, labels=["namespace"])
            g.add_metric([ns], value)
            yield g
    runs = GaugeMetricFamily(
        "unified_db_workflow_runs", "Workflow runs pending or running.", labels=["namespace", "status"]
    )
    for status, value in (("pending", snap.workflow_runs_pending), ("running", snap.workflow_runs_running)):
        if value is not None:
            runs.add_metric([ns, status], value)
    yield runs


class UnifiedDBCollector(_Collector):
    """This process's figures, read at scrape time from an open UnifiedDB (no I/O).

    Prometheus scrapes from its own HTTP thread, while the figures change on the event
    loop: reading a latency deque while the loop appends to it can fail. So when built
    inside a running loop (an application's startup), the collector reads the figures on
    that loop (``call_soon_threadsafe``), waiting at most *timeout* seconds.
    """

    def __init__(
        self, db: UnifiedDB, *, loop: asyncio.AbstractEventLoop | None = None, timeout: float = 5.0
    ) -> None:
        self.db = db
        self.timeout = timeout
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop

    def _figures(self) -> tuple[Any, ...] | None:
        db = self.db
        if not db.is_open:
            return None
        stats = db.get_stats()
        operations = stats.get("operations", {})
        counters = {k: v for k, v in stats.items() if isinstance(v, int)}
        acquire = {
            "acquire_p50_ms": stats.get("acquire_p50_ms"),
            "acquire_p99_ms": stats.get("acquire_p99_ms"),
        }
        return (db.namespace, counters, operations, db._stats.histograms(), db._pool_figures(), acquire)

    def _figures_from_loop(self) -> tuple[Any, ...] | None:
        loop = self.loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return self._figures()
        result: concurrent.futures.Future[tuple[Any, ...] | None] = concurrent.futures.Future()

        def take() -> None:
            try:
                result.set_result(self._figures())
            except BaseException as exc:  # noqa: BLE001 - handed to the scraping thread
                result.set_exception(exc)

        loop.call_soon_threadsafe(take)
        return result.result(timeout=self.timeout)

    def collect(self) -> Iterator[Metric]:
        figures = self._figures_from_loop()
        if figures is not None:
            yield from families(*figures)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SnapshotCollector(_Collector):
    """The latest exporter snapshot; *get* returns it (None before the first)."""

    def __init__(self, get: Callable[[], Snapshot | None]) -> None:
        self.get = get

    def collect(self) -> Iterator[Metric]:
        snap = self.get()
        if snap is not None:
            yield from snapshot_families(snap)


async def serve(
    db: UnifiedDB,
    *,
    port: int = 9187,
    addr: str = "0.0.0.0",  # noqa: S104 - an exporter listens for the Prometheus server
    interval: float = 5.0,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve /metrics on *port* until cancelled, refreshing the snapshot every *interval* s.

    The HTTP server runs in prometheus-client's thread and only reads the latest
    snapshot, which this coroutine replaces whole (no lock needed).
    """
    from prometheus_client import start_http_server

    collector = Collector(db)
    latest: list[Snapshot | None] = [await collector.collect()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: latest[0]))
    server, thread = start_http_server(port, addr=addr, registry=registry)
    try:
        if ready is not None:
            ready(server.server_address[1])
        while True:
            await asyncio.sleep(interval)
            latest[0] = await collector.collect()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

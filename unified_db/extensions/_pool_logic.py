"""Pool diagnostics without I/O: the result models, argument checks, figure arithmetic
and the recommendation rules. Everything here is unit-tested without a database."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

from ..errors import InvalidInputError

Severity = Literal["info", "warning", "critical"]

#: Tables other features own, read by name when they exist (checked with to_regclass).
CACHE_TABLE = "cache_entries"
SESSION_TABLE = "sessions"
SNAPSHOT_TABLE = "memory_snapshots"
WORKFLOW_TABLE = "workflow_runs"
PERSONA_TABLE = "personas"
VECTOR_TABLE = "vector_items"  # created by the pgvector backend on the first collection
STATS_TABLE = "instance_stats"
#: Tables with a high churn of deletes and updates: vacuumed by `unified-db maintain`.
CHURN_TABLES = (CACHE_TABLE, SESSION_TABLE, SNAPSHOT_TABLE, WORKFLOW_TABLE, STATS_TABLE)
WATCHED_TABLES = (
    CACHE_TABLE,
    SESSION_TABLE,
    SNAPSHOT_TABLE,
    WORKFLOW_TABLE,
    PERSONA_TABLE,
    VECTOR_TABLE,
    STATS_TABLE,
)

# Thresholds of the recommendation rules (see docs/operations.md).
SLOW_ACQUIRE_MS = 50.0
IDLE_POOL_MIN_SIZE = 4
IDLE_POOL_SHARE = 0.75
SERVER_NEAR_FULL = 0.8
POOL_SERVER_SHARE = 0.5
IDLE_IN_TX_SECONDS = 30.0
DEAD_RATIO = 0.2
DEAD_MIN_ROWS = 1000
EXPIRED_RATIO = 0.1
EXPIRED_MIN_ROWS = 1000
#: Expired rows are counted up to this many per table, so the count stays cheap.
EXPIRED_COUNT_CAP = 100_000


class PoolStats(BaseModel):
    """The pool as this process sees it, and its counters since the last pop_stats()."""

    size: int
    min_size: int
    max_size: int
    idle: int
    in_use: int
    waiting: int
    acquire_p50_ms: float | None = None
    acquire_p99_ms: float | None = None
    acquire_timeouts: int = 0
    connections_lost: int = 0
    requests: int = 0
    request_errors: int = 0
    retries: int = 0


class OperationFigures(BaseModel):
    """Calls and latency of one public operation (e.g. ``cache_get``)."""

    count: int = 0
    errors: int = 0
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class BackendSummary(BaseModel):
    """This application's backends as pg_stat_activity shows them."""

    total: int = 0
    states: dict[str, int] = {}
    wait_events: dict[str, int] = {}
    idle_in_transaction: int = 0
    oldest_idle_in_transaction_s: float | None = None
    oldest_transaction_s: float | None = None


class ExtendedPoolStats(BaseModel):
    """PoolStats plus per-operation figures, other counters and the server's view."""

    pool: PoolStats
    operations: dict[str, OperationFigures]
    counters: dict[str, int]
    backends: BackendSummary


class ConnectionDiagnostic(BaseModel):
    """One backend of this application (same database and application_name)."""

    pid: int
    state: str | None
    wait_event: str | None
    query_age_s: float | None
    backend_age_s: float | None
    transaction_age_s: float | None
    state_age_s: float | None
    client_addr: str | None
    ssl: bool | None


class TableFigures(BaseModel):
    """Size and churn of one table another feature owns. ``expired`` counts this
    namespace's rows that ``unified-db cleanup`` would delete by age (capped at
    EXPIRED_COUNT_CAP): cache entries past their TTL, idle- or absolutely-expired
    sessions, finished workflow runs older than ``workflow_retention_days``; None for a
    table without such an age rule (snapshot retention keeps a number per agent)."""

    name: str
    live_rows: int = 0
    dead_rows: int = 0
    total_bytes: int = 0
    expired: int | None = None


class ServerFigures(BaseModel):
    max_connections: int | None = None
    connections: int | None = None


class Recommendation(BaseModel):
    """One finding and the change that addresses it."""

    severity: Severity
    finding: str
    suggestion: str


def check_pool_sizes(min_size: object, max_size: object, current: tuple[int, int]) -> tuple[int, int]:
    """The (min, max) to apply: each argument an int in range, or None to keep *current*."""
    for name, value, low in (("min_size", min_size, 0), ("max_size", max_size, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1000:
            raise InvalidInputError(f"{name} must be an int from {low} to 1000 or None (got {value!r})")
    if min_size is None and max_size is None:
        raise InvalidInputError("adjust_pool_size needs min_size, max_size or both")
    new_min = current[0] if min_size is None else int(min_size)  # type: ignore[call-overload]
    new_max = current[1] if max_size is None else int(max_size)  # type: ignore[call-overload]
    if min_size is None and new_min > new_max:
        new_min = new_max  # only max_size given: pull the floor down with it
    if new_min > new_max:
        raise InvalidInputError(f"min_size ({new_min}) must not exceed max_size ({new_max})")
    return new_min, new_max


def check_seconds(name: str, value: object) -> float:
    """A finite number of seconds >= 0, or InvalidInputError naming *name*."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a number of seconds >= 0 (got {value!r})")
    if value < 0:
        raise InvalidInputError(f"{name} must be a number of seconds >= 0 (got {value!r})")
    return float(value)


def pool_stats(figures: Mapping[str, int], stats: Mapping[str, Any]) -> PoolStats:
    """Combine the pool's figures and the stats counters into a PoolStats."""
    return PoolStats(
        **figures,
        acquire_p50_ms=stats.get("acquire_p50_ms"),
        acquire_p99_ms=stats.get("acquire_p99_ms"),
        acquire_timeouts=int(stats.get("acquire_timeouts", 0)),
        connections_lost=int(stats.get("connections_lost", 0)),
        requests=int(stats.get("requests_num", 0)),
        request_errors=int(stats.get("requests_errors", 0)),
        retries=int(stats.get("retries", 0)),
    )


def counters_of(stats: Mapping[str, Any]) -> dict[str, int]:
    """The plain integer counters of a get_stats() result."""
    return {k: int(v) for k, v in stats.items() if isinstance(v, int) and not isinstance(v, bool)}


def summarize_backends(rows: Iterable[Mapping[str, Any]]) -> BackendSummary:
    """Counts by state and wait event, and the oldest transactions, of backend rows."""
    states: dict[str, int] = {}
    waits: dict[str, int] = {}
    total = idle_tx = 0
    oldest_tx: float | None = None
    oldest_idle_tx: float | None = None
    for r in rows:
        total += 1
        state = r.get("state") or "unknown"
        states[state] = states.get(state, 0) + 1
        if r.get("wait_event"):
            waits[r["wait_event"]] = waits.get(r["wait_event"], 0) + 1
        tx = r.get("transaction_age_s")
        if tx is not None:
            oldest_tx = tx if oldest_tx is None else max(oldest_tx, tx)
        if state.startswith("idle in transaction"):
            idle_tx += 1
            age = r.get("state_age_s")
            if age is not None:
                oldest_idle_tx = age if oldest_idle_tx is None else max(oldest_idle_tx, age)
    return BackendSummary(
        total=total,
        states=dict(sorted(states.items())),
        wait_events=dict(sorted(waits.items())),
        idle_in_transaction=idle_tx,
        oldest_idle_in_transaction_s=oldest_idle_tx,
        oldest_transaction_s=oldest_tx,
    )


def recommend(
    pool: PoolStats,
    backends: BackendSummary,
    server: ServerFigures,
    tables: Iterable[TableFigures] = (),
) -> list[Recommendation]:
    """Findings from the figures, most severe first. Pure: same figures, same advice."""
    out: list[Recommendation] = []
    p99 = pool.acquire_p99_ms
    if (pool.waiting > 0 and p99 is not None and p99 >= SLOW_ACQUIRE_MS) or pool.acquire_timeouts:
        target = pool.max_size * 2
        if server.max_connections:
            target = min(target, max(pool.max_size, server.max_connections // 4))
        severity: Severity = "critical" if pool.acquire_timeouts else "warning"
        out.append(
            Recommendation(
                severity=severity,
                finding=(
                    f"{pool.waiting} task(s) wait for a connection; acquire p99 is "
                    f"{_fmt_ms(p99)} and {pool.acquire_timeouts} acquire(s) timed out"
                ),
                suggestion=(
                    f"raise max_size from {pool.max_size} to {target} "
                    "(adjust_pool_size(max_size=...) applies it live), or lower the concurrency"
                    if target > pool.max_size
                    else "the pool cannot grow further here: lower the concurrency or add PgBouncer"
                ),
            )
        )
    if (
        pool.min_size >= IDLE_POOL_MIN_SIZE
        and pool.size > 0
        and pool.idle / pool.size >= IDLE_POOL_SHARE
        and pool.waiting == 0
    ):
        out.append(
            Recommendation(
                severity="info",
                finding=f"the pool is mostly idle: {pool.idle} of {pool.size} connections unused",
                suggestion=f"lower min_size from {pool.min_size} to {max(1, pool.min_size // 2)}",
            )
        )
    if server.max_connections:
        used = server.connections or 0
        if used >= SERVER_NEAR_FULL * server.max_connections:
            out.append(
                Recommendation(
                    severity="critical" if used >= server.max_connections else "warning",
                    finding=f"the server has {used} of max_connections={server.max_connections} in use",
                    suggestion="lower max_size in each process, or put PgBouncer in front of the server",
                )
            )
        if pool.max_size > POOL_SERVER_SHARE * server.max_connections:
            out.append(
                Recommendation(
                    severity="warning",
                    finding=(
                        f"this pool may open {pool.max_size} connections, more than half of "
                        f"max_connections={server.max_connections}"
                    ),
                    suggestion=f"lower max_size to {max(1, server.max_connections // 4)} or less",
                )
            )
    if backends.idle_in_transaction and (backends.oldest_idle_in_transaction_s or 0) >= IDLE_IN_TX_SECONDS:
        out.append(
            Recommendation(
                severity="warning",
                finding=(
                    f"{backends.idle_in_transaction} backend(s) idle in transaction, the oldest for "
                    f"{backends.oldest_idle_in_transaction_s:.0f}s: they hold locks and stop vacuum"
                ),
                suggestion=(
                    "end transactions promptly (async with db._transaction() ...), and set "
                    "idle_in_transaction_session_timeout on the server"
                ),
            )
        )
    for t in tables:
        churn = t.live_rows + t.dead_rows
        if t.name in (CACHE_TABLE, SESSION_TABLE) and t.dead_rows >= DEAD_MIN_ROWS:
            if churn and t.dead_rows / churn >= DEAD_RATIO:
                out.append(
                    Recommendation(
                        severity="warning",
                        finding=(
                            f"{t.name} has {t.dead_rows} dead rows ({t.dead_rows / churn:.0%} of the table)"
                        ),
                        suggestion=(
                            "run `unified-db maintain --vacuum`, and lower the table's "
                            "autovacuum_vacuum_scale_factor so autovacuum keeps up"
                        ),
                    )
                )
        if t.expired is not None and t.expired >= EXPIRED_MIN_ROWS:
            if t.expired >= EXPIRED_RATIO * max(1, t.live_rows):
                out.append(
                    Recommendation(
                        severity="info",
                        finding=f"{t.name} holds {t.expired} expired rows waiting for cleanup",
                        suggestion="run `unified-db cleanup` more often (every few minutes from cron)",
                    )
                )
    order = {"critical": 0, "warning": 1, "info": 2}
    out.sort(key=lambda r: order[r.severity])
    return out


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


FEATURE_PREFIXES = {
    "cache": "cache",
    "session": "sessions",
    "memory": "memory",
    "agent": "agents",
    "workflow": "agents",
    "langgraph": "agents",  # the LangGraph checkpointer stores through the agents feature
    "persona": "personas",
    "vector": "vectors",
}


def feature_of(operation: str) -> str:
    """The feature an operation name belongs to, from its prefix (``cache_get`` -> cache)."""
    feature = FEATURE_PREFIXES.get(operation.split("_", 1)[0])
    if feature is not None:
        return feature
    if "pool" in operation or "connection" in operation:
        return "pool"  # the seed names: get_pool_stats, terminate_idle_connections, ...
    return "other"

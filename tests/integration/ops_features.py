"""Rows of the real features, written through their own public methods, for the ops tests.

Only ages the tests cannot wait for (a finished run 40 days old, a snapshot two days old)
are set afterwards with an UPDATE; everything else (TTLs, idle timeouts, statuses) is what
the feature itself wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from unified_db import UnifiedDB

AGE_RUNS = (
    "UPDATE __schema__.workflow_runs SET finished_at = now() - make_interval(days => $2) WHERE id = ANY($1)"
)
AGE_SNAPSHOTS = (
    "UPDATE __schema__.memory_snapshots SET created_at = now() - make_interval(days => $2) WHERE id = ANY($1)"
)
#: Short enough to expire during a test, long enough to be live when written.
SHORT = 0.05


@dataclass
class Written:
    """What fill() wrote in one namespace: which rows a cleanup must delete and which it must keep."""

    cache_live: set[str] = field(default_factory=set)
    cache_expired: set[str] = field(default_factory=set)
    sessions_live: set[uuid.UUID] = field(default_factory=set)
    sessions_expired: set[uuid.UUID] = field(default_factory=set)
    snapshots_kept: set[int] = field(default_factory=set)
    snapshots_old: set[int] = field(default_factory=set)
    snapshot_bytes: int = 0
    runs_pending: set[uuid.UUID] = field(default_factory=set)
    runs_running: set[uuid.UUID] = field(default_factory=set)
    runs_kept: set[uuid.UUID] = field(default_factory=set)
    runs_old: set[uuid.UUID] = field(default_factory=set)


async def fill(
    db: UnifiedDB,
    *,
    cache_live: int = 5,
    cache_expired: int = 3,
    sessions_live: int = 4,
    sessions_expired: int = 1,
    runs_old: int = 2,
    concurrency: int = 8,
) -> Written:
    """Write, through *db*'s namespace:

    - cache: *cache_live* entries (one without TTL) and *cache_expired* that expire at once;
    - sessions: *sessions_live* and *sessions_expired* with a short idle timeout;
    - snapshots: agent ``a`` v1, v2 aged two days and v3 new; agent ``b`` v1, v2 new (with a
      retention of keep_last=1 and 1 day, exactly ``a`` v1 and v2 go);
    - runs: one pending, one running, one cancelled now and *runs_old* finished 40 days ago
      (succeeded, failed and cancelled in turn).

    Waits until the short TTLs have passed.
    """
    w = Written()
    sem = asyncio.Semaphore(concurrency)

    async def limited(coro):  # type: ignore[no-untyped-def]
        async with sem:
            return await coro

    live = {f"live{i}": i for i in range(cache_live)}
    if live:
        first, *rest = live
        await db.cache_set(first, "no ttl")
        if rest:
            await db.cache_set_many({k: live[k] for k in rest}, ttl=3600)
    old = {f"old{i}": i for i in range(cache_expired)}
    if old:
        await db.cache_set_many(old, ttl=SHORT)
    w.cache_live, w.cache_expired = set(live), set(old)

    made = await asyncio.gather(*(limited(db.session_create(f"u{i}")) for i in range(sessions_live)))
    w.sessions_live = {s.id for s in made}
    made = await asyncio.gather(
        *(limited(db.session_create(f"x{i}", idle_timeout=SHORT)) for i in range(sessions_expired))
    )
    w.sessions_expired = {s.id for s in made}

    a = [await db.memory_snapshot_create("a", {"note": f"a{i}" * 50}) for i in range(3)]
    b = [await db.memory_snapshot_create("b", {"note": f"b{i}"}) for i in range(2)]
    await db._execute(AGE_SNAPSHOTS, [s.id for s in a[:2]], 2)
    w.snapshots_old = {s.id for s in a[:2]}
    w.snapshots_kept = {s.id for s in (a[2], *b)}
    w.snapshot_bytes = sum(s.size_bytes for s in (*a, *b))

    pending = await db.workflow_create("job")
    w.runs_pending = {pending.id}
    running = await db.workflow_create("job", priority=10)
    claimed = await db.workflow_claim_next()
    assert claimed is not None and claimed.id == running.id
    w.runs_running = {running.id}
    recent = await db.workflow_create("job")
    await db.workflow_transition(recent.id, "cancelled", expected_status="pending")
    w.runs_kept = {pending.id, running.id, recent.id}

    async def finished(i: int) -> uuid.UUID:
        run = await db.workflow_create("old-job", priority=-1)
        end = ("succeeded", "failed", "cancelled")[i % 3]
        if end == "cancelled":
            await db.workflow_transition(run.id, "cancelled", expected_status="pending")
        else:
            await db.workflow_transition(run.id, "running", expected_status="pending")
            await db.workflow_transition(run.id, end, expected_status="running")
        return run.id

    w.runs_old = set(await asyncio.gather(*(limited(finished(i)) for i in range(runs_old))))
    if w.runs_old:
        await db._execute(AGE_RUNS, list(w.runs_old), 40)
    await asyncio.sleep(SHORT * 4)
    return w


REMAINING_SQL = {
    "cache_entries": "SELECT key FROM __schema__.cache_entries WHERE namespace = $1",
    "sessions": "SELECT id FROM __schema__.sessions WHERE namespace = $1",
    "memory_snapshots": "SELECT id FROM __schema__.memory_snapshots WHERE namespace = $1",
    "workflow_runs": "SELECT id FROM __schema__.workflow_runs WHERE namespace = $1",
}


def _plain(v: object) -> object:
    return v if isinstance(v, str | int) else uuid.UUID(str(v))


async def remaining(db: UnifiedDB) -> dict[str, set]:
    """The rows of *db*'s namespace, by feature table (keys or ids)."""
    return {
        table: {_plain(r[0]) for r in await db._fetch(sql, db.namespace)}
        for table, sql in REMAINING_SQL.items()
    }


def expected_after_cleanup(w: Written) -> dict[str, set]:
    """What remaining() must give once a cleanup with snapshot retention (keep_last=1, 1 day) ran."""
    return {
        "cache_entries": w.cache_live,
        "sessions": w.sessions_live,
        "memory_snapshots": w.snapshots_kept,
        "workflow_runs": w.runs_kept,
    }


def expected_before_cleanup(w: Written) -> dict[str, set]:
    return {
        "cache_entries": w.cache_live | w.cache_expired,
        "sessions": w.sessions_live | w.sessions_expired,
        "memory_snapshots": w.snapshots_kept | w.snapshots_old,
        "workflow_runs": w.runs_kept | w.runs_old,
    }

"""The terminal dashboard: one rich renderable per :class:`Snapshot`, refreshed live.

``unified-db dashboard`` and ``monitoring/postgresql_performance_dashboard.py`` call
:func:`run_dashboard`; ``render`` is pure (a snapshot in, a renderable out).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Column, Table
from rich.text import Text

from .collect import Collector, Snapshot

if TYPE_CHECKING:
    from ..db import UnifiedDB

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
MAX_OPERATION_ROWS = 15


def _n(v: float | int | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def render(snap: Snapshot) -> Group:
    """One frame of the dashboard."""
    header = Text.assemble(
        ("unified_db", "bold"),
        f"  schema {snap.schema_name}  namespace {snap.namespace}  "
        f"{len(snap.instances)} instance(s) reporting  {snap.taken_at:%Y-%m-%d %H:%M:%S} UTC",
    )

    features = Table("feature", "ops/s", title="Ops/s by feature", title_justify="left")
    for name, rate in snap.features.items():
        features.add_row(name, _n(rate))
    if not snap.features:
        features.add_row("-", "no instance reporting (set stats_flush_interval)")

    ops = Table(
        "operation", "calls", "errors", "ops/s", "p50 ms", "p99 ms", title="Latency", title_justify="left"
    )
    for row in sorted(snap.operations, key=lambda r: -r.count)[:MAX_OPERATION_ROWS]:
        ops.add_row(
            row.operation,
            _n(row.count),
            _n(row.errors),
            _n(row.ops_per_s),
            _n(row.p50_ms, 2),
            _n(row.p99_ms, 2),
        )

    p = snap.pool
    state = Table(
        Column("figure", no_wrap=True),
        "value",
        title="Pool, cache, sessions, snapshots, runs",
        title_justify="left",
    )
    state.add_row("pool in use / idle / waiting", f"{p.in_use} / {p.idle} / {p.waiting}")
    state.add_row("pool size / max", f"{p.size} / {p.max_size}")
    state.add_row("acquire p50 / p99 ms", f"{_n(p.acquire_p50_ms, 2)} / {_n(p.acquire_p99_ms, 2)}")
    state.add_row("acquire timeouts / lost conns", f"{p.acquire_timeouts} / {p.connections_lost}")
    state.add_row("server connections", f"{_n(snap.server.connections)} of {_n(snap.server.max_connections)}")
    state.add_row("app backends by state", ", ".join(f"{k} {v}" for k, v in snap.backends.items()) or "-")
    state.add_row("cache hit ratio (all reads)", _pct(snap.cache_hit_ratio))
    state.add_row("cache hit ratio (near-cache)", _pct(snap.near_cache_hit_ratio))
    state.add_row("cache entries (live)", _n(snap.cache_entries))
    state.add_row("active sessions", _n(snap.active_sessions))
    state.add_row("snapshots / bytes", f"{_n(snap.snapshots)} / {human_bytes(snap.snapshot_bytes)}")
    state.add_row(
        "workflow runs pending / running",
        f"{_n(snap.workflow_runs_pending)} / {_n(snap.workflow_runs_running)}",
    )

    tables = Table(
        Column("table", no_wrap=True),
        "rows",
        "dead",
        Column("size", no_wrap=True),
        "expired",
        title="Tables",
        title_justify="left",
    )
    for t in snap.tables:
        tables.add_row(t.name, _n(t.live_rows), _n(t.dead_rows), human_bytes(t.total_bytes), _n(t.expired))

    recs = Table("severity", "finding", "suggestion", title="Recommendations", title_justify="left")
    for r in snap.recommendations:
        recs.add_row(Text(r.severity, style=SEVERITY_STYLE[r.severity]), r.finding, r.suggestion)
    if not snap.recommendations:
        recs.add_row("ok", "nothing to change", "")
    top = Table.grid(padding=(0, 2))
    top.add_row(state, Group(features, tables))
    return Group(header, top, ops, recs)


def to_json(snap: Snapshot) -> str:
    return json.dumps(snap.model_dump(mode="json"), indent=2)


async def run_dashboard(
    db: UnifiedDB,
    console: Console,
    *,
    once: bool = False,
    as_json: bool = False,
    interval: float = 1.0,
    include_self: bool = False,
    frames: int | None = None,
) -> Snapshot:
    """Print one frame (``once``/``as_json``) or refresh a live one every *interval*
    seconds until cancelled (or for *frames* frames). Returns the last snapshot."""
    collector = Collector(db, include_self=include_self)
    snap = await collector.collect()
    if as_json:
        # Plain text when piped, so `... --json | jq` gets no colour codes.
        if console.is_terminal:
            console.print_json(to_json(snap))
        else:
            sys.stdout.write(to_json(snap) + "\n")
        return snap
    if once:
        console.print(render(snap))
        return snap
    shown = 1
    with Live(render(snap), console=console, refresh_per_second=4, screen=False) as live:
        while frames is None or shown < frames:
            await asyncio.sleep(interval)
            snap = await collector.collect()
            live.update(render(snap))
            shown += 1
    return snap

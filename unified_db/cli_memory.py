"""``unified-db memory ...``: inspect, search and prune memory snapshots. Thin wrappers."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli import DsnOpt, JsonOpt, NamespaceOpt, SchemaOpt, app, console, run
from .db import UnifiedDB
from .extensions.memory import decode_state

memory_app = typer.Typer(help="Memory snapshots: list, show, search, diff, restore, stats, cleanup.")
app.add_typer(memory_app, name="memory")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _snapshot_table(title: str, snapshots: list[Any]) -> Table:
    t = Table("id", "agent", "version", "label", "tags", "bytes", "created", "restored from", title=title)
    for s in snapshots:
        t.add_row(
            str(s.id),
            s.agent_id,
            str(s.version),
            s.label or "",
            ",".join(s.tags),
            f"{s.size_bytes:,}",
            s.created_at.isoformat(timespec="seconds"),
            str(s.restored_from or ""),
        )
    return t


@memory_app.command("list")
def list_(
    agent: Annotated[str | None, typer.Argument(help="only this agent")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="having this tag (repeatable)")] = None,
    limit: Annotated[int, typer.Option(help="page size")] = 50,
    cursor: Annotated[int | None, typer.Option(help="id of the last snapshot of the previous page")] = None,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Snapshots, newest first (one page; pass the last id as --cursor for the next)."""

    async def go(db: UnifiedDB) -> list[Any]:
        return await db.memory_snapshot_list(agent, tags=tag or None, limit=limit, cursor=cursor)

    found = run(dsn, schema, go, namespace=namespace)
    if as_json:
        _print_json([s.model_dump(mode="json", exclude={"state"}) for s in found])
        return
    console.print(_snapshot_table("memory snapshots", found))
    if len(found) == limit:
        console.print(f"next page: --cursor {found[-1].id}")


@memory_app.command()
def show(
    snapshot_id: Annotated[int, typer.Argument(help="snapshot id")],
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Print one snapshot, state included, as JSON (exit code 1 when it does not exist)."""

    async def go(db: UnifiedDB) -> Any:
        return await db.memory_snapshot_get(snapshot_id)

    found = run(dsn, schema, go, namespace=namespace)
    if found is None:
        console.print(f"[red]error:[/red] no snapshot {snapshot_id}")
        raise typer.Exit(1)
    _print_json(found.model_dump(mode="json"))


@memory_app.command()
def create(
    agent: Annotated[str, typer.Argument(help="agent id")],
    state_file: Annotated[Path, typer.Argument(help="a JSON object file, or - for stdin")],
    label: Annotated[str | None, typer.Option(help="a label (searchable)")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="a tag (repeatable)")] = None,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Take a snapshot of the JSON object in STATE_FILE as AGENT's next version."""
    data = sys.stdin.buffer.read() if str(state_file) == "-" else state_file.read_bytes()

    async def go(db: UnifiedDB) -> Any:
        return await db.memory_snapshot_create(agent, decode_state(data), label=label, tags=tag or ())

    s = run(dsn, schema, go, namespace=namespace)
    console.print(f"snapshot {s.id}: {s.agent_id} version {s.version} ({s.size_bytes:,} bytes)")


@memory_app.command()
def search(
    query: Annotated[str, typer.Argument(help='web-search syntax: words, "a phrase", -exclude, or')],
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    limit: Annotated[int, typer.Option(help="most hits")] = 20,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Full-text search over labels, tags and state text, best first."""

    async def go(db: UnifiedDB) -> list[Any]:
        return await db.memory_snapshot_search(query, agent_id=agent, limit=limit)

    hits = run(dsn, schema, go, namespace=namespace)
    if as_json:
        _print_json([h.model_dump(mode="json") for h in hits])
        return
    t = Table("id", "agent", "version", "rank", "excerpt", title=f"search: {query}")
    for h in hits:
        excerpt = h.excerpt.replace("[", r"\[").replace("<b>", "[bold]").replace("</b>", "[/bold]")
        t.add_row(str(h.snapshot.id), h.snapshot.agent_id, str(h.snapshot.version), f"{h.rank:.3f}", excerpt)
    console.print(t)


@memory_app.command()
def diff(
    a_id: Annotated[int, typer.Argument(help="the older snapshot id")],
    b_id: Annotated[int, typer.Argument(help="the newer snapshot id")],
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """JSON paths added (+), removed (-) and changed (~) from A to B."""

    async def go(db: UnifiedDB) -> Any:
        return await db.memory_snapshot_diff(a_id, b_id)

    d = run(dsn, schema, go, namespace=namespace)
    for sign, paths in (("+", d.added), ("-", d.removed), ("~", d.changed)):
        for p in paths:
            typer.echo(f"{sign} {p or '/'}")
    if d.is_empty:
        console.print("no differences")


@memory_app.command()
def restore(
    snapshot_id: Annotated[int, typer.Argument(help="snapshot id to restore")],
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Append a copy of a snapshot as its agent's next version (history is kept)."""

    async def go(db: UnifiedDB) -> Any:
        return await db.memory_snapshot_restore(snapshot_id)

    s = run(dsn, schema, go, namespace=namespace)
    console.print(f"snapshot {s.id}: {s.agent_id} version {s.version}, restored from {s.restored_from}")


@memory_app.command()
def stats(
    agent: Annotated[str | None, typer.Argument(help="only this agent")] = None,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Count, bytes, oldest and newest snapshot, per agent."""

    async def go(db: UnifiedDB) -> Any:
        return await db.memory_snapshot_stats(agent)

    st = run(dsn, schema, go, namespace=namespace)
    if as_json:
        _print_json(st.model_dump(mode="json"))
        return
    t = Table("agent", "snapshots", "bytes", "latest version", "oldest", "newest", title="memory snapshots")
    for a in st.agents:
        t.add_row(
            a.agent_id,
            str(a.count),
            f"{a.bytes:,}",
            str(a.latest_version),
            a.oldest.isoformat(timespec="seconds"),
            a.newest.isoformat(timespec="seconds"),
        )
    console.print(t)
    console.print(f"total: {st.count} snapshots, {st.bytes:,} bytes")


@memory_app.command()
def cleanup(
    keep_last: Annotated[int | None, typer.Option(help="keep each agent's N newest")] = None,
    older_than_days: Annotated[float | None, typer.Option(help="delete snapshots older than this")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count, delete nothing")] = False,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Apply a retention policy now (an agent's latest snapshot is always kept)."""
    older = None if older_than_days is None else timedelta(days=older_than_days)

    async def go(db: UnifiedDB) -> int:
        return await db.memory_snapshot_cleanup(
            keep_last=keep_last, older_than=older, agent_id=agent, dry_run=dry_run
        )

    n = run(dsn, schema, go, namespace=namespace)
    console.print(f"{'would delete' if dry_run else 'deleted'}: {n} snapshot(s)")

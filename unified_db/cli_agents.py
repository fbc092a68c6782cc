"""``unified-db agents ...``: agents and workflow runs from the shell. Thin, like cli.py."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli import DsnOpt, JsonOpt, NamespaceOpt, SchemaOpt, console, run
from .db import UnifiedDB

app = typer.Typer(help="Agents and workflow runs.", no_args_is_help=True)


def _print_runs(runs: list[Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        return
    t = Table("id", "agent", "name", "status", "attempts", "worker", "heartbeat", title=title)
    for r in runs:
        t.add_row(
            str(r.id),
            r.agent_id or "",
            r.name,
            r.status,
            str(r.attempts),
            r.worker or "",
            str(r.heartbeat_at or ""),
        )
    console.print(t)


@app.command("list")
def list_agents(
    dsn: DsnOpt = None, schema: SchemaOpt = None, namespace: NamespaceOpt = None, as_json: JsonOpt = False
) -> None:
    """List agents (first 1000, by id)."""

    async def go(db: UnifiedDB) -> list[Any]:
        return await db.agent_list(limit=1000)

    agents = run(dsn, schema, go, namespace=namespace)
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in agents], indent=2))
        return
    t = Table("id", "name", "persona", "status", "updated", title="agents")
    for a in agents:
        t.add_row(a.id, a.name, a.persona_name or "", a.status, str(a.updated_at))
    console.print(t)


@app.command("runs")
def list_runs(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="pending, running, ... (repeatable)")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="only this agent's runs")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List workflow runs, newest first."""

    async def go(db: UnifiedDB) -> list[Any]:
        return await db.workflow_list(agent_id=agent, status=status or None, limit=limit)

    _print_runs(run(dsn, schema, go, namespace=namespace), as_json, "workflow runs")


@app.command("stale")
def stale(
    timeout: Annotated[float, typer.Option("--timeout", help="seconds without a heartbeat")] = 300.0,
    requeue: Annotated[bool, typer.Option("--requeue", help="put them back to pending")] = False,
    max_attempts: Annotated[
        int | None,
        typer.Option("--max-attempts", help="with --requeue: fail runs that had this many attempts"),
    ] = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List running runs whose heartbeat is older than --timeout; --requeue puts them back."""

    async def go(db: UnifiedDB) -> list[Any]:
        if requeue:
            return await db.workflow_requeue_stale(timeout, max_attempts=max_attempts)
        return await db.workflow_list_stale(timeout, limit=1000)

    _print_runs(run(dsn, schema, go, namespace=namespace), as_json, "requeued" if requeue else "stale runs")

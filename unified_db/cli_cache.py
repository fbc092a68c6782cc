"""``unified-db cache ...``: look at and maintain the cache from a shell."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .cli import DsnOpt, NamespaceOpt, SchemaOpt, console, run
from .db import UnifiedDB

app = typer.Typer(help="The cache: info, expiry, durability.", no_args_is_help=True)


@app.command()
def info(dsn: DsnOpt = None, schema: SchemaOpt = None, namespace: NamespaceOpt = "default") -> None:
    """Entries, expired-but-unswept entries, bytes and durability of one namespace."""

    async def go(db: UnifiedDB):
        return await db.cache_info()

    result = run(dsn, schema, go, namespace=namespace)
    t = Table("figure", "value", title=f"cache {namespace}")
    for k in ("entries", "expired_pending", "bytes", "durable"):
        t.add_row(k, str(getattr(result, k)))
    console.print(t)


@app.command("cleanup")
def cleanup(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = "default",
    batch_size: Annotated[int, typer.Option(help="rows deleted per statement")] = 10_000,
) -> None:
    """Delete the expired entries of one namespace now, in batches."""

    async def go(db: UnifiedDB) -> int:
        return await db.cache_cleanup_expired(batch_size=batch_size)

    console.print(f"deleted {run(dsn, schema, go, namespace=namespace)} expired entries")


@app.command()
def clear(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = "default",
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Remove every entry of one namespace."""
    if not yes:
        typer.confirm(f"remove every cache entry of namespace {namespace!r}?", abort=True)

    async def go(db: UnifiedDB) -> int:
        return await db.cache_clear()

    console.print(f"removed {run(dsn, schema, go, namespace=namespace)} entries")


@app.command()
def durable(
    state: Annotated[str, typer.Argument(help="on (logged, crash-safe) | off (UNLOGGED, fast) | status")],
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Make the cache table logged (on) or UNLOGGED (off); rewrites the table under a lock."""
    if state not in ("on", "off", "status"):
        console.print(f"[red]error:[/red] unknown state {state!r}; use on, off or status")
        raise typer.Exit(2)

    async def go(db: UnifiedDB) -> bool:
        if state == "status":
            return (await db.cache_info()).durable
        return await db.cache_set_durable(state == "on")

    now = run(dsn, schema, go)
    console.print(f"cache table is {'logged (durable)' if now else 'UNLOGGED (emptied after a crash)'}")

"""``unified-db vectors ...``: inspect and manage vector collections from a shell."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli import DsnOpt, NamespaceOpt, SchemaOpt, console, run
from .db import UnifiedDB

app = typer.Typer(help="Vector collections: list, create, drop, search.", no_args_is_help=True)


@app.command("list")
def list_(dsn: DsnOpt = None, schema: SchemaOpt = None, namespace: NamespaceOpt = None) -> None:
    """The collections of a namespace with their item counts."""

    async def go(db: UnifiedDB) -> list[tuple[Any, int]]:
        return [(c, await db.vector_count(c.name)) for c in await db.vector_collections()]

    rows = run(dsn, schema, go, namespace=namespace)
    t = Table("name", "dimensions", "distance", "index", "backend", "items", "created")
    for c, n in rows:
        t.add_row(c.name, str(c.dimensions), c.distance, c.index, c.backend, str(n), str(c.created_at))
    console.print(t)


@app.command()
def create(
    name: str,
    dimensions: int,
    distance: Annotated[str, typer.Option(help="cosine | l2 | dot")] = "cosine",
    index: Annotated[str, typer.Option(help="hnsw | none")] = "hnsw",
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Create a collection (no-op when one with the same definition exists)."""

    async def go(db: UnifiedDB) -> Any:
        return await db.vector_collection_create(
            name, dimensions, distance=distance, index=index, exist_ok=True
        )

    c = run(dsn, schema, go, namespace=namespace)
    console.print(f"collection {c.name}: {c.dimensions} dimensions, {c.distance}, {c.index}")


@app.command()
def drop(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Drop a collection and all its items."""
    if not yes:
        typer.confirm(f"drop collection {name!r} and all its items?", abort=True)

    async def go(db: UnifiedDB) -> None:
        await db.vector_collection_drop(name)

    run(dsn, schema, go, namespace=namespace)
    console.print(f"dropped {name}")


@app.command()
def search(
    name: str,
    embedding: Annotated[str, typer.Option(help="the query vector as JSON, e.g. '[0.1, 0.2, ...]'")],
    k: int = 10,
    filter: Annotated[
        str | None, typer.Option(help='metadata filter as JSON, e.g. \'{"lang": "en"}\'')
    ] = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Nearest items to a vector, best first."""
    try:
        vector = json.loads(embedding)
        flt = json.loads(filter) if filter else None
    except json.JSONDecodeError as exc:
        console.print(f"[red]error:[/red] not JSON: {exc}")
        raise typer.Exit(2) from None

    async def go(db: UnifiedDB) -> Any:
        return await db.vector_search(name, vector, k=k, filter=flt)

    hits = run(dsn, schema, go, namespace=namespace)
    t = Table("id", "score", "content", "metadata")
    for h in hits:
        t.add_row(h.id, f"{h.score:.4f}", h.content[:60], json.dumps(h.metadata)[:60])
    console.print(t)

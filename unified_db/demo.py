"""``unified-db demo``: what the library does, with timings, on the embedded default.

Each feature adds one section: an ``async def section(db, out)`` appended to
``SECTIONS``. ``out`` is a :class:`DemoOutput`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .db import UnifiedDB


class DemoOutput:
    """Prints demo steps with their timings."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def title(self, text: str) -> None:
        self.console.rule(f"[bold]{text}")

    @contextmanager
    def step(self, text: str):
        start = time.perf_counter()
        result: dict[str, Any] = {}
        yield result
        ms = (time.perf_counter() - start) * 1000
        detail = f" -> {result['value']}" if "value" in result else ""
        self.console.print(f"  {text}{detail} [dim]({ms:.2f} ms)[/dim]")

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        t = Table(title=title)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*[str(v) for v in r])
        self.console.print(t)


async def foundation_section(db: UnifiedDB, out: DemoOutput) -> None:
    out.title("Foundation")
    with out.step("health check") as r:
        h = await db.health()
        r["value"] = f"ok={h.ok} PostgreSQL {h.server_version} schema v{h.schema_version}"
    out.console.print(f"  embedded server: {h.embedded}; pool {h.pool_size}/{h.pool_max_size}")


DEMO_SNAPSHOTS = [
    ("snap-1", "planner", "User wants a weekend trip to Lisbon with a small budget"),
    ("snap-2", "planner", "Booked a cheap flight to Lisbon for Saturday morning"),
    ("snap-3", "support", "Customer reports the invoice PDF fails to download"),
    ("snap-4", "support", "Refund issued for the duplicated invoice payment"),
    ("snap-5", "coder", "Refactored the PostgreSQL connection pool retry logic"),
    ("snap-6", "coder", "Added an HNSW index to speed up vector search queries"),
    ("snap-7", "planner", "Suggested museums and seafood restaurants in Lisbon"),
    ("snap-8", "support", "Password reset emails are delayed by ten minutes"),
]


async def vectors_section(db: UnifiedDB, out: DemoOutput) -> None:
    from .embeddings import HashingEmbedder
    from .errors import FeatureUnavailableError

    out.title("Vectors")
    embed = HashingEmbedder(256)  # built in: hashed character n-grams, no model download
    try:
        with out.step("vector_collection_create('demo-snapshots', 256, exist_ok=True)") as r:
            c = await db.vector_collection_create("demo-snapshots", 256, exist_ok=True)
            r["value"] = f"{c.distance}, {c.index}, backend {c.backend}"
    except FeatureUnavailableError as exc:
        out.console.print(f"  skipped: {exc}")
        return
    items = [
        {"id": sid, "embedding": embed(text), "content": text, "metadata": {"agent": agent}}
        for sid, agent, text in DEMO_SNAPSHOTS
    ]
    with out.step(f"vector_upsert of {len(items)} snapshots (one round trip)") as r:
        r["value"] = await db.vector_upsert("demo-snapshots", items)
    query = "cheap holiday in Portugal's capital"
    with out.step(f"vector_search({query!r}, k=3)") as r:
        hits = await db.vector_search("demo-snapshots", embed(query), k=3)
        r["value"] = ", ".join(h.id for h in hits)
    out.table(
        "semantic search",
        ["id", "score", "agent", "content"],
        [[h.id, f"{h.score:.3f}", h.metadata["agent"], h.content] for h in hits],
    )
    with out.step("vector_search('invoice problem', filter={'agent': 'support'}, k=2)") as r:
        hits = await db.vector_search(
            "demo-snapshots", embed("invoice problem"), k=2, filter={"agent": "support"}
        )
        r["value"] = ", ".join(h.id for h in hits)
    with out.step("vector_hybrid_search('vector index', ...) (full text + vectors, RRF)") as r:
        hits = await db.vector_hybrid_search("demo-snapshots", "vector index", embed("vector index"), k=3)
        r["value"] = ", ".join(f"{h.id} ({h.score:.4f})" for h in hits)
    with out.step("vector_count") as r:
        r["value"] = await db.vector_count("demo-snapshots")


Section = Callable[["UnifiedDB", DemoOutput], Awaitable[None]]
SECTIONS: list[Section] = [foundation_section, vectors_section]


async def run_demo(db: UnifiedDB, console: Console | None = None) -> None:
    out = DemoOutput(console or Console())
    for section in SECTIONS:
        await section(db, out)
    out.title("Done")

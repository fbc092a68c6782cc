"""Demo section: vectors. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


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
    from ..embeddings import HashingEmbedder
    from ..errors import FeatureUnavailableError

    out.title("Vectors")
    embed = HashingEmbedder(256)  # built in: hashed character n-grams, no model download
    try:
        with out.step("vector_collection_create('demo-snapshots', 256, exist_ok=True)") as r:
            c = await db.vector_collection_create("demo-snapshots", 256, exist_ok=True)
            r["value"] = f"{c.distance}, {c.index}, backend {c.backend}"
    except FeatureUnavailableError as exc:
        out.console.print(f"  skipped: {exc}")
        await snapshot_search(db, out)  # pgvector may be there even when the backend is not
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
    await snapshot_search(db, out)


DEMO_AGENT = "demo-concierge"


async def snapshot_search(db: UnifiedDB, out: DemoOutput) -> None:
    """Memory snapshots with embeddings: semantic and hybrid search. Repeatable: the
    snapshots are written once per namespace; without pgvector it says so and moves on."""
    from ..embeddings import HashingEmbedder
    from ..errors import FeatureUnavailableError
    from ..extensions.memory import SNAPSHOT_COLLECTION

    # Every snapshot embedding of a namespace has one length, fixed by the first one: take
    # the stored length when there is one, so the demo never fights a real model's.
    info = await db._vector_reserved_info(SNAPSHOT_COLLECTION)
    dims = 256 if info is None else info.dimensions
    if dims < 8:
        out.console.print(
            f"  snapshot embeddings here have {dims} dimensions: semantic snapshot search skipped"
        )
        return
    embed = HashingEmbedder(dims)
    try:
        if await db.memory_snapshot_latest(DEMO_AGENT) is None:
            with out.step("memory_snapshot_create(..., embedding=embed(text)) x4") as r:
                for _, _, text in DEMO_SNAPSHOTS[:4]:
                    await db.memory_snapshot_create(
                        DEMO_AGENT, {"note": text}, label=text, embedding=embed(text)
                    )
                r["value"] = "snapshot and embedding in one transaction each"
        query = "cheap holiday in Portugal's capital"
        with out.step(f"memory_snapshot_search(embedding=embed({query!r}), limit=2)") as r:
            hits = await db.memory_snapshot_search(embedding=embed(query), agent_id=DEMO_AGENT, limit=2)
            r["value"] = " | ".join(f"{h.rank:.3f} {h.excerpt}" for h in hits)
        with out.step("memory_snapshot_search('invoice', embedding=...) (full text + embedding, RRF)") as r:
            hits = await db.memory_snapshot_search(
                "invoice", embedding=embed("refund for a payment"), agent_id=DEMO_AGENT, limit=2
            )
            r["value"] = " | ".join(f"{h.rank:.4f} {h.snapshot.label}" for h in hits)
    except FeatureUnavailableError as exc:
        out.console.print(f"  semantic snapshot search skipped: {exc}")

"""Memory snapshots with embeddings, against a real PostgreSQL.

With pgvector (the embedded PostgreSQL 18 has it): semantic and hybrid search, atomic
writes, delete / cleanup / restore of embeddings, namespaces. Without it (run with
UNIFIED_DB_TEST_DSN naming e.g. PostgreSQL 15 without the extension): an embedding is
FeatureUnavailableError with nothing written, and everything else keeps working.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from unified_db import ConflictError, FeatureUnavailableError, InvalidInputError, UnifiedDB
from unified_db.embeddings import HashingEmbedder
from unified_db.extensions.memory import SNAPSHOT_COLLECTION, SnapshotHit

SNAPSHOTS = "SELECT count(*) FROM __schema__.memory_snapshots"
HEAD = "SELECT max(version) FROM __schema__.memory_snapshot_heads WHERE agent_id = $1"
# vector_items exists only once pgvector stored something (never without pgvector).
HAS_ITEMS = "SELECT to_regclass('__schema__.vector_items') IS NOT NULL"
ITEMS = """
SELECT count(*) FROM __schema__.vector_items i
  JOIN __schema__.vector_collections c ON c.id = i.collection_id
 WHERE c.name = '_memory_snapshots' AND i.namespace = $1
"""
ITEM_IDS = """
SELECT i.id FROM __schema__.vector_items i
  JOIN __schema__.vector_collections c ON c.id = i.collection_id
 WHERE c.name = '_memory_snapshots' AND i.namespace = $1 ORDER BY i.id::bigint
"""

embed = HashingEmbedder(64)


async def _server_has_pgvector(dsn: str) -> bool:
    import asyncpg

    con = await asyncpg.connect(dsn)
    try:
        return bool(
            await con.fetchval("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")
        )
    finally:
        await con.close()


@pytest.fixture(scope="session")
def has_pgvector(admin_dsn: str) -> bool:
    return asyncio.run(_server_has_pgvector(admin_dsn))


@pytest.fixture
def pgvector_only(has_pgvector: bool) -> None:
    if not has_pgvector:
        pytest.skip("this server has no pgvector; test_without_pgvector_* cover it")


async def counts(db: UnifiedDB) -> tuple[int, int]:
    items = await db._fetchval(ITEMS, db.namespace) if await db._fetchval(HAS_ITEMS) else 0
    return await db._fetchval(SNAPSHOTS), items


async def item_ids(db: UnifiedDB) -> list[int]:
    return [int(r["id"]) for r in await db._fetch(ITEM_IDS, db.namespace)]


NOTES = [
    ("planner", "a weekend trip to Lisbon by train", ["trip"]),
    ("planner", "booked a cheap flight to Porto", ["trip", "booked"]),
    ("support", "the invoice PDF fails to download", ["ticket"]),
    ("coder", "refactored the connection pool retry logic", []),
]


async def seed(db: UnifiedDB) -> list[int]:
    ids = []
    for agent, text, tags in NOTES:
        snap = await db.memory_snapshot_create(
            agent, {"note": text}, label=text, tags=tags, embedding=embed(text)
        )
        ids.append(snap.id)
    return ids


# ---------------------------------------------------------------------------- with pgvector


async def test_search_by_embedding_ranks_the_nearest_first(db: UnifiedDB, pgvector_only: None):
    ids = await seed(db)
    assert await item_ids(db) == ids  # one embedding per snapshot, keyed by its id
    hits = await db.memory_snapshot_search(embedding=embed("invoice download fails"))
    assert all(isinstance(h, SnapshotHit) for h in hits)
    assert hits[0].snapshot.id == ids[2] and hits[0].snapshot.agent_id == "support"
    assert len(hits) == 4 and [h.rank for h in hits] == sorted((h.rank for h in hits), reverse=True)
    assert math.isclose(
        hits[0].rank,
        sum(a * b for a, b in zip(embed("invoice download fails"), embed(NOTES[2][1]), strict=True)),
        abs_tol=1e-5,
    )
    assert hits[0].excerpt == NOTES[2][1]  # the label: an embedding hit has no highlights
    assert hits[0].snapshot.state is None
    with_state = await db.memory_snapshot_search(embedding=embed("Lisbon train"), limit=1, include_state=True)
    assert [h.snapshot.id for h in with_state] == [ids[0]] and with_state[0].snapshot.state == {
        "note": NOTES[0][1]
    }
    # numpy arrays work as well as lists
    np = pytest.importorskip("numpy")
    hits = await db.memory_snapshot_search(embedding=np.array(embed("pool retry"), dtype=np.float32), limit=1)
    assert hits[0].snapshot.id == ids[3]


async def test_agent_and_tags_filter_an_embedding_search(db: UnifiedDB, pgvector_only: None):
    ids = await seed(db)
    query = embed("invoice download fails")
    hits = await db.memory_snapshot_search(embedding=query, agent_id="planner")
    assert {h.snapshot.id for h in hits} == {ids[0], ids[1]}
    hits = await db.memory_snapshot_search(embedding=query, tags=["trip", "booked"])
    assert [h.snapshot.id for h in hits] == [ids[1]]
    assert await db.memory_snapshot_search(embedding=query, tags=["nope"]) == []
    assert await db.memory_snapshot_search(embedding=query, agent_id="nobody") == []


async def test_text_and_embedding_together_are_fused_by_rrf(db: UnifiedDB, pgvector_only: None):
    ids = await seed(db)
    plain = await db.memory_snapshot_create(
        "planner", {"note": "nothing to see"}, label="Porto"
    )  # no embedding
    hits = await db.memory_snapshot_search("Porto", embedding=embed("Porto flight"))
    # ids[1] is first in both rankings; `plain` only in the text one.
    assert hits[0].snapshot.id == ids[1] and "<b>Porto</b>" in hits[0].excerpt
    assert hits[0].rank > 1 / 61  # in both rankings: 1/(60+r1) + 1/(60+r2)
    assert plain.id in [h.snapshot.id for h in hits]
    assert all(h.rank <= hits[0].rank for h in hits)
    # the text part alone is unchanged: text search ranks with ts_rank_cd
    text_only = await db.memory_snapshot_search("Porto")
    assert {h.snapshot.id for h in text_only} == {ids[1], plain.id}
    assert all(0 < h.rank for h in text_only)


async def test_bad_arguments_for_search(db: UnifiedDB, pgvector_only: None):
    with pytest.raises(InvalidInputError, match="query, an embedding or both"):
        await db.memory_snapshot_search()
    assert await db.memory_snapshot_search(embedding=[1.0, 0.0, 0.0]) == []  # nothing stored yet
    await db.memory_snapshot_create("a", {}, embedding=[1.0, 0.0, 0.0])
    for bad in ([1.0, 0.0], [math.nan, 0.0, 1.0], [0.0, 0.0, 0.0], "abc", 7, []):
        with pytest.raises(InvalidInputError):
            await db.memory_snapshot_search(embedding=bad)


BAD_EMBEDDINGS = [
    pytest.param([1.0, 0.0, 0.0, 0.0], id="wrong-dimensions"),
    pytest.param([1.0, math.nan, 0.0], id="nan"),
    pytest.param([1.0, math.inf, 0.0], id="inf"),
    pytest.param([1.0, 1e39, 0.0], id="beyond-float32"),
    pytest.param([], id="empty"),
    pytest.param([0.0, 0.0, 0.0], id="zero"),
    pytest.param("1,2,3", id="string"),
    pytest.param(3, id="number"),
    pytest.param([1.0, "x", 0.0], id="non-number"),
    pytest.param({"a": 1.0}, id="dict"),
]


@pytest.mark.parametrize("bad", BAD_EMBEDDINGS)
async def test_a_bad_embedding_writes_nothing(db: UnifiedDB, pgvector_only: None, bad: object):
    first = await db.memory_snapshot_create("agent", {"n": 1}, embedding=[0.0, 1.0, 0.0])
    before = await counts(db)
    assert before == (1, 1)
    with pytest.raises(InvalidInputError):
        await db.memory_snapshot_create("agent", {"n": 2}, embedding=bad)
    assert await counts(db) == before
    assert await db._fetchval(HEAD, "agent") == 1  # the version counter did not move either
    second = await db.memory_snapshot_create("agent", {"n": 2}, embedding=[0.0, 0.0, 1.0])
    assert second.version == first.version + 1


async def test_the_first_embedding_fixes_the_dimensions(db: UnifiedDB, pgvector_only: None):
    await db.memory_snapshot_create("a", {}, embedding=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError, match=r"has 4 numbers, but .* have 3 \(fixed by the first one"):
        await db.memory_snapshot_create("b", {}, embedding=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(InvalidInputError, match="have 3"):
        await db.memory_snapshot_search(embedding=[1.0, 2.0])
    # the reserved collection stays out of the public vector API
    assert SNAPSHOT_COLLECTION not in [c.name for c in await db.vector_collections()]
    with pytest.raises(InvalidInputError):
        await db.vector_search(SNAPSHOT_COLLECTION, [1.0, 2.0, 3.0])


async def test_a_failed_embedding_write_rolls_the_snapshot_back(db: UnifiedDB, pgvector_only: None):
    await db.memory_snapshot_create("a", {"n": 1}, embedding=[1.0, 0.0])
    # The collection disappears behind this instance's cached catalog row: the snapshot
    # insert succeeds, the embedding write finds no collection, and both roll back.
    await db._execute("DELETE FROM __schema__.vector_collections WHERE name = $1", SNAPSHOT_COLLECTION)
    await db._execute(
        "INSERT INTO __schema__.vector_collections (namespace, name, dimensions, distance, index_kind,"
        " backend, text_search_config) VALUES ($1, $2, 2, 'cosine', 'none', 'pgvector', 'simple')",
        db.namespace,
        SNAPSHOT_COLLECTION,
    )
    with pytest.raises(ConflictError, match="retry"):
        await db.memory_snapshot_create("a", {"n": 2}, embedding=[0.0, 1.0])
    assert await counts(db) == (1, 0)  # the first snapshot (its embedding went with the row); no new one
    assert await db._fetchval(HEAD, "a") == 1
    # the next call reads the catalog afresh and works
    again = await db.memory_snapshot_create("a", {"n": 2}, embedding=[0.0, 1.0])
    assert again.version == 2 and await item_ids(db) == [again.id]


async def test_delete_and_cleanup_remove_the_embeddings(db: UnifiedDB, pgvector_only: None):
    ids = await seed(db)
    assert await db.memory_snapshot_delete(ids[2])
    assert await item_ids(db) == [ids[0], ids[1], ids[3]]
    assert not await db.memory_snapshot_delete(ids[2])
    assert ids[2] not in [h.snapshot.id for h in await db.memory_snapshot_search(embedding=embed("invoice"))]

    more = [
        (await db.memory_snapshot_create("planner", {"n": i}, embedding=embed(f"plan number {i}"))).id
        for i in range(3)
    ]
    assert await db.memory_snapshot_cleanup(keep_last=1, agent_id="planner", dry_run=True) == 4
    assert await item_ids(db) == [ids[0], ids[1], ids[3], *more]  # a dry run deletes nothing
    assert await db.memory_snapshot_cleanup(keep_last=1, agent_id="planner", batch_size=2) == 4
    assert await item_ids(db) == [ids[3], more[-1]]
    assert await counts(db) == (2, 2)


async def test_restore_copies_the_embedding(db: UnifiedDB, pgvector_only: None):
    ids = await seed(db)
    restored = await db.memory_snapshot_restore(ids[0])
    assert restored.restored_from == ids[0]
    assert await item_ids(db) == [*ids, restored.id]
    assert await db.memory_snapshot_delete(ids[0])  # the copy is its own: it survives
    hits = await db.memory_snapshot_search(embedding=embed("Lisbon train"), agent_id="planner", limit=1)
    assert [h.snapshot.id for h in hits] == [restored.id]
    # a snapshot without an embedding restores without one
    plain = await db.memory_snapshot_create("planner", {"n": 0})
    again = await db.memory_snapshot_restore(plain.id)
    assert again.id not in await item_ids(db)


async def test_embeddings_are_isolated_by_namespace(db: UnifiedDB, other_ns: UnifiedDB, pgvector_only: None):
    ids = await seed(db)
    # each namespace fixes its own dimensions
    theirs = await other_ns.memory_snapshot_create("planner", {"x": 1}, embedding=[1.0, 0.0, 0.0, 0.0, 0.0])
    query = embed("Lisbon train")
    assert await other_ns.memory_snapshot_search(embedding=[1.0, 0.0, 0.0, 0.0, 0.1]) != []
    assert [h.snapshot.id for h in await other_ns.memory_snapshot_search(embedding=[1.0, 0, 0, 0, 0.1])] == [
        theirs.id
    ]
    with pytest.raises(InvalidInputError):  # their collection has 5 dimensions, not 64
        await other_ns.memory_snapshot_search(embedding=query)
    assert theirs.id not in [h.snapshot.id for h in await db.memory_snapshot_search(embedding=query)]
    # another namespace can neither delete nor restore our snapshots (nor their embeddings)
    assert not await other_ns.memory_snapshot_delete(ids[0])
    assert await item_ids(db) == ids
    assert await other_ns.memory_snapshot_cleanup(keep_last=1) == 0
    assert await item_ids(db) == ids and await item_ids(other_ns) == [theirs.id]


# ---------------------------------------------------------------------------- without pgvector


async def test_without_pgvector_an_embedding_is_unavailable_and_writes_nothing(
    db: UnifiedDB, has_pgvector: bool
):
    if has_pgvector:
        pytest.skip("this server has pgvector; run with UNIFIED_DB_TEST_DSN naming one without it")
    with pytest.raises(FeatureUnavailableError, match="pgvector"):
        await db.memory_snapshot_create("agent", {"n": 1}, embedding=[1.0, 0.0])
    assert await counts(db) == (0, 0) and await db._fetchval(HEAD, "agent") is None
    with pytest.raises(InvalidInputError):  # a bad embedding is still a bad argument first
        await db.memory_snapshot_create("agent", {"n": 1}, embedding=[math.nan])
    with pytest.raises(FeatureUnavailableError):
        await db.memory_snapshot_search(embedding=[1.0, 0.0])
    with pytest.raises(FeatureUnavailableError):
        await db.memory_snapshot_search("anything", embedding=[1.0, 0.0])

    # snapshots without embeddings keep working, every operation of them
    s1 = await db.memory_snapshot_create("agent", {"note": "plain text memory"}, label="plain")
    s2 = await db.memory_snapshot_create("agent", {"note": "second"})
    assert s1.version == 1 and s2.version == 2
    assert [h.snapshot.id for h in await db.memory_snapshot_search("plain")] == [s1.id]
    restored = await db.memory_snapshot_restore(s1.id)
    assert restored.restored_from == s1.id
    assert await db.memory_snapshot_delete(s2.id)
    assert await db.memory_snapshot_cleanup(keep_last=1) == 1
    assert await db._fetchval(SNAPSHOTS) == 1


# ---------------------------------------------------------------------------- demo


async def test_demo_snapshot_search_is_repeatable_and_degrades(db_dsn: str, has_pgvector: bool):
    import io

    from rich.console import Console

    from unified_db.demo import DemoOutput
    from unified_db.demos.vectors import DEMO_AGENT, snapshot_search, vectors_section

    buffer = io.StringIO()
    out = DemoOutput(Console(file=buffer, width=200))
    async with UnifiedDB(db_dsn, namespace="demo", max_size=2) as demo:
        await vectors_section(demo, out)
        await snapshot_search(demo, out)
        stats = await demo.memory_snapshot_stats(DEMO_AGENT)
    text = buffer.getvalue()
    if has_pgvector:
        assert stats.count == 4  # written once
        assert "-> 0.1" in text and "RRF" in text and "skipped" not in text
    else:
        assert stats.count == 0 and "semantic snapshot search skipped" in text


async def test_another_instance_deletes_and_restores_embeddings_it_never_wrote(
    db: UnifiedDB, db_dsn: str, pgvector_only: None
):
    async with UnifiedDB(db_dsn, max_size=2) as peer:
        plain = await peer.memory_snapshot_create("a", {"n": 0})
        assert await peer.memory_snapshot_delete(plain.id)  # no embeddings anywhere yet
        s1 = await db.memory_snapshot_create("a", {"n": 1}, embedding=[1.0, 0.0])
        s2 = await db.memory_snapshot_create("a", {"n": 2}, embedding=[0.0, 1.0])
        copy = await peer.memory_snapshot_restore(s1.id)
        assert await peer.memory_snapshot_delete(s2.id)
        assert await item_ids(db) == [s1.id, copy.id]

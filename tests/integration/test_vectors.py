"""Vectors against a real server: one contract suite run on every available backend,
then what is specific to pgvector (index use, stale catalog cache, a server without it).

pgvector runs when the server has the extension (the embedded PostgreSQL 18 does);
Weaviate runs when UNIFIED_DB_WEAVIATE_URL names a server.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pytest

from unified_db import (
    ConflictError,
    FeatureUnavailableError,
    InvalidInputError,
    NotFoundError,
    UnifiedDB,
)
from unified_db.vectors.base import VectorItem, compile_filter, matches_filter

DIM = 8


async def _server_has_pgvector(dsn: str) -> bool:
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


@pytest.fixture(params=["pgvector", "weaviate"])
def backend(request: pytest.FixtureRequest, has_pgvector: bool) -> str:
    if request.param == "pgvector" and not has_pgvector:
        pytest.skip("this server has no pgvector; test_server_without_pgvector_* cover it")
    if request.param == "weaviate" and not os.environ.get("UNIFIED_DB_WEAVIATE_URL"):
        pytest.skip("set UNIFIED_DB_WEAVIATE_URL (e.g. http://localhost:8080) to run the Weaviate contract")
    return request.param


@pytest.fixture
async def vdb(db_dsn: str, backend: str) -> AsyncIterator[UnifiedDB]:
    async with UnifiedDB(db_dsn, vector_backend=backend, min_size=1, max_size=4) as instance:
        yield instance
        for c in await instance.vector_collections():  # Weaviate keeps collections across tests
            await instance.vector_collection_drop(c.name)


@pytest.fixture
async def vother(db_dsn: str, backend: str) -> AsyncIterator[UnifiedDB]:
    async with UnifiedDB(
        db_dsn, vector_backend=backend, namespace="other", min_size=1, max_size=2
    ) as instance:
        yield instance
        for c in await instance.vector_collections():
            await instance.vector_collection_drop(c.name)


def unit(*values: float) -> list[float]:
    """*values* padded with zeros to DIM."""
    return list(values) + [0.0] * (DIM - len(values))


def rand_vectors(n: int, dim: int = DIM, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


async def filled(db: UnifiedDB, name: str = "docs", n: int = 60) -> np.ndarray:
    await db.vector_collection_create(name, DIM)
    vectors = rand_vectors(n)
    await db.vector_upsert(
        name,
        [
            {
                "id": f"d{i}",
                "embedding": vectors[i],
                "content": f"document number {i}",
                "metadata": {"group": i % 3, "even": i % 2 == 0, "tag": f"t{i % 5}"},
            }
            for i in range(n)
        ],
    )
    return vectors


def exact_top(vectors: np.ndarray, q: np.ndarray, k: int, ids: list[str] | None = None) -> list[str]:
    sims = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    order = np.argsort(-sims)
    names = ids or [f"d{i}" for i in range(len(vectors))]
    return [names[i] for i in order[:k]]


# ====================================================================== contract


async def test_collections_are_created_listed_and_dropped(vdb: UnifiedDB):
    assert await vdb.vector_collections() == []
    c = await vdb.vector_collection_create("docs", DIM)
    assert (c.name, c.dimensions, c.distance, c.index, c.backend) == (
        "docs",
        DIM,
        "cosine",
        "hnsw",
        vdb.settings.vector_backend,
    )
    await vdb.vector_collection_create("alpha", 3, distance="l2", index="none")
    assert [x.name for x in await vdb.vector_collections()] == ["alpha", "docs"]
    with pytest.raises(ConflictError, match="already exists"):
        await vdb.vector_collection_create("docs", DIM)
    assert (await vdb.vector_collection_create("docs", DIM, exist_ok=True)).created_at == c.created_at
    with pytest.raises(ConflictError):
        await vdb.vector_collection_create("docs", DIM + 1, exist_ok=True)
    await vdb.vector_collection_drop("docs")
    assert [x.name for x in await vdb.vector_collections()] == ["alpha"]
    with pytest.raises(NotFoundError):
        await vdb.vector_collection_drop("docs")


async def test_bad_collection_arguments_change_nothing(vdb: UnifiedDB):
    for kwargs in (
        dict(name="Bad Name", dimensions=3),
        dict(name="x", dimensions=0),
        dict(name="x", dimensions="3"),
        dict(name="x", dimensions=3, distance="manhattan"),
        dict(name="x", dimensions=3, index="ivfflat"),
        dict(name="x", dimensions=3, m=1),
        dict(name="_reserved", dimensions=3),
    ):
        with pytest.raises(InvalidInputError):
            await vdb.vector_collection_create(**kwargs)
    assert await vdb.vector_collections() == []


async def test_upsert_get_count_and_replace(vdb: UnifiedDB):
    await vdb.vector_collection_create("docs", DIM)
    assert await vdb.vector_count("docs") == 0
    n = await vdb.vector_upsert(
        "docs",
        [
            VectorItem(id="a", embedding=unit(1, 0), content="alpha", metadata={"k": 1}),
            {"id": "b", "embedding": np.array(unit(0, 1), dtype=np.float32)},
        ],
    )
    assert n == 2 and await vdb.vector_count("docs") == 2
    a = await vdb.vector_get("docs", "a")
    assert a is not None and a.content == "alpha" and a.metadata == {"k": 1}
    assert a.embedding == pytest.approx(unit(1, 0))
    b = await vdb.vector_get("docs", "b")
    assert b is not None and b.content == "" and b.metadata == {}
    assert await vdb.vector_get("docs", "zzz") is None
    await vdb.vector_upsert(
        "docs", [{"id": "a", "embedding": unit(0, 0, 1), "content": "new", "metadata": {"k": 2}}]
    )
    a = await vdb.vector_get("docs", "a")
    assert a is not None and (a.content, a.metadata) == ("new", {"k": 2})
    assert a.embedding == pytest.approx(unit(0, 0, 1))
    assert await vdb.vector_count("docs") == 2
    assert await vdb.vector_upsert("docs", []) == 0


async def test_many_items_go_in_batches_all_or_nothing(db_dsn: str, backend: str):
    async with UnifiedDB(db_dsn, vector_backend=backend, vector_upsert_batch_size=7, max_size=2) as db:
        await db.vector_collection_create("docs", DIM)
        vectors = rand_vectors(50)
        assert (
            await db.vector_upsert("docs", ({"id": str(i), "embedding": v} for i, v in enumerate(vectors)))
            == 50
        )
        assert await db.vector_count("docs") == 50
        await db.vector_collection_drop("docs")


@pytest.mark.parametrize(
    "bad_item, message",
    [
        ({"id": "x", "embedding": unit(1)[:-1]}, "dimensions"),
        ({"id": "x", "embedding": unit(1, math.nan)}, "NaN"),
        ({"id": "x", "embedding": unit(1, math.inf)}, "infinite"),
        ({"id": "x", "embedding": unit(-math.inf)}, "infinite"),
        ({"id": "", "embedding": unit(1)}, "non-empty string"),
        ({"id": "x", "embedding": unit(1), "metadata": {"when": object()}}, "not JSON"),
        ({"id": "x", "embedding": unit(1), "metadata": ["not", "an", "object"]}, "JSON object"),
        ({"id": "x", "embedding": [0.0] * DIM}, "zero vector"),
        ({"id": "d1", "embedding": unit(1)}, "appears twice"),
    ],
)
async def test_a_bad_item_in_a_batch_writes_nothing(vdb: UnifiedDB, bad_item: dict, message: str):
    await vdb.vector_collection_create("docs", DIM)
    await vdb.vector_upsert("docs", [{"id": "d0", "embedding": unit(1), "content": "kept"}])
    with pytest.raises(InvalidInputError, match=message):
        await vdb.vector_upsert(
            "docs", [{"id": "d1", "embedding": unit(0, 1), "content": "changed"}, bad_item]
        )
    assert await vdb.vector_count("docs") == 1
    assert await vdb.vector_get("docs", "d1") is None
    assert (await vdb.vector_get("docs", "d0")).content == "kept"


async def test_an_unknown_collection_is_not_found_everywhere(vdb: UnifiedDB):
    calls = [
        vdb.vector_upsert("nope", [{"id": "a", "embedding": unit(1)}]),
        vdb.vector_search("nope", unit(1)),
        vdb.vector_hybrid_search("nope", "text", unit(1)),
        vdb.vector_get("nope", "a"),
        vdb.vector_delete("nope", ["a"]),
        vdb.vector_delete("nope", []),
        vdb.vector_count("nope"),
        vdb.vector_collection_drop("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match="nope"):
            await call


async def test_bad_search_arguments_are_refused_before_any_io(vdb: UnifiedDB):
    await filled(vdb, n=5)
    for kwargs, message in (
        (dict(embedding=unit(1)[:3]), "dimensions"),
        (dict(embedding=unit(math.nan)), "NaN"),
        (dict(embedding=unit(1), k=0), "k must be"),
        (dict(embedding=unit(1), filter={"a": {"gt": 1}}), "filter"),
        (dict(embedding=unit(1), min_score=math.nan), "min_score"),
        (dict(embedding=unit(1), ef_search=0), "ef_search"),
        (dict(embedding=[0.0] * DIM), "zero vector"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            await vdb.vector_search("docs", **kwargs)
    with pytest.raises(InvalidInputError):
        await vdb.vector_hybrid_search("docs", 42, unit(1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await vdb.vector_get("docs", "")
    with pytest.raises(InvalidInputError):
        await vdb.vector_delete("docs", "d1")  # a string, not a list of ids
    assert await vdb.vector_count("docs") == 5


async def test_an_empty_collection_searches_to_nothing(vdb: UnifiedDB):
    await vdb.vector_collection_create("docs", DIM)
    assert await vdb.vector_search("docs", unit(1)) == []
    assert await vdb.vector_search("docs", unit(1), filter={"a": 1}) == []
    assert await vdb.vector_hybrid_search("docs", "anything", unit(1)) == []
    assert await vdb.vector_delete("docs", ["a"]) == 0


async def test_search_returns_the_nearest_best_first(vdb: UnifiedDB):
    vectors = await filled(vdb, n=60)
    q = rand_vectors(1, seed=99)[0]
    hits = await vdb.vector_search("docs", q, k=10)
    assert [h.id for h in hits] == exact_top(vectors, q, 10)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    best = hits[0]
    assert best.content == f"document number {best.id[1:]}" and "group" in best.metadata
    exact = await vdb.vector_search("docs", q, k=10, exact=True)
    assert [h.id for h in exact] == [h.id for h in hits]
    # The item itself is its own nearest neighbour with a similarity of 1.
    self_hit = (await vdb.vector_search("docs", vectors[7], k=1))[0]
    assert self_hit.id == "d7" and self_hit.score == pytest.approx(1.0, abs=1e-5)
    above = await vdb.vector_search("docs", q, k=10, min_score=hits[3].score)
    assert [h.id for h in above] == [h.id for h in hits[:4]]


async def test_filters_by_equality_and_membership(vdb: UnifiedDB):
    vectors = await filled(vdb, n=60)
    q = rand_vectors(1, seed=5)[0]
    meta = {f"d{i}": {"group": i % 3, "even": i % 2 == 0, "tag": f"t{i % 5}"} for i in range(60)}
    for flt in (
        {"group": 1},
        {"even": True},
        {"tag": {"in": ["t1", "t4"]}},
        {"group": {"in": [0, 2]}, "even": False},
        {"group": 1, "tag": "t3"},
    ):
        hits = await vdb.vector_search("docs", q, k=5, filter=flt)
        compiled = compile_filter(flt)
        wanted = [i for i in exact_top(vectors, q, 60) if matches_filter(meta[i], compiled)][:5]
        assert [h.id for h in hits] == wanted, flt
        assert all(matches_filter(h.metadata, compiled) for h in hits)
    assert await vdb.vector_search("docs", q, filter={"group": 7}) == []
    assert await vdb.vector_search("docs", q, filter={"missing": 1}) == []


async def test_hybrid_search_fuses_text_and_vector_rankings(vdb: UnifiedDB):
    await vdb.vector_collection_create("docs", DIM)
    await vdb.vector_upsert(
        "docs",
        [
            {"id": "vec-only", "embedding": unit(1, 0.05), "content": "an unrelated sentence about weather"},
            {"id": "both", "embedding": unit(1, 0.3), "content": "postgres vector search in one database"},
            {"id": "text-only", "embedding": unit(0, 0, 1), "content": "postgres vector search guide"},
            {"id": "neither", "embedding": unit(0, 0, 0, 1), "content": "cooking pasta at home"},
        ],
    )
    q = unit(1, 0)
    vector_first = [h.id for h in await vdb.vector_search("docs", q, k=4)]
    assert vector_first[:2] == ["vec-only", "both"]
    hits = await vdb.vector_hybrid_search("docs", "postgres vector search", q, k=3)
    ids = [h.id for h in hits]
    # "both" is 2nd by vector and 1st or 2nd by text: fused, it beats either single ranking.
    assert ids[0] == "both", ids
    assert set(ids) == {"both", "vec-only", "text-only"}
    assert hits[0].score > hits[1].score >= hits[2].score > 0
    assert hits[0].content.startswith("postgres") and hits[0].metadata == {}
    # With text matching nothing, hybrid is the vector ranking.
    assert [h.id for h in await vdb.vector_hybrid_search("docs", "zebra", q, k=4)] == vector_first
    # A filter applies to both rankings.
    await vdb.vector_upsert(
        "docs",
        [
            {
                "id": "text-only",
                "embedding": unit(0, 0, 1),
                "content": "postgres vector search guide",
                "metadata": {"kind": "guide"},
            }
        ],
    )
    hits = await vdb.vector_hybrid_search("docs", "postgres vector search", q, k=3, filter={"kind": "guide"})
    assert [h.id for h in hits] == ["text-only"]
    with pytest.raises(InvalidInputError, match="filter"):
        await vdb.vector_hybrid_search("docs", "postgres", q, filter={"kind": {"like": "g%"}})


async def test_delete_by_ids(vdb: UnifiedDB):
    await filled(vdb, n=10)
    assert await vdb.vector_delete("docs", ["d1", "d2", "nope"]) == 2
    assert await vdb.vector_delete("docs", ["d1"]) == 0
    assert await vdb.vector_delete("docs", []) == 0
    assert await vdb.vector_count("docs") == 8
    assert await vdb.vector_get("docs", "d1") is None
    hits = await vdb.vector_search("docs", rand_vectors(1, seed=3)[0], k=10)
    assert {"d1", "d2"}.isdisjoint(h.id for h in hits) and len(hits) == 8


async def test_namespaces_isolate_collections_and_items(vdb: UnifiedDB, vother: UnifiedDB):
    await filled(vdb, n=10)
    assert await vother.vector_collections() == []
    with pytest.raises(NotFoundError):
        await vother.vector_count("docs")
    with pytest.raises(NotFoundError):
        await vother.vector_search("docs", unit(1))
    with pytest.raises(NotFoundError):
        await vother.vector_delete("docs", ["d1"])
    with pytest.raises(NotFoundError):
        await vother.vector_collection_drop("docs")
    # The same name in the other namespace is another collection, even of another size.
    await vother.vector_collection_create("docs", 3)
    await vother.vector_upsert("docs", [{"id": "d1", "embedding": [1, 0, 0], "content": "theirs"}])
    assert await vother.vector_count("docs") == 1 and await vdb.vector_count("docs") == 10
    assert (await vdb.vector_get("docs", "d1")).content == "document number 1"
    assert [h.id for h in await vother.vector_search("docs", [1, 0, 0], k=10)] == ["d1"]
    assert await vother.vector_delete("docs", ["d2", "d3"]) == 0
    await vother.vector_collection_drop("docs")
    assert await vdb.vector_count("docs") == 10


async def test_calls_are_counted_per_operation(vdb: UnifiedDB):
    await filled(vdb, n=5)
    await vdb.vector_search("docs", unit(1))
    with pytest.raises(InvalidInputError):
        await vdb.vector_search("docs", unit(math.nan))
    ops = vdb.get_stats()["operations"]
    assert ops["vector_search"]["count"] == 2 and ops["vector_search"]["errors"] == 1
    assert ops["vector_upsert"]["count"] == 1 and ops["vector_collection_create"]["count"] == 1


# ====================================================================== pgvector specifics


@pytest.fixture
def pgvector_only(has_pgvector: bool) -> None:
    if not has_pgvector:
        pytest.skip("this server has no pgvector")


async def test_hnsw_recall_against_exact_search(db: UnifiedDB, pgvector_only: None):
    await db.vector_collection_create("r", 16)
    vectors = rand_vectors(1500, 16, seed=11)
    await db.vector_upsert("r", [{"id": str(i), "embedding": v} for i, v in enumerate(vectors)])
    found = total = 0
    for q in rand_vectors(20, 16, seed=12):
        approx = {h.id for h in await db.vector_search("r", q, k=10)}
        exact = {h.id for h in await db.vector_search("r", q, k=10, exact=True)}
        assert exact == set(exact_top(vectors, q, 10, [str(i) for i in range(1500)]))
        found += len(approx & exact)
        total += 10
    assert found / total >= 0.9


async def test_searches_use_the_collection_hnsw_index_and_ef_search_takes_effect(
    db: UnifiedDB, pgvector_only: None
):
    from unified_db.vectors.pgvector import search_sql

    await db.vector_collection_create("r", 16)
    vectors = rand_vectors(300, 16, seed=2)
    await db.vector_upsert("r", [{"id": str(i), "embedding": v} for i, v in enumerate(vectors)])
    q = vectors[0].tolist()
    info = db._component("vectors").collections["r"]
    sql = search_sql(info, filtered=False, exact=False)
    async with db._acquire() as con:
        # A tiny table: make the planner choose the plan a big table gets.
        await con.execute("SET enable_seqscan = off")
        await con.execute("SET enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in await con.fetch("EXPLAIN " + sql, "default", q, 10, "40", "off"))
        assert f"Index Scan using vector_items_hnsw_{info.id}" in plan
        # ef_search bounds how many candidates one HNSW scan returns (iterative scans are
        # off without a filter): a tiny value cannot fill k=10, which proves the per-
        # statement setting reaches the scan.
        assert len(await con.fetch(sql, "default", q, 10, "3", "off")) - 1 < 10  # - the marker row
        assert len(await con.fetch(sql, "default", q, 10, "40", "off")) - 1 == 10
        # ... and that it stays local to the statement.
        assert await con.fetchval("SELECT current_setting('hnsw.ef_search')") == "40"


async def test_k_above_ef_search_still_returns_k_from_the_index(
    db_dsn: str, owner_dsn: str, pgvector_only: None
):
    from .. import pg

    con = await asyncpg.connect(owner_dsn)
    try:  # every new connection of this database plans like a big table: the HNSW index
        name = pg.urlsplit_db(db_dsn)
        await con.execute(f'ALTER DATABASE "{name}" SET enable_seqscan = off')
        await con.execute(f'ALTER DATABASE "{name}" SET enable_bitmapscan = off')
    finally:
        await con.close()
    async with UnifiedDB(db_dsn, max_size=2) as db:
        await db.vector_collection_create("r", 16)
        vectors = rand_vectors(300, 16, seed=8)
        await db.vector_upsert("r", [{"id": str(i), "embedding": v} for i, v in enumerate(vectors)])
        hits = await db.vector_search("r", vectors[5], k=150, ef_search=10)
        assert len(hits) == 150
        exact = exact_top(vectors, vectors[5], 150, [str(i) for i in range(300)])
        assert len({h.id for h in hits} & set(exact)) >= 135


async def test_deferred_index_is_built_once_and_an_invalid_one_again(
    db: UnifiedDB, owner_dsn: str, pgvector_only: None
):
    state = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)"
    await db.vector_collection_create("bulk", 16, build_index=False)
    info = db._component("vectors").collections["bulk"]
    index = f"unified_db.vector_items_hnsw_{info.id}"
    vectors = rand_vectors(400, 16, seed=21)
    await db.vector_upsert("bulk", [{"id": str(i), "embedding": v} for i, v in enumerate(vectors)])
    assert await db._fetchval(state, index) is None
    before = [h.id for h in await db.vector_search("bulk", vectors[3], k=10)]  # exact until built
    assert before == exact_top(vectors, vectors[3], 10, [str(i) for i in range(400)])
    assert await db.vector_collection_build_index("bulk") is True
    assert await db._fetchval(state, index) is True
    assert await db.vector_collection_build_index("bulk") is False
    # An interrupted CONCURRENTLY build leaves an invalid index behind: it is rebuilt (by
    # the owner concurrently, by the app role through vector_index_build()).
    admin = await asyncpg.connect(owner_dsn)
    try:
        await admin.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1::regclass", index)
    finally:
        await admin.close()
    assert await db.vector_collection_build_index("bulk") is True
    assert await db._fetchval(state, index) is True
    assert (await db.vector_search("bulk", vectors[3], k=1))[0].id == "3"
    await db.vector_collection_create("flat", 4, index="none")
    assert await db.vector_collection_build_index("flat") is False
    with pytest.raises(NotFoundError):
        await db.vector_collection_build_index("nope")
    for bad in (0, -1, "10", True):
        with pytest.raises(InvalidInputError, match="timeout"):
            await db.vector_collection_build_index("bulk", timeout=bad)
    with pytest.raises(InvalidInputError, match="build_index"):
        await db.vector_collection_create("other", 4, build_index="no")
    assert [c.name for c in await db.vector_collections()] == ["bulk", "flat"]


async def test_a_selective_filter_still_fills_k_through_iterative_scans(db: UnifiedDB, pgvector_only: None):
    await db.vector_collection_create("r", 16)
    vectors = rand_vectors(1000, 16, seed=4)
    await db.vector_upsert(
        "r",
        [{"id": str(i), "embedding": v, "metadata": {"rare": i % 100 == 0}} for i, v in enumerate(vectors)],
    )
    hits = await db.vector_search("r", vectors[1], k=10, filter={"rare": True}, ef_search=10)
    assert len(hits) == 10 and all(h.metadata["rare"] for h in hits)


async def test_a_collection_dropped_by_another_instance_is_not_served_from_cache(
    db_dsn: str, pgvector_only: None
):
    async with UnifiedDB(db_dsn, max_size=2) as a, UnifiedDB(db_dsn, max_size=2) as b:
        await a.vector_collection_create("docs", DIM)
        await a.vector_upsert("docs", [{"id": "x", "embedding": unit(1)}])
        assert await b.vector_count("docs") == 1  # b caches the catalog row
        await a.vector_collection_drop("docs")
        for call in (
            b.vector_count("docs"),
            b.vector_search("docs", unit(1)),
            b.vector_get("docs", "x"),
            b.vector_upsert("docs", [{"id": "y", "embedding": unit(1)}]),
        ):
            with pytest.raises(NotFoundError):
                await call
        # Recreated with another size: b notices the new row and checks the new size.
        await a.vector_collection_create("docs", 3)
        await a.vector_search("docs", [1, 0, 0])
        assert await b.vector_upsert("docs", [{"id": "z", "embedding": [0, 1, 0]}]) == 1
        with pytest.raises(InvalidInputError, match="dimensions"):
            await b.vector_upsert("docs", [{"id": "z", "embedding": unit(1)}])
        assert await a.vector_count("docs") == 1


async def test_concurrent_upserts_and_searches(db: UnifiedDB, pgvector_only: None):
    await db.vector_collection_create("docs", DIM)
    vectors = rand_vectors(200)

    async def writer(start: int) -> int:
        return await db.vector_upsert(
            "docs", [{"id": str(i), "embedding": vectors[i]} for i in range(start, start + 50)]
        )

    results = await asyncio.gather(
        *(writer(s) for s in range(0, 200, 50)), *(db.vector_search("docs", unit(1)) for _ in range(4))
    )
    assert results[:4] == [50, 50, 50, 50]
    assert await db.vector_count("docs") == 200


async def test_concurrent_first_creates_make_the_storage_once(db_dsn: str, pgvector_only: None):
    dbs = [UnifiedDB(db_dsn, min_size=1, max_size=1) for _ in range(5)]
    await asyncio.gather(*(d.open() for d in dbs))
    try:
        made = await asyncio.gather(*(d.vector_collection_create(f"c{i}", 4) for i, d in enumerate(dbs)))
        assert sorted(c.name for c in made) == [f"c{i}" for i in range(5)]
        assert len(await dbs[0].vector_collections()) == 5
    finally:
        await asyncio.gather(*(d.close() for d in dbs))


async def test_index_ddl_gives_up_on_a_long_held_lock_with_a_conflict(
    db: UnifiedDB, db_dsn: str, pgvector_only: None, monkeypatch: pytest.MonkeyPatch
):
    from unified_db.vectors import pgvector

    await db.vector_collection_create("first", 4)
    await db.vector_collection_create("deferred", 4, build_index=False)
    owner = await db._fetchval(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = 'unified_db.vector_items'::regclass"
    )
    monkeypatch.setattr(pgvector, "LOCK_TIMEOUT", "SELECT set_config('lock_timeout', '300ms', true)")
    holder = await asyncpg.connect(db_dsn)
    try:
        tr = holder.transaction()
        await tr.start()  # a long write transaction on the shared table
        await holder.execute("LOCK TABLE unified_db.vector_items IN ROW EXCLUSIVE MODE")
        with pytest.raises(ConflictError, match="stayed locked"):
            await db.vector_collection_create("second", 4)
        with pytest.raises(ConflictError, match="stayed locked"):
            await db.vector_collection_drop("first")
        if not owner:  # the app role's deferred build is not concurrent: it waits like the others
            with pytest.raises(ConflictError, match="stayed locked"):
                await db.vector_collection_build_index("deferred")
        await tr.rollback()
    finally:
        await holder.close()
    assert [c.name for c in await db.vector_collections()] == ["deferred", "first"]  # nothing half-done
    await db.vector_collection_create("second", 4)


async def test_reserved_collections_for_memory_snapshots(
    db: UnifiedDB, other_ns: UnifiedDB, pgvector_only: None
):
    from unified_db.extensions.vectors import SNAPSHOT_COLLECTION

    assert await db._vector_reserved_check(SNAPSHOT_COLLECTION, unit(1)) == unit(1)
    assert await db._vector_reserved_search(SNAPSHOT_COLLECTION, unit(1)) == []
    assert await db._vector_reserved_delete(SNAPSHOT_COLLECTION, ["s1"]) == 0
    await db._vector_reserved_upsert(
        SNAPSHOT_COLLECTION, "s1", unit(1), content="first", metadata={"agent": "a"}
    )
    await db._vector_reserved_upsert(SNAPSHOT_COLLECTION, "s2", unit(0, 1), metadata={"agent": "b"})
    hits = await db._vector_reserved_search(SNAPSHOT_COLLECTION, unit(1, 0.1), k=5)
    assert [h.id for h in hits] == ["s1", "s2"]
    assert [
        h.id for h in await db._vector_reserved_search(SNAPSHOT_COLLECTION, unit(1), filter={"agent": "b"})
    ] == ["s2"]
    assert await other_ns._vector_reserved_search(SNAPSHOT_COLLECTION, unit(1)) == []
    assert await db._vector_reserved_delete(SNAPSHOT_COLLECTION, ["s1"]) == 1
    for bad in (unit(1)[:3], unit(math.nan), [0.0] * DIM, "x"):  # once it exists, its length counts
        with pytest.raises(InvalidInputError):
            await db._vector_reserved_check(SNAPSHOT_COLLECTION, bad)
    # Reserved names are not reachable through the public methods, nor listed as user data.
    with pytest.raises(InvalidInputError):
        await db.vector_count(SNAPSHOT_COLLECTION)
    assert await db.vector_collections() == []


async def test_migrations_down_and_up_with_vector_storage_present(empty_dsn: str, pgvector_only: None):
    from unified_db.migrate import load_migrations

    async with UnifiedDB(empty_dsn) as db:
        await db.vector_collection_create("docs", DIM)
        await db.vector_upsert("docs", [{"id": "a", "embedding": unit(1)}])
        reverted = await db.migrate_down(len(load_migrations()))
        assert reverted[0] == max(m.version for m in load_migrations())
        left = await db._fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'unified_db' AND tablename LIKE 'vector%'"
        )
        assert left == []
        await db.migrate()
        db._component("vectors").collections.clear()
        with pytest.raises(NotFoundError):
            await db.vector_count("docs")
        await db.vector_collection_create("docs", DIM)
        assert await db.vector_count("docs") == 0


# ====================================================================== without pgvector


async def test_server_without_pgvector_raises_feature_unavailable(db: UnifiedDB, has_pgvector: bool):
    if has_pgvector:
        pytest.skip("this server has pgvector; run with UNIFIED_DB_TEST_DSN naming one without it")
    h = await db.health()
    assert h.ok  # migrations applied, the rest works
    calls = [
        db.vector_collection_create("docs", DIM),
        db.vector_collections(),
        db.vector_upsert("docs", [{"id": "a", "embedding": unit(1)}]),
        db.vector_search("docs", unit(1)),
        db.vector_hybrid_search("docs", "t", unit(1)),
        db.vector_get("docs", "a"),
        db.vector_delete("docs", ["a"]),
        db.vector_count("docs"),
        db.vector_collection_drop("docs"),
    ]
    for call in calls:
        with pytest.raises(FeatureUnavailableError, match=r"extension `vector` \(pgvector\).*install"):
            await call
    assert await db._fetchval("SELECT count(*) FROM __schema__.vector_collections") == 0
    # Bad input is still reported as such first.
    with pytest.raises(InvalidInputError):
        await db.vector_collection_create("docs", 0)


def test_random_seed_is_stable():
    # The contract tests compare against numpy's exact ranking of seeded vectors.
    assert random.Random(1).random() == random.Random(1).random()


async def test_weaviate_backend_without_a_server_says_what_is_missing(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
):
    pytest.importorskip("weaviate", reason="weaviate-client is not installed")
    monkeypatch.delenv("UNIFIED_DB_WEAVIATE_URL", raising=False)
    async with UnifiedDB(db_dsn, vector_backend="weaviate", max_size=2) as db:
        assert (await db.health()).ok  # the rest of the instance works
        with pytest.raises(FeatureUnavailableError, match="UNIFIED_DB_WEAVIATE_URL"):
            await db.vector_collection_create("docs", DIM)
        with pytest.raises(FeatureUnavailableError, match="UNIFIED_DB_WEAVIATE_URL"):
            await db.vector_count("docs")
    async with UnifiedDB(
        db_dsn, vector_backend="weaviate", weaviate_url="http://127.0.0.1:1", max_size=2
    ) as db:
        with pytest.raises(FeatureUnavailableError, match="cannot reach Weaviate"):
            await db.vector_collection_create("docs", DIM)
        assert await db._fetchval("SELECT count(*) FROM __schema__.vector_collections") == 0

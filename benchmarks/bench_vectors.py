"""Vectors: HNSW recall@10 and queries per second against exact search, and upsert throughput.

Random 384-dimension vectors (standard normal: harder for HNSW than real embeddings,
whose neighbourhoods are clustered). The exact top 10 comes from numpy over the same
float32 data. unified_db is measured against the floor, raw asyncpg running the very
SQL unified_db sends through a pool of the same size, in alternating rounds.
"""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg
import numpy as np

from unified_db import UnifiedDB
from unified_db.vectors.pgvector import UPSERT, search_sql

from .common import Context, Row, interleaved, rate, raw_pool

DIMS = 384
POOL = 4
BATCH = 500
SECTION = "vectors (pgvector, 384 dimensions)"


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def _recall(found: list[list[str]], truth: list[list[str]]) -> float:
    hit = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hit / sum(len(t) for t in truth)


async def run(ctx: Context) -> list[Row]:
    n = ctx.scale(100_000, 5_000)
    n_queries = ctx.scale(100, 20)
    admin = await ctx.admin()
    if not await admin.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
    ):
        await admin.close()
        ctx.notes.append("vectors: skipped, the server has no pgvector")
        return []
    name = f"udb_bench_vectors_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{name}"')  # constant prefix and a pid
    dsn = _with_database(ctx.dsn, name)
    rows: list[Row] = []
    try:
        async with UnifiedDB(dsn, min_size=POOL, max_size=POOL, namespace="bench") as db:
            floor = await raw_pool(dsn, POOL)
            try:
                rows += await _bench(ctx, db, floor, n, n_queries)
            finally:
                await floor.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return rows


async def _bench(ctx: Context, db: UnifiedDB, floor: asyncpg.Pool, n: int, n_queries: int) -> list[Row]:
    rows: list[Row] = []
    rng = np.random.default_rng(384)
    data = rng.standard_normal((n, DIMS), dtype=np.float32)
    ids = [f"v{i}" for i in range(n)]

    # ------------------------------------------------------------ upsert throughput
    # Into an unindexed collection, so the figure is the client + SQL path; HNSW
    # maintenance is measured separately by the bulk load below.
    await db.vector_collection_create("upsert", DIMS, index="none")
    info = db._component("vectors").collections["upsert"]
    upsert_sql = db._sql(UPSERT)
    batch_vectors = [data[i] for i in range(BATCH)]
    counter = iter(range(10**9))

    async def ud_upsert() -> None:
        tag = next(counter)
        await db.vector_upsert(
            "upsert",
            [
                {"id": f"u{tag}-{i}", "embedding": v, "content": "benchmark item", "metadata": {"i": i}}
                for i, v in enumerate(batch_vectors)
            ],
        )

    async def raw_upsert() -> None:
        tag = next(counter)
        flat: list[float] = []
        for v in batch_vectors:  # the same numpy input, converted as a raw user would
            flat.extend(v.tolist())
        await floor.execute(
            upsert_sql,
            "bench",
            info.id,
            [f"u{tag}-{i}" for i in range(BATCH)],
            flat,
            ["benchmark item"] * BATCH,
            [{"i": i} for i in range(BATCH)],
        )

    calls = ctx.scale(20, 4)
    res = await interleaved({"ud": ud_upsert, "raw": raw_upsert}, calls)
    rows.append(
        Row(
            SECTION,
            f"upsert, batches of {BATCH} (numpy input, no index)",
            res["ud"] * BATCH,
            "items/s",
            floor=res["raw"] * BATCH,
        )
    )

    # ------------------------------------------------------------ inserts into a live HNSW index
    live_n = ctx.scale(4_000, 1_000)
    await db.vector_collection_create("live", DIMS)
    start = time.perf_counter()
    await _load(db, "live", data[:live_n], ids[:live_n], tasks=2, batch=BATCH)
    rows.append(
        Row(
            SECTION,
            f"insert {live_n:,} items into a live HNSW index (2 tasks)",
            live_n / (time.perf_counter() - start),
            "items/s",
        )
    )

    # ------------------------------------------------------------ the two data sets
    # Isotropic vectors twice: with the default graph, and with the larger graph
    # (m=48, ef_construction=400: ten minutes of build here) that reaches recall 0.95.
    for label, make, m, efc, efs in (
        ("low-rank", _low_rank, 16, 64, (40, 100, 200, 400)),
        ("isotropic", _isotropic, 16, 64, (100, 400, 1000)),
        ("isotropic", _isotropic, 48, 400, (100, 400, 1000)),
    ):
        vectors = make(np.random.default_rng(7), n)
        queries = make(np.random.default_rng(8), n_queries)
        rows += await _search_rows(ctx, db, floor, label, vectors, queries, m=m, ef_construction=efc, efs=efs)
    return rows


def _low_rank(rng: np.random.Generator, n: int) -> np.ndarray:
    """Vectors of intrinsic dimension 32 spread over 384 dimensions, with a little noise.

    Sentence embeddings look like this (a few dozen effective dimensions); it is the
    data HNSW is built for. The same seed gives the same basis for data and queries.
    """
    basis = np.random.default_rng(384).standard_normal((32, DIMS), dtype=np.float32)
    return (rng.standard_normal((n, 32), dtype=np.float32) @ basis) + 0.1 * rng.standard_normal(
        (n, DIMS), dtype=np.float32
    )


def _isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    """Independent standard normal coordinates: the worst case for any ANN index, since
    in 384 dimensions every distance is nearly the same."""
    return rng.standard_normal((n, DIMS), dtype=np.float32)


async def _load(
    db: UnifiedDB, name: str, vectors: np.ndarray, ids: list[str], *, tasks: int, batch: int
) -> None:
    async def part(k: int) -> None:
        for lo in range(k * batch, len(ids), tasks * batch):
            hi = min(len(ids), lo + batch)
            await db.vector_upsert(name, [{"id": ids[i], "embedding": vectors[i]} for i in range(lo, hi)])

    await asyncio.gather(*(part(k) for k in range(tasks)))


async def _search_rows(
    ctx: Context,
    db: UnifiedDB,
    floor: asyncpg.Pool,
    label: str,
    data: np.ndarray,
    queries: np.ndarray,
    *,
    m: int,
    ef_construction: int,
    efs: tuple[int, ...],
) -> list[Row]:
    rows: list[Row] = []
    n, n_queries = len(data), len(queries)
    ids = [f"v{i}" for i in range(n)]
    section = f"vectors: {n:,} {label} 384-d vectors, HNSW m={m}, ef_construction={ef_construction}"
    name = f"bench-{label}-{m}-{ef_construction}"
    await db.vector_collection_create(name, DIMS, m=m, ef_construction=ef_construction, build_index=False)
    start = time.perf_counter()
    await _load(db, name, data, ids, tasks=2, batch=2000)
    rows.append(
        Row(
            section,
            f"load {n:,} items (index deferred, 2 tasks)",
            n / (time.perf_counter() - start),
            "items/s",
        )
    )
    start = time.perf_counter()
    await db.vector_collection_build_index(name)
    rows.append(
        Row(section, "then build the HNSW index", time.perf_counter() - start, "s", higher_is_better=False)
    )
    await db._execute("ANALYZE __schema__.vector_items")

    normed = data / np.linalg.norm(data, axis=1, keepdims=True)
    truth = []
    for q in queries:
        sims = normed @ (q / np.linalg.norm(q))
        top = np.argpartition(-sims, 10)[:10]
        truth.append([ids[i] for i in top[np.argsort(-sims[top])]])
    qlists = [q.tolist() for q in queries]
    info = db._component("vectors").collections[name]
    raw_sql = db._sql(search_sql(info, filtered=False, exact=False))
    counter = iter(range(10**9))
    default_ef, mark, met = db.settings.vector_ef_search, " (default)", False
    for ef in efs:
        found = [[h.id for h in await db.vector_search(name, q, k=10, ef_search=ef)] for q in qlists]
        recall = _recall(found, truth)
        target = ""  # on the first row that reaches 0.95, and on the default's when it does not
        if recall >= 0.95 and not met:
            target, met = "recall >= 0.95: met", True
        elif ef == default_ef and recall < 0.95:
            target = "recall >= 0.95: not met"

        async def ud_search(ef: int = ef) -> None:
            await db.vector_search(name, qlists[next(counter) % n_queries], k=10, ef_search=ef)

        async def raw_search(ef: int = ef) -> None:
            await floor.fetch(raw_sql, "bench", qlists[next(counter) % n_queries], 10, str(ef), "off")

        qps = await interleaved({"ud": ud_search, "raw": raw_search}, ctx.scale(200, 40))
        rows.append(
            Row(
                section,
                f"HNSW k=10, ef_search={ef}{mark if ef == default_ef else ''}: recall@10 {recall:.3f}",
                qps["ud"],
                "queries/s",
                floor=qps["raw"],
                target=target,
            )
        )
    concurrent = await rate(
        lambda: db.vector_search(name, qlists[next(counter) % n_queries], k=10), ctx.scale(400, 80), POOL
    )
    rows.append(Row(section, f"HNSW k=10, default ef_search, {POOL} tasks", concurrent, "queries/s"))
    exact_found = []
    start = time.perf_counter()
    for q in qlists[: ctx.scale(10, 5)]:
        exact_found.append([h.id for h in await db.vector_search(name, q, k=10, exact=True)])
    rows.append(
        Row(
            section,
            f"exact k=10 (full scan): recall@10 {_recall(exact_found, truth[: len(exact_found)]):.3f}",
            len(exact_found) / (time.perf_counter() - start),
            "queries/s",
        )
    )
    await db.vector_collection_drop(name)
    return rows

"""Vectors: HNSW recall@10 and queries per second against exact search, and upsert throughput.

Random 384-dimension vectors (standard normal: harder for HNSW than real embeddings,
whose neighbourhoods are clustered). The exact top 10 comes from numpy over the same
float32 data. unified_db is measured against the floor, raw asyncpg running the very
SQL unified_db sends through a pool of the same size, in alternating rounds.
"""

from __future__ import annotations

import os
import time

import asyncpg
import numpy as np

from unified_db import UnifiedDB
from unified_db.codecs import register_json_codecs
from unified_db.vectors.pgvector import UPSERT, search_sql

from .common import Context, Row, interleaved

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
    n_queries = ctx.scale(100, 30)
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
            floor = await asyncpg.create_pool(dsn, min_size=POOL, max_size=POOL, init=register_json_codecs)
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
    batch_lists = [v.tolist() for v in batch_vectors]
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
        for v in batch_lists:
            flat.extend(v)
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

    # ------------------------------------------------------------ bulk load into HNSW
    await db.vector_collection_create("bench", DIMS)  # hnsw, m=16, ef_construction=64
    start = time.perf_counter()
    for lo in range(0, n, 2000):
        await db.vector_upsert(
            "bench", [{"id": ids[i], "embedding": data[i]} for i in range(lo, min(n, lo + 2000))]
        )
    load = n / (time.perf_counter() - start)
    rows.append(Row(SECTION, f"load {n:,} items into the HNSW index (vector_upsert)", load, "items/s"))
    await db._execute("ANALYZE __schema__.vector_items")

    # ------------------------------------------------------------ recall and QPS
    queries = rng.standard_normal((n_queries, DIMS), dtype=np.float32)
    normed = data / np.linalg.norm(data, axis=1, keepdims=True)
    truth = []
    for q in queries:
        sims = normed @ (q / np.linalg.norm(q))
        top = np.argpartition(-sims, 10)[:10]
        truth.append([ids[i] for i in top[np.argsort(-sims[top])]])
    qlists = [q.tolist() for q in queries]

    info = db._component("vectors").collections["bench"]
    raw_sql = db._sql(search_sql(info, filtered=False, exact=False))
    for ef in (40, 100, 200):
        found = [[h.id for h in await db.vector_search("bench", q, k=10, ef_search=ef)] for q in qlists]
        recall = _recall(found, truth)

        async def ud_search(ef: int = ef) -> None:
            await db.vector_search("bench", qlists[next(counter) % n_queries], k=10, ef_search=ef)

        async def raw_search(ef: int = ef) -> None:
            await floor.fetch(raw_sql, "bench", qlists[next(counter) % n_queries], 10, str(ef), "off")

        qps = await interleaved({"ud": ud_search, "raw": raw_search}, ctx.scale(300, 60))
        rows.append(
            Row(
                SECTION,
                f"HNSW search k=10, ef_search={ef}: recall@10 {recall:.3f}",
                qps["ud"],
                "queries/s",
                floor=qps["raw"],
                target="recall >= 0.95" if ef == db.settings.vector_ef_search else "",
            )
        )
        if ef == db.settings.vector_ef_search:
            ctx.notes.append(
                f"vectors: default ef_search={ef} gives recall@10 {recall:.3f} over {n:,} vectors"
            )

    concurrent = await interleaved(
        {
            "ud": lambda: db.vector_search("bench", qlists[next(counter) % n_queries], k=10),
        },
        ctx.scale(400, 80),
        concurrency=POOL,
    )
    rows.append(
        Row(SECTION, f"HNSW search k=10, default ef_search, {POOL} tasks", concurrent["ud"], "queries/s")
    )

    exact_found = []
    start = time.perf_counter()
    for q in qlists[: ctx.scale(10, 5)]:
        exact_found.append([h.id for h in await db.vector_search("bench", q, k=10, exact=True)])
    exact_qps = len(exact_found) / (time.perf_counter() - start)
    rows.append(
        Row(
            SECTION,
            f"exact search k=10 (full scan): recall@10 {_recall(exact_found, truth[: len(exact_found)]):.3f}",
            exact_qps,
            "queries/s",
        )
    )
    return rows

"""Memory snapshots: create and latest-get (10 KB and 1 MB states), full-text search p95.

The floor is raw asyncpg running the very same SQL (rendered by the library) through an
asyncpg pool of the same size with the same JSON codecs. There is no peer: Redis has no
versioned, searchable snapshots to compare with.

The search corpus (1,000,000 snapshots, 20,000 with --quick) is generated inside the
server with generate_series: 8 words per state drawn from a 5,000-word vocabulary, so a
single word matches ~0.16% of the snapshots.
"""

from __future__ import annotations

import random
import time

import asyncpg
import orjson

from unified_db import UnifiedDB
from unified_db.extensions import memory as mem

from .common import Context, Row, interleaved, latencies, pct, raw_pool

SECTION = "memory snapshots"
POOL = 4
VOCAB = 5000

_VOCAB_SQL = """
CREATE TABLE IF NOT EXISTS public.bench_vocab AS
SELECT k, substr(translate(md5(k::text), '0123456789', 'ghijklmnop'), 1, 5 + k % 4) AS w
  FROM generate_series(0, 4999) k
"""
# Rows are made in the server; the GIN index is dropped for the load and rebuilt from its
# own definition afterwards (the usual bulk-load practice).
_FILL_SQL = """
WITH v AS (SELECT array_agg(w ORDER BY k) AS a FROM public.bench_vocab)
INSERT INTO __schema__.memory_snapshots (namespace, agent_id, version, state, label, tags, size_bytes)
SELECT 'bench', 'agent-' || (g % 1000), g / 1000 + 1,
       jsonb_build_object(
           'note', array_to_string(ARRAY[
               v.a[1 + abs(hashint8(g * 16 + 1)) % $3], v.a[1 + abs(hashint8(g * 16 + 2)) % $3],
               v.a[1 + abs(hashint8(g * 16 + 3)) % $3], v.a[1 + abs(hashint8(g * 16 + 4)) % $3],
               v.a[1 + abs(hashint8(g * 16 + 5)) % $3]], ' '),
           'plan', jsonb_build_array(v.a[1 + abs(hashint8(g * 16 + 6)) % $3],
                                     v.a[1 + abs(hashint8(g * 16 + 7)) % $3]),
           'step', g),
       v.a[1 + abs(hashint8(g * 16 + 8)) % $3],
       ARRAY['t' || (g % 10)],
       120
  FROM v, generate_series($1::bigint, $2::bigint) g
"""


def _state(size: int, seed: int) -> dict:
    rnd = random.Random(seed)
    words = [f"word{rnd.randrange(50_000)}" for _ in range(size // 9 + 1)]
    chunk = 200
    return {
        "agent": "bench",
        "messages": [
            {"role": "user" if i % 2 else "assistant", "text": " ".join(words[i : i + chunk])}
            for i in range(0, len(words), chunk)
        ],
        "counters": {"steps": seed, "tokens": size},
    }


async def _fill(db: UnifiedDB, n: int, ctx: Context) -> float:
    start = time.perf_counter()
    async with db._acquire() as con:
        await con.raw.execute(_VOCAB_SQL)
        indexdef = await con.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'memory_snapshots_search' AND schemaname = $1",
            db.schema,
        )
        await con.execute("DROP INDEX __schema__.memory_snapshots_search")
        chunk = 100_000
        for lo in range(0, n, chunk):
            await con.execute(_FILL_SQL, lo, min(n, lo + chunk) - 1, VOCAB, timeout=600)
        await con.raw.execute("SET maintenance_work_mem = '256MB'")
        await con.raw.execute(indexdef, timeout=1200)
        await con.raw.execute("RESET maintenance_work_mem")
        await con.execute("VACUUM ANALYZE __schema__.memory_snapshots", timeout=600)
    return time.perf_counter() - start


async def run(ctx: Context) -> list[Row]:
    dsn = await ctx.fresh_database("memory")
    rows: list[Row] = []
    try:
        async with UnifiedDB(dsn, namespace="bench", min_size=POOL, max_size=POOL) as db:
            floor = await raw_pool(dsn, POOL)
            try:
                rows += await _create_and_latest(ctx, db, floor)
                rows += await _search(ctx, db, floor)
            finally:
                await floor.close()
    finally:
        await ctx.drop_database(dsn)
    return rows


async def _create_and_latest(ctx: Context, db: UnifiedDB, floor: asyncpg.Pool) -> list[Row]:
    rows: list[Row] = []
    create_sql, latest_sql = db._sql(mem._CREATE), db._sql(mem._LATEST)
    for label, size, n_create, n_get in (
        ("10 KB", 10_000, ctx.scale(400, 40), ctx.scale(2000, 200)),
        ("1 MB", 1_000_000, ctx.scale(40, 6), ctx.scale(200, 20)),
    ):
        state = _state(size, 1)
        encoded = orjson.dumps(state)
        agent = f"agent-{label.replace(' ', '')}"

        async def lib_create(state=state, agent=agent) -> object:
            return await db.memory_snapshot_create(agent, state, tags=["bench"])

        async def raw_create(state=state, agent=agent) -> object:
            # What the library sends: the same SQL and parameters, the state encoded once.
            data = orjson.dumps(state)
            return await floor.fetchrow(
                create_sql,
                "bench",
                agent,
                orjson.Fragment(data),
                None,
                ["bench"],
                orjson.Fragment(b"{}"),
                len(data),
            )

        created = await interleaved({"lib": lib_create, "raw": raw_create}, n_create)
        rows.append(
            Row(
                SECTION,
                f"create, {label} state (len {len(encoded):,} B)",
                created["lib"],
                floor=created["raw"],
            )
        )

        async def lib_latest(agent=agent) -> object:
            return await db.memory_snapshot_latest(agent)

        async def raw_latest(agent=agent) -> object:
            return await floor.fetchrow(latest_sql, "bench", agent)

        got = await interleaved({"lib": lib_latest, "raw": raw_latest}, n_get)
        rows.append(Row(SECTION, f"latest-get, {label} state", got["lib"], floor=got["raw"]))
        if size == 10_000:
            # Writers of one agent queue on its head row: what that costs with a full pool.
            busy = await interleaved({"lib": lib_create, "raw": raw_create}, n_create, concurrency=POOL * 2)
            rows.append(
                Row(
                    SECTION,
                    f"create, {label} state, {POOL * 2} concurrent writers of one agent",
                    busy["lib"],
                    floor=busy["raw"],
                )
            )
    return rows


async def _search(ctx: Context, db: UnifiedDB, floor: asyncpg.Pool) -> list[Row]:
    n = ctx.scale(1_000_000, 20_000)
    seconds = await _fill(db, n, ctx)
    ctx.notes.append(f"memory: generated and indexed {n:,} snapshots in {seconds:.0f}s")
    vocab = [r["w"] for r in await db._fetch("SELECT w FROM public.bench_vocab ORDER BY k")]
    rnd = random.Random(7)

    def query() -> str:
        a, b = rnd.choice(vocab), rnd.choice(vocab)
        kind = rnd.randrange(4)
        return [a, f"{a} {b}", f"{a} or {b}", f"{a} -{b}"][kind]

    queries = [query() for _ in range(ctx.scale(300, 60))]
    search_sql = db._sql(mem._SEARCH)
    hits = 0

    async def lib_op() -> object:
        nonlocal hits
        found = await db.memory_snapshot_search(queries[lib_op.i % len(queries)], limit=20)
        lib_op.i += 1
        hits += len(found)
        return found

    async def raw_op() -> object:
        q = queries[raw_op.i % len(queries)]
        raw_op.i += 1
        return await floor.fetch(search_sql, "bench", q, None, None, 20, mem.EXCERPT_SOURCE_CHARS, False)

    lib_op.i = raw_op.i = 0  # type: ignore[attr-defined]
    # One unmeasured pass over every query first: whoever ran a query first would otherwise
    # pay for reading its pages into the cache, and the other would not.
    for _ in queries:
        await raw_op()
    for _ in range(10):  # and past the custom-plan phase of the library's prepared statement
        await lib_op()
    hits = lib_op.i = 0  # type: ignore[attr-defined]
    lib_ms: list[float] = []
    raw_ms: list[float] = []
    for round_ in range(4):  # alternate who goes first so machine noise hits both alike
        pair = [(lib_op, lib_ms), (raw_op, raw_ms)]
        for op, out in pair if round_ % 2 == 0 else reversed(pair):
            out += await latencies(op, len(queries))
    lib_ms.sort()
    raw_ms.sort()
    ctx.notes.append(
        f"memory: search mix (word, two words, a or b, a -b) over {n:,} snapshots: "
        f"p50 {pct(lib_ms, 50):.1f} ms, p99 {pct(lib_ms, 99):.1f} ms, "
        f"{hits / max(1, lib_op.i):.1f} hits per query"  # type: ignore[attr-defined]
    )
    return [
        Row(
            SECTION,
            f"full-text search p95 over {n:,} snapshots",
            pct(lib_ms, 95),
            unit="ms",
            floor=pct(raw_ms, 95),
            target="< 50 ms",
            higher_is_better=False,
        )
    ]

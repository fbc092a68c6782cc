"""Personas: persona_get (with and without the near-cache) and paginated persona_list at
10k and 1M personas, persona_get_for_user, import of 10k.

The floor is raw asyncpg running the same SQL (rendered by the same instance) through a
pool of the same size, measured alternately with unified_db in the same run. Personas
beyond the imported ones are generated server-side (INSERT ... SELECT generate_series).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from unified_db import UnifiedDB
from unified_db.extensions import personas as P

from .common import Context, Row, interleaved, pct, raw_pool

NAMESPACE = "bench"
TYPES = ["standard", "enhanced-development", "meta-orchestration", "metrics-intelligence"]
POOL = 4

# Generated rows look like imported ones: a few hundred bytes of prompt, a list, an object.
GENERATE = """
INSERT INTO __schema__.personas (namespace, name, display_name, role, system_prompt, expertise,
                                 personality_traits, persona_type)
SELECT $1, 'p-' || lpad(g::text, 7, '0'), 'Persona ' || g, 'role ' || (g % 50),
       'You are persona ' || g || '. Answer precisely, cite your sources, keep it short.',
       ARRAY['python', 'sql'], '{"tone": "neutral"}'::jsonb,
       (ARRAY['standard', 'enhanced-development', 'meta-orchestration', 'metrics-intelligence'])[1 + g % 4]
  FROM generate_series($2::int, $3::int) AS g
"""


def _name(i: int) -> str:
    return f"p-{i:07d}"


async def _grow(db: UnifiedDB, have: int, want: int) -> None:
    step = 200_000
    for start in range(have + 1, want + 1, step):
        await db._execute(GENERATE, NAMESPACE, start, min(want, start + step - 1), timeout=600)
    await db._execute("ANALYZE __schema__.personas", timeout=600)


async def _paired_latencies(
    ops: dict[str, Callable[[], Awaitable[object]]], n: int
) -> dict[str, list[float]]:
    """Per-call latencies in ms of each op, called alternately so noise hits all alike."""
    out: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(min(200, n)):  # warm-up: prepared statements, caches
        for op in ops.values():
            await op()
    for _ in range(n):
        for name, op in ops.items():
            start = time.perf_counter()
            await op()
            out[name].append((time.perf_counter() - start) * 1000)
    for v in out.values():
        v.sort()
    return out


def _items(n: int, prefix: str) -> list[dict]:
    return [
        {
            "name": f"{prefix}-{i:05d}",
            "display_name": f"Imported {i}",
            "role": "specialist",
            "description": "An imported persona. " * 5,
            "system_prompt": f"You are imported persona {i}. " + "Be accurate and brief. " * 10,
            "expertise": ["python", "postgres", f"topic-{i % 100}"],
            "personality_traits": {"tone": "calm", "formality": i % 5},
            "capabilities": {"tools": ["search", "code"]},
            "persona_type": TYPES[i % 4],
        }
        for i in range(n)
    ]


async def run(ctx: Context) -> list[Row]:
    admin = await ctx.admin()
    dbname = f"udb_bench_personas_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{dbname}"')  # a generated name, no input
    dsn = urlunsplit(urlsplit(ctx.dsn)._replace(path="/" + dbname))
    rows: list[Row] = []
    db = UnifiedDB(dsn, namespace=NAMESPACE, min_size=POOL, max_size=POOL)
    await db.open()
    raw = await raw_pool(dsn, POOL)
    try:
        get_sql = db._sql(P._GET)
        list_sql = db._sql(P._LIST_BY_TYPE)
        user_sql = db._sql(P._GET_FOR_USER)
        n = ctx.scale(3000, 300)
        sizes = [ctx.scale(10_000, 2_000), ctx.scale(1_000_000, 20_000)]
        have = 0
        for size in sizes:
            start = time.perf_counter()
            await _grow(db, have, size)
            ctx.notes.append(
                f"personas: generated {size - have:,} rows in {time.perf_counter() - start:.1f}s"
            )
            have = size
            label = f"{size:,} personas"
            rnd = random.Random(size)

            def pick(rnd: random.Random = rnd, size: int = size) -> str:
                return _name(rnd.randint(1, size))

            async def ud_get() -> object:
                return await db.persona_get(pick())

            async def raw_get() -> object:
                return await raw.fetchrow(get_sql, NAMESPACE, pick(), False)

            lat = await _paired_latencies({"ud": ud_get, "raw": raw_get}, n)
            rows.append(
                Row(
                    "personas: persona_get",
                    f"p99 latency, {label}",
                    pct(lat["ud"], 99),
                    "ms",
                    floor=pct(lat["raw"], 99),
                    higher_is_better=False,
                    target="flat from 10k to 1M",
                )
            )
            rows.append(
                Row(
                    "personas: persona_get",
                    f"p50 latency, {label}",
                    pct(lat["ud"], 50),
                    "ms",
                    floor=pct(lat["raw"], 50),
                    higher_is_better=False,
                )
            )
            rates = await interleaved({"ud": ud_get, "raw": raw_get}, n, concurrency=16)
            rows.append(
                Row("personas: persona_get", f"ops/s, 16 tasks, {label}", rates["ud"], floor=rates["raw"])
            )

            # A page of 50 of one type, starting at a random depth: keyset pagination costs
            # the same on page 1 and page 5,000.
            async def ud_page() -> object:
                return await db.persona_list(persona_type="meta-orchestration", limit=50, cursor=pick())

            async def raw_page() -> object:
                return await raw.fetch(list_sql, NAMESPACE, pick(), False, None, 50, "meta-orchestration")

            lat = await _paired_latencies({"ud": ud_page, "raw": raw_page}, max(100, n // 5))
            rows.append(
                Row(
                    "personas: persona_list by type (pages of 50)",
                    f"p99 latency, random depth, {label}",
                    pct(lat["ud"], 99),
                    "ms",
                    floor=pct(lat["raw"], 99),
                    higher_is_better=False,
                    target="flat from 10k to 1M",
                )
            )
            rows.append(
                Row(
                    "personas: persona_list by type (pages of 50)",
                    f"p50 latency, random depth, {label}",
                    pct(lat["ud"], 50),
                    "ms",
                    floor=pct(lat["raw"], 50),
                    higher_is_better=False,
                )
            )

        # Users: half chose a persona, half fall back to the default.
        await db.persona_set_default(_name(1))
        for u in range(200):
            await db.persona_set_user_preference(f"user-{u}", _name(1 + u * 7))
        urnd = random.Random(7)

        async def ud_user() -> object:
            return await db.persona_get_for_user(f"user-{urnd.randint(0, 399)}")

        async def raw_user() -> object:
            return await raw.fetchrow(user_sql, NAMESPACE, f"user-{urnd.randint(0, 399)}")

        lat = await _paired_latencies({"ud": ud_user, "raw": raw_user}, n)
        rows.append(
            Row(
                "personas: persona_get_for_user",
                f"p99 latency, {have:,} personas",
                pct(lat["ud"], 99),
                "ms",
                floor=pct(lat["raw"], 99),
                higher_is_better=False,
            )
        )

        # The near-cache: a hot set of 1,000 personas read again and again, served from L1
        # once read, against the same reads without L1 and raw asyncpg, alternately.
        near = UnifiedDB(dsn, namespace=NAMESPACE, min_size=POOL, max_size=POOL, cache_local_size=10_000)
        await near.open()
        try:
            hrnd = random.Random(11)
            hot = [_name(hrnd.randint(1, have)) for _ in range(1000)]

            def pick_hot(hrnd: random.Random = hrnd) -> str:
                return hot[hrnd.randrange(len(hot))]

            async def l1_get() -> object:
                return await near.persona_get(pick_hot())

            async def db_get() -> object:
                return await db.persona_get(pick_hot())

            async def raw_hot_get() -> object:
                return await raw.fetchrow(get_sql, NAMESPACE, pick_hot(), False)

            for name in hot:  # fill L1 before measuring
                await near.persona_get(name)
            before = near.get_stats().get("persona_local_hits", 0)
            ops = {"l1": l1_get, "db": db_get, "raw": raw_hot_get}
            lat = await _paired_latencies(ops, n)
            hits = near.get_stats().get("persona_local_hits", 0) - before
            calls = n + min(200, n)
            ctx.notes.append(f"personas: near-cache hit ratio during the L1 run {hits / calls:.1%}")
            section = "personas: persona_get, near-cache (peer: no near-cache)"
            for q in (50, 99):
                rows.append(
                    Row(
                        section,
                        f"p{q} latency, hot set of 1,000, {have:,} personas",
                        pct(lat["l1"], q),
                        "ms",
                        floor=pct(lat["raw"], q),
                        peer=pct(lat["db"], q),
                        peer_name="no near-cache",
                        higher_is_better=False,
                    )
                )
            rates = await interleaved(ops, n * 4, concurrency=16)
            rows.append(
                Row(
                    section,
                    f"ops/s, 16 tasks, hot set of 1,000, {have:,} personas",
                    rates["l1"],
                    floor=rates["raw"],
                    peer=rates["db"],
                    peer_name="no near-cache",
                )
            )
        finally:
            await near.close()

        # Import: 10,000 new personas in one all-or-nothing call, then the same file again.
        count = ctx.scale(10_000, 2_000)
        items = _items(count, "imp")
        importer = UnifiedDB(dsn, namespace="import", min_size=1, max_size=2)
        await importer.open()
        try:
            start = time.perf_counter()
            report = await importer.persona_import(items, actor="bench")
            first = time.perf_counter() - start
            assert len(report.created) == count
            start = time.perf_counter()
            report = await importer.persona_import(items, actor="bench")
            again = time.perf_counter() - start
            assert len(report.unchanged) == count
            for item in items:
                item["description"] = "Changed."
            start = time.perf_counter()
            report = await importer.persona_import(items, actor="bench")
            changed = time.perf_counter() - start
            assert len(report.updated) == count
        finally:
            await importer.close()
        section = f"personas: persona_import of {count:,}"
        rows.append(
            Row(section, "new personas (created)", first, "s", higher_is_better=False, target="< 10 s")
        )
        rows.append(Row(section, "same file again (unchanged)", again, "s", higher_is_better=False))
        rows.append(Row(section, "every persona changed (updated)", changed, "s", higher_is_better=False))
    finally:
        await raw.close()
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()
    return rows

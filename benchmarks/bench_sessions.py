"""Sessions: ``session_get_by_token`` with touch against raw asyncpg and redis-py.

* unified_db: ``db.session_get_by_token(token)`` (validate + slide in one statement,
  returning a ``Session``).
* floor: raw asyncpg (a pool of the same size) hashing the token and running the same
  single statement, returning the Record.
* peer: redis-py reading a JSON session with GET plus EXPIRE (pipelined into one round
  trip, as a careful Redis user would) and decoding it.

Two touch regimes: the default (``last_accessed_at`` written at most once a minute, so
most calls only read) and ``session_touch_interval=0`` (every call writes). Tokens are
drawn round-robin from a few thousand live sessions.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import timedelta

import orjson

from unified_db import UnifiedDB
from unified_db.extensions.sessions import SQL_GET_BY_TOKEN_TOUCH

from .common import Context, Row, interleaved, raw_pool, redis_client

SCHEMA = "bench_sessions"
NAMESPACE = "bench"
POOL = 8
TARGET = ">= 0.9x asyncpg, >= 1x redis-py"


async def run(ctx: Context) -> list[Row]:
    n_sessions = ctx.scale(5000, 500)
    n_ops = ctx.scale(4000, 400)
    rounds = ctx.scale(5, 1)  # medians of 5 interleaved rounds: the machine is shared
    rows: list[Row] = []
    redis, why = await redis_client(ctx.redis_url)
    if redis is None:
        ctx.notes.append(f"sessions: no redis-py figures ({why})")
    admin = await ctx.admin()
    try:
        await admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        for touch_interval, label in ((60.0, "default touch interval 60 s"), (0.0, "touch on every call")):
            async with UnifiedDB(
                ctx.dsn,
                schema=SCHEMA,
                namespace=NAMESPACE,
                min_size=POOL,
                max_size=POOL,
                session_touch_interval=touch_interval,
            ) as db:
                tokens = []
                for _ in range(n_sessions):
                    s = await db.session_create(f"user-{len(tokens) % 500}", {"cart": [1, 2, 3], "n": 1})
                    tokens.append(s.token)
                if redis is not None:
                    pipe = redis.pipeline(transaction=False)
                    for i, t in enumerate(tokens):
                        pipe.set(f"bench:session:{t}", orjson.dumps({"user_id": f"user-{i % 500}", "n": 1}))
                    await pipe.execute()
                # The same orjson jsonb codec as unified_db, so both decode the data alike.
                pool = await raw_pool(ctx.dsn, POOL)
                sql = db._sql(SQL_GET_BY_TOKEN_TOUCH)
                interval = timedelta(seconds=touch_interval)
                try:
                    ops = _ops(db, pool, sql, interval, redis, tokens)
                    for concurrency in (1, 32):
                        got = await interleaved(ops, n_ops, concurrency=concurrency, rounds=rounds)
                        rows.append(
                            Row(
                                section="sessions: session_get_by_token with touch",
                                name=f"{label}, {concurrency} task{'s' if concurrency > 1 else ''}",
                                value=got["unified_db"],
                                floor=got["asyncpg"],
                                peer=got.get("redis"),
                                peer_name="redis-py GET+EXPIRE" if redis is not None else None,
                                target=TARGET,
                            )
                        )
                finally:
                    await pool.close()
            await admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        if redis is not None:
            keys = [k async for k in redis.scan_iter("bench:session:*", count=1000)]
            for i in range(0, len(keys), 1000):
                await redis.delete(*keys[i : i + 1000])
            await redis.aclose()
        await admin.close()
    return rows


def _ops(db, pool, sql, interval, redis, tokens):
    a, b, c = itertools.cycle(tokens), itertools.cycle(tokens), itertools.cycle(tokens)

    async def unified() -> object:
        s = await db.session_get_by_token(next(a))
        assert s is not None
        return s

    async def floor() -> object:
        digest = hashlib.sha256(next(b).encode()).digest()
        row = await pool.fetchrow(sql, digest, NAMESPACE, interval)
        assert row is not None
        return row

    ops = {"unified_db": unified, "asyncpg": floor}
    if redis is not None:

        async def peer() -> object:
            key = f"bench:session:{next(c)}"
            pipe = redis.pipeline(transaction=False)
            pipe.get(key)
            pipe.expire(key, 1800)
            value, _ = await pipe.execute()
            return orjson.loads(value)

        ops["redis"] = peer
    return ops

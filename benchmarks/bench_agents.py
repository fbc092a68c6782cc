"""Agents: LangGraph checkpoint put / get_tuple, and workflow_claim_next throughput.

LangGraph rows: unified_db's ``UnifiedCheckpointSaver`` against the floor (raw asyncpg
sending the very same SQL with parameters encoded once, outside the timing) and the peer,
``langgraph-checkpoint-postgres``'s ``AsyncPostgresSaver`` on a psycopg pool of the same
size, on the same server (its tables in ``public`` of the same database). The checkpoint
is shaped like a chat agent's: a 20-message list (a blob, new version at every step) and
a step counter (inline).

Workflow rows: ``workflow_claim_next`` by concurrent workers on a queue of pending runs,
against raw asyncpg running the same claim statement.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from unified_db import UnifiedDB
from unified_db.extensions import agents as ag
from unified_db.integrations import langgraph as lg

from .common import Context, Row, interleaved, raw_pool

SECTION_LG = "LangGraph checkpointer"
SECTION_WF = "workflow runs"
POOL = 4
PEER = "AsyncPostgresSaver"


def _messages(n: int = 20) -> list[dict[str, Any]]:
    return [
        {"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "lorem ipsum " * 8}
        for i in range(n)
    ]


class _Thread:
    """Checkpoints of one thread, each the child of the previous, as a graph makes them."""

    def __init__(self, saver: Any, thread_id: str) -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.parent: str | None = None
        self.version: Any = None
        self.step = 0
        self.messages = _messages()

    def next(self) -> tuple[dict, dict, dict, dict]:
        from langgraph.checkpoint.base.id import uuid6

        self.step += 1
        self.version = self.saver.get_next_version(self.version, None)
        checkpoint = {
            "v": 4,
            "id": str(uuid6(clock_seq=self.step)),
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_values": {"messages": self.messages, "step": self.step},
            "channel_versions": {"messages": self.version, "step": self.version},
            "versions_seen": {"agent": {"messages": self.version}},
            "updated_channels": ["messages", "step"],
        }
        config = {"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ""}}
        if self.parent:
            config["configurable"]["checkpoint_id"] = self.parent
        self.parent = checkpoint["id"]
        metadata = {"source": "loop", "step": self.step, "parents": {}}
        return config, checkpoint, metadata, {"messages": self.version, "step": self.version}


async def run(ctx: Context) -> list[Row]:
    dsn = await ctx.fresh_database("agents")
    rows: list[Row] = []
    try:
        async with UnifiedDB(dsn, namespace="bench", min_size=POOL, max_size=POOL) as db:
            floor = await raw_pool(dsn, POOL)
            try:
                rows += await _langgraph(ctx, db, floor, dsn)
                rows += await _claims(ctx, db, floor)
            finally:
                await floor.close()
    finally:
        await ctx.drop_database(dsn)
    return rows


async def _peer(dsn: str):
    """AsyncPostgresSaver on a psycopg pool of POOL connections, or (None, reason)."""
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as exc:
        return None, None, f"langgraph-checkpoint-postgres is not installed ({exc})"
    pool = AsyncConnectionPool(
        dsn,
        min_size=POOL,
        max_size=POOL,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open()
    saver = AsyncPostgresSaver(pool)
    await saver.setup()
    return saver, pool, None


async def _langgraph(ctx: Context, db: UnifiedDB, floor: asyncpg.Pool, dsn: str) -> list[Row]:
    ours = lg.UnifiedCheckpointSaver(db)
    peer, peer_pool, why = await _peer(dsn)
    if why:
        ctx.notes.append(f"agents: no peer: {why}")
    put_sql, get_sql = db._sql(lg.PUT), db._sql(lg.GET_LATEST)
    n_put, n_get = ctx.scale(1500, 150), ctx.scale(3000, 300)
    rows: list[Row] = []
    try:

        async def one(concurrency: int) -> list[Row]:
            out: list[Row] = []
            threads: dict[str, list[_Thread]] = {
                "ours": [_Thread(ours, f"ours-{concurrency}-{i}") for i in range(concurrency)],
                "peer": [_Thread(peer or ours, f"peer-{concurrency}-{i}") for i in range(concurrency)],
            }
            # The floor sends one precomputed parameter list, with fresh checkpoint ids.
            blob_type, blob = ours.serde.dumps_typed(_messages())
            cp_type, cp_data = ours.serde.dumps_typed({"v": 4, "channel_values": {"step": 1}})
            floor_thread = f"floor-{concurrency}"

            def picker(kind: str):
                counter = iter(range(10**9))

                def pick() -> _Thread:
                    return threads[kind][next(counter) % concurrency]

                return pick

            pick_ours, pick_peer = picker("ours"), picker("peer")

            async def ours_put() -> object:
                return await ours.aput(*pick_ours().next())

            async def peer_put() -> object:
                return await peer.aput(*pick_peer().next())

            async def floor_put() -> object:
                version = str(uuid.uuid4())
                return await floor.execute(
                    put_sql,
                    "bench",
                    floor_thread,
                    "",
                    ["messages"],
                    [version],
                    [blob_type],
                    [blob],
                    str(uuid.uuid4()),
                    None,
                    None,
                    cp_type,
                    cp_data,
                    ["messages"],
                    [version],
                    {"source": "loop", "step": 1, "parents": {}},
                )

            ops = {"ours": ours_put, "floor": floor_put}
            if peer is not None:
                ops["peer"] = peer_put
            put = await interleaved(ops, n_put, concurrency)
            out.append(
                Row(
                    SECTION_LG,
                    f"put (20-message state), {concurrency} task(s)",
                    put["ours"],
                    floor=put["floor"],
                    peer=put.get("peer"),
                    peer_name=PEER if peer is not None else None,
                    target=">= peer",
                )
            )

            cfg_ours = [
                {"configurable": {"thread_id": t.thread_id, "checkpoint_ns": ""}} for t in threads["ours"]
            ]
            cfg_peer = [
                {"configurable": {"thread_id": t.thread_id, "checkpoint_ns": ""}} for t in threads["peer"]
            ]
            gi = {"ours": 0, "peer": 0}

            async def ours_get() -> object:
                gi["ours"] += 1
                return await ours.aget_tuple(cfg_ours[gi["ours"] % concurrency])

            async def peer_get() -> object:
                gi["peer"] += 1
                return await peer.aget_tuple(cfg_peer[gi["peer"] % concurrency])

            async def floor_get() -> object:
                return await floor.fetchrow(get_sql, "bench", cfg_ours[0]["configurable"]["thread_id"], "")

            ops = {"ours": ours_get, "floor": floor_get}
            if peer is not None:
                ops["peer"] = peer_get
            got = await interleaved(ops, n_get, concurrency)
            out.append(
                Row(
                    SECTION_LG,
                    f"get_tuple (latest of the thread), {concurrency} task(s)",
                    got["ours"],
                    floor=got["floor"],
                    peer=got.get("peer"),
                    peer_name=PEER if peer is not None else None,
                    target=">= peer",
                )
            )
            return out

        for concurrency in (1, 8):
            rows += await one(concurrency)
        ctx.notes.append(
            "agents: the LangGraph floor sends the same statement with parameters encoded once "
            "(no msgpack, no tuple decoding); AsyncPostgresSaver serializes calls on one saver "
            "with an asyncio.Lock, so its concurrent rows measure that design"
        )
    finally:
        if peer_pool is not None:
            await peer_pool.close()
    return rows


async def _claims(ctx: Context, db: UnifiedDB, floor: asyncpg.Pool) -> list[Row]:
    n, concurrency, rounds = ctx.scale(2000, 200), 8, 3
    needed = int(rounds * 2 * (n + 50) * 1.2)
    await db._execute(
        "INSERT INTO __schema__.workflow_runs (namespace, name, input)"
        " SELECT 'bench', 'job', to_jsonb(g) FROM generate_series(1, $1) g",
        needed,
    )
    await db._execute("ANALYZE __schema__.workflow_runs")
    claim_sql = db._sql(ag.RUN_CLAIM)

    async def ours() -> object:
        return await db.workflow_claim_next(worker="bench")

    async def raw() -> object:
        return await floor.fetchrow(claim_sql, "bench", "bench")

    got = await interleaved({"ours": ours, "raw": raw}, n, concurrency, rounds)
    left = await db._fetchval("SELECT count(*) FROM __schema__.workflow_runs WHERE status = 'pending'")
    assert left > 0, "the queue ran dry: the figures would include empty claims"
    return [
        Row(
            SECTION_WF,
            f"workflow_claim_next, {concurrency} concurrent workers",
            got["ours"],
            floor=got["raw"],
            target="= floor",
        )
    ]

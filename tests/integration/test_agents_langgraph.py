"""The LangGraph checkpointer: LangGraph's conformance suite, a real graph, namespaces."""

from __future__ import annotations

import asyncio
import json
import operator
from typing import Annotated, TypedDict
from uuid import uuid4

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.test_utils import (  # noqa: E402
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402

from unified_db import ConflictError, InvalidInputError, UnifiedDB  # noqa: E402
from unified_db.integrations.langgraph import (  # noqa: E402
    PruneUnsupportedError,
    SyncCallUnavailableError,
    UnifiedCheckpointSaver,
)


async def counts(db: UnifiedDB) -> dict[str, int]:
    out = {}
    for table in ("lg_checkpoints", "lg_checkpoint_blobs", "lg_checkpoint_writes"):
        out[table] = await db._fetchval(f"SELECT count(*) FROM __schema__.{table}")
    return out


async def test_conformance_suite_passes_every_capability(db: UnifiedDB):
    @checkpointer_test(name="UnifiedCheckpointSaver")
    async def factory():
        yield UnifiedCheckpointSaver(db)

    report = await validate(factory)
    failures = {name: r.failures for name, r in report.results.items() if r.passed is not True}
    assert not failures, failures
    assert report.conformance_level() == "FULL"
    assert set(report.results) == {
        "put",
        "put_writes",
        "get_tuple",
        "list",
        "delete_thread",
        "delete_for_runs",
        "copy_thread",
        "prune",
    }
    assert all(r.detected and r.tests_passed > 0 for r in report.results.values())


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    approved: bool


def plan(state: State) -> dict:
    return {"steps": ["planned"]}


def review(state: State) -> dict:
    answer = interrupt({"question": "approve the plan?"})
    return {"steps": [f"reviewed:{answer}"], "approved": answer == "yes"}


def build_graph(saver: UnifiedCheckpointSaver):
    g = StateGraph(State)
    g.add_node("plan", plan)
    g.add_node("review", review)
    g.add_edge(START, "plan")
    g.add_edge("plan", "review")
    g.add_edge("review", END)
    return g.compile(checkpointer=saver)


async def test_a_two_node_graph_is_interrupted_and_resumed_by_a_new_saver(db: UnifiedDB, db_dsn: str):
    config = {"configurable": {"thread_id": "review-1"}}
    graph = build_graph(UnifiedCheckpointSaver(db))
    first = await graph.ainvoke({"steps": [], "approved": False}, config)
    assert first["steps"] == ["planned"]
    assert "__interrupt__" in first
    state = await graph.aget_state(config)
    assert state.next == ("review",)
    assert state.tasks[0].interrupts[0].value == {"question": "approve the plan?"}

    # Another process (a new pool, a new saver) resumes from what is in the database.
    async with UnifiedDB(db_dsn, min_size=1, max_size=2) as other_process:
        resumed_graph = build_graph(UnifiedCheckpointSaver(other_process))
        final = await resumed_graph.ainvoke(Command(resume="yes"), config)
    assert final["steps"] == ["planned", "reviewed:yes"] and final["approved"] is True

    history = [s async for s in graph.aget_state_history(config)]
    assert len(history) >= 4
    assert history[0].next == ()  # done
    # The message list is a blob keyed by version: stored once per change, not per step.
    blobs = await db._fetch(
        "SELECT channel, count(*) AS n FROM __schema__.lg_checkpoint_blobs GROUP BY channel"
    )
    assert {r["channel"]: r["n"] for r in blobs}["steps"] == 3  # [], [planned], [planned, reviewed]


async def test_checkpoints_are_namespaced(db: UnifiedDB, other_ns: UnifiedDB):
    mine, theirs = UnifiedCheckpointSaver(db), UnifiedCheckpointSaver(other_ns)
    cfg = generate_config("shared-thread")
    cp = generate_checkpoint(channel_values={"big": ["x"] * 3, "small": 1})
    cp["channel_versions"] = {"big": 1, "small": 1}
    stored = await mine.aput(cfg, cp, generate_metadata(run_id="r1"), {"big": 1, "small": 1})
    await mine.aput_writes(stored, [("ch", "v")], "task")

    assert await theirs.aget_tuple(cfg) is None
    assert [t async for t in theirs.alist(None)] == []
    await theirs.adelete_thread("shared-thread")
    await theirs.adelete_for_runs(["r1"])
    await theirs.aprune(["shared-thread"], strategy="delete")
    await theirs.acopy_thread("shared-thread", "copy")
    assert [t async for t in theirs.alist(None)] == []

    tup = await mine.aget_tuple(cfg)
    assert tup.checkpoint["channel_values"] == {"big": ["x", "x", "x"], "small": 1}
    assert tup.pending_writes == [("task", "ch", "v")]
    assert [t.config["configurable"]["thread_id"] async for t in mine.alist(None)] == ["shared-thread"]


async def test_prune_keep_latest_collects_unused_blobs_and_parent_links(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    parent = None
    for i in range(4):
        cfg = generate_config("t")
        if parent:
            cfg["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
        cp = generate_checkpoint(channel_values={"msgs": list(range(i + 1)), "same": {"k": 1}})
        cp["channel_versions"] = {"msgs": i + 1, "same": 1}
        parent = await saver.aput(
            cfg, cp, generate_metadata(step=i), {"msgs": i + 1, "same": 1} if i == 0 else {"msgs": i + 1}
        )
        await saver.aput_writes(parent, [("w", i)], f"task{i}")
    assert await counts(db) == {"lg_checkpoints": 4, "lg_checkpoint_blobs": 5, "lg_checkpoint_writes": 4}

    await saver.aprune(["t"], strategy="keep_latest")
    assert await counts(db) == {"lg_checkpoints": 1, "lg_checkpoint_blobs": 2, "lg_checkpoint_writes": 1}
    tup = await saver.aget_tuple(generate_config("t"))
    assert tup.checkpoint["channel_values"] == {"msgs": [0, 1, 2, 3], "same": {"k": 1}}
    assert tup.parent_config is None  # the parent is gone: no dangling link
    assert tup.pending_writes == [("task3", "w", 3)]


async def test_delete_for_runs_collects_blobs_only_the_run_used(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    cfg1 = generate_config("t")
    cp1 = generate_checkpoint(channel_values={"a": [1]})
    cp1["channel_versions"] = {"a": 1}
    s1 = await saver.aput(cfg1, cp1, generate_metadata(run_id="keep"), {"a": 1})
    cfg2 = generate_config("t", checkpoint_id=s1["configurable"]["checkpoint_id"])
    cp2 = generate_checkpoint(channel_values={"a": [1, 2]})
    cp2["channel_versions"] = {"a": 2}
    await saver.aput(cfg2, cp2, generate_metadata(run_id="drop"), {"a": 2})
    assert (await counts(db))["lg_checkpoint_blobs"] == 2
    await saver.adelete_for_runs(["drop"])
    assert await counts(db) == {"lg_checkpoints": 1, "lg_checkpoint_blobs": 1, "lg_checkpoint_writes": 0}
    assert (await saver.aget_tuple(generate_config("t"))).checkpoint["channel_values"] == {"a": [1]}


async def test_prune_refuses_delta_channel_threads(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    md = generate_metadata(counters_since_delta_snapshot={"msgs": [1, 1]})
    await saver.aput(generate_config("delta"), generate_checkpoint(), md, {})
    with pytest.raises(PruneUnsupportedError, match="delta"):
        await saver.aprune(["delta"])
    with pytest.raises(NotImplementedError):
        await saver.aprune(["delta"], strategy="keep_latest")
    assert (await counts(db))["lg_checkpoints"] == 1
    await saver.aprune(["delta"], strategy="delete")
    assert (await counts(db))["lg_checkpoints"] == 0


async def test_copy_to_a_thread_that_has_checkpoints_is_a_conflict(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    await saver.aput(generate_config("a"), generate_checkpoint(), generate_metadata(), {})
    await saver.aput(generate_config("b"), generate_checkpoint(), generate_metadata(), {})
    with pytest.raises(ConflictError, match="'b' already has checkpoints"):
        await saver.acopy_thread("a", "b")
    assert (await counts(db))["lg_checkpoints"] == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.aget_tuple({"configurable": {}}),
        lambda s: s.aput({"configurable": {"thread_id": ""}}, generate_checkpoint(), {}, {}),
        lambda s: s.aput_writes(generate_config("t"), [("c", 1)], "task"),  # no checkpoint_id
        lambda s: s.adelete_thread(None),
        lambda s: s.adelete_for_runs("run-id-as-a-string"),
        lambda s: s.aprune("t"),
        lambda s: s.aprune(["t"], strategy="everything"),
        lambda s: s.acopy_thread("t", "t"),
    ],
)
async def test_bad_input_is_invalid_input_and_changes_nothing(db: UnifiedDB, call):
    saver = UnifiedCheckpointSaver(db)
    await saver.aput(generate_config("t"), generate_checkpoint(), generate_metadata(), {})
    before = await counts(db)
    with pytest.raises(InvalidInputError):
        await call(saver)
    assert await counts(db) == before


async def test_bad_list_arguments_are_invalid_input(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    with pytest.raises(InvalidInputError):
        [t async for t in saver.alist(None, limit=-1)]
    with pytest.raises(InvalidInputError):
        [t async for t in saver.alist(None, filter=[("a", 1)])]


def test_sync_methods_without_a_running_loop_point_to_the_async_ones(db_dsn: str):
    saver = UnifiedCheckpointSaver(UnifiedDB(db_dsn))
    with pytest.raises(SyncCallUnavailableError, match="aget_tuple"):
        saver.get_tuple(generate_config("t"))
    with pytest.raises(NotImplementedError, match="aput"):
        saver.put(generate_config("t"), generate_checkpoint(), {}, {})


async def test_sync_api_runs_a_graph_from_a_worker_thread(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    graph = build_graph(saver)
    config = {"configurable": {"thread_id": "sync-1"}}
    first = await asyncio.to_thread(graph.invoke, {"steps": [], "approved": False}, config)
    assert first["steps"] == ["planned"] and "__interrupt__" in first
    final = await asyncio.to_thread(graph.invoke, Command(resume="no"), config)
    assert final["steps"] == ["planned", "reviewed:no"] and final["approved"] is False
    tup = await asyncio.to_thread(saver.get_tuple, config)
    assert tup.checkpoint["channel_values"]["steps"] == ["planned", "reviewed:no"]
    history = await asyncio.to_thread(lambda: list(saver.list(config)))
    assert len(history) >= 4 and history[0].config == tup.config
    # On the loop's own thread a sync call would deadlock: it refuses instead.
    with pytest.raises(SyncCallUnavailableError, match="deadlock"):
        saver.get_tuple(config)
    await asyncio.to_thread(saver.delete_thread, "sync-1")
    assert await saver.aget_tuple(config) is None


async def test_saver_calls_are_counted_in_db_stats(db: UnifiedDB):
    saver = UnifiedCheckpointSaver(db)
    cfg = await saver.aput(generate_config(str(uuid4())), generate_checkpoint(), generate_metadata(), {})
    await saver.aget_tuple(cfg)
    ops = db.get_stats()["operations"]
    assert ops["langgraph_aput"]["count"] == 1 and ops["langgraph_aget_tuple"]["count"] == 1


def _scanned(plan: dict, relation: str) -> int:
    """Rows the plan read from *relation* (actual rows x loops, every node)."""
    total = 0
    if plan.get("Relation Name") == relation:
        total += int(plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1))
        total += int(plan.get("Rows Removed by Filter", 0))
    for child in plan.get("Plans", []):
        total += _scanned(child, relation)
    return total


async def test_get_tuple_reads_only_the_blobs_it_needs_on_a_long_thread(db: UnifiedDB):
    # A regression guard: the blob join once scanned every blob of the thread per read.
    from unified_db.integrations.langgraph import GET_LATEST

    saver = UnifiedCheckpointSaver(db)
    parent = None
    for i in range(300):
        cfg = generate_config("long")
        if parent:
            cfg["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
        cp = generate_checkpoint(channel_values={"msgs": [i], "other": {"i": i}})
        cp["channel_versions"] = {"msgs": i + 1, "other": i + 1}
        parent = await saver.aput(cfg, cp, generate_metadata(step=i), {"msgs": i + 1, "other": i + 1})
    async with db._acquire() as con:
        await con.raw.execute("SET plan_cache_mode = force_generic_plan")
        [row] = await con.fetch(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + GET_LATEST, db.namespace, "long", "", timeout=10
        )
        await con.raw.execute("RESET plan_cache_mode")
    plan = json.loads(row[0])[0]["Plan"] if isinstance(row[0], str) else row[0][0]["Plan"]
    assert _scanned(plan, "lg_checkpoint_blobs") <= 2
    assert _scanned(plan, "lg_checkpoints") <= 1
    tup = await saver.aget_tuple(generate_config("long"))
    assert tup.checkpoint["channel_values"] == {"msgs": [299], "other": {"i": 299}}

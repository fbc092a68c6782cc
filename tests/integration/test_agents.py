"""Agents and workflow runs against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from unified_db import ConflictError, InvalidInputError, NotFoundError, UnifiedDB


async def snapshot(db: UnifiedDB) -> list[tuple[Any, ...]]:
    """Every agent and run row of every namespace, to show bad input changed nothing."""
    agents = await db._fetch("SELECT * FROM __schema__.agents ORDER BY namespace, id")
    runs = await db._fetch("SELECT * FROM __schema__.workflow_runs ORDER BY id")
    return [tuple(r) for r in agents] + [tuple(r) for r in runs]


# ---------------------------------------------------------------------------- agents


async def test_agent_crud_round_trip(db: UnifiedDB):
    a = await db.agent_create("planner", agent_id="planner-1", persona_name="ada", config={"model": "m"})
    assert (a.id, a.name, a.persona_name, a.config, a.status) == (
        "planner-1",
        "planner",
        "ada",
        {"model": "m"},
        "active",
    )
    assert a.created_at == a.updated_at
    assert await db.agent_get("planner-1") == a

    b = await db.agent_create("writer")
    uuid.UUID(b.id)  # a generated id is a UUID string

    changed = await db.agent_update("planner-1", status="paused", persona_name=None, config={"model": "n"})
    assert (changed.status, changed.persona_name, changed.config, changed.name) == (
        "paused",
        None,
        {"model": "n"},
        "planner",
    )
    assert changed.updated_at > a.updated_at

    assert [x.id for x in await db.agent_list()] == sorted(["planner-1", b.id])
    assert [x.id for x in await db.agent_list(status="paused")] == ["planner-1"]
    page1 = await db.agent_list(limit=1)
    page2 = await db.agent_list(limit=1, cursor=page1[0].id)
    assert len(page1) == len(page2) == 1 and page1[0].id < page2[0].id

    assert await db.agent_delete("planner-1") is True
    assert await db.agent_delete("planner-1") is False
    assert await db.agent_get("planner-1") is None


async def test_agent_duplicate_id_is_a_conflict(db: UnifiedDB):
    await db.agent_create("x", agent_id="dup")
    before = await snapshot(db)
    with pytest.raises(ConflictError):
        await db.agent_create("y", agent_id="dup")
    assert await snapshot(db) == before


async def test_agent_update_of_a_missing_agent_is_not_found(db: UnifiedDB):
    with pytest.raises(NotFoundError, match="ghost"):
        await db.agent_update("ghost", name="n")


async def test_agent_delete_refuses_live_runs_unless_forced(db: UnifiedDB):
    await db.agent_create("a", agent_id="a")
    run = await db.workflow_create("job", agent_id="a")
    with pytest.raises(ConflictError, match="1 pending or running"):
        await db.agent_delete("a")
    assert await db.workflow_get(run.id) is not None
    assert await db.agent_delete("a", force=True) is True
    assert await db.workflow_get(run.id) is None  # the agent's runs go with it


async def test_agent_delete_takes_finished_runs_along(db: UnifiedDB):
    await db.agent_create("a", agent_id="a")
    run = await db.workflow_create("job", agent_id="a")
    await db.workflow_transition(run.id, "cancelled", expected_status="pending")
    assert await db.agent_delete("a") is True
    assert await db.workflow_get(run.id) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda db: db.agent_create(""),
        lambda db: db.agent_create("n", agent_id="x" * 201),
        lambda db: db.agent_create("n", config=[1, 2]),
        lambda db: db.agent_create("n", config={"f": object()}),
        lambda db: db.agent_create("n", status="sleeping"),
        lambda db: db.agent_create("n", persona_name=""),
        lambda db: db.agent_get(""),
        lambda db: db.agent_list(status="nope"),
        lambda db: db.agent_list(limit=0),
        lambda db: db.agent_list(cursor=""),
        lambda db: db.agent_update("a"),
        lambda db: db.agent_update("a", status="gone"),
        lambda db: db.agent_update("a", config="text"),
        lambda db: db.agent_delete("a", force="yes"),
        lambda db: db.agent_delete(None),
    ],
)
async def test_agent_bad_input_is_rejected_and_changes_nothing(db: UnifiedDB, call):
    await db.agent_create("a", agent_id="a")
    before = await snapshot(db)
    with pytest.raises(InvalidInputError):
        await call(db)
    assert await snapshot(db) == before


# ---------------------------------------------------------------------------- runs


async def test_workflow_crud_and_list_pagination(db: UnifiedDB):
    await db.agent_create("a", agent_id="a")
    runs = [await db.workflow_create("job", agent_id="a", input={"i": i}) for i in range(5)]
    other = await db.workflow_create("other-job", input=[1, "two"], priority=3, metadata={"k": "v"})
    assert other.agent_id is None and other.input == [1, "two"] and other.priority == 3
    assert runs[0].status == "pending" and runs[0].attempts == 0 and runs[0].input == {"i": 0}

    got = await db.workflow_get(str(runs[2].id))
    assert got == runs[2]

    listed = await db.workflow_list(agent_id="a")
    assert [r.id for r in listed] == [r.id for r in reversed(runs)]  # newest first
    pages, cursor = [], None
    while True:
        page = await db.workflow_list(agent_id="a", limit=2, cursor=cursor)
        if not page:
            break
        pages.append([r.id for r in page])
        cursor = page[-1].id
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [r.id for r in listed]
    assert [r.id for r in await db.workflow_list(name="other-job")] == [other.id]

    updated = await db.workflow_update(other.id, name="renamed", priority=9, input={"new": 1})
    assert (updated.name, updated.priority, updated.input, updated.metadata) == (
        "renamed",
        9,
        {"new": 1},
        {"k": "v"},
    )

    assert await db.workflow_delete(other.id) is True
    assert await db.workflow_delete(other.id) is False
    assert await db.workflow_get(other.id) is None


async def test_workflow_list_with_an_unknown_cursor_is_invalid_input(db: UnifiedDB):
    await db.workflow_create("job")
    with pytest.raises(InvalidInputError, match="cursor"):
        await db.workflow_list(cursor=uuid.uuid4())
    with pytest.raises(InvalidInputError, match="cursor"):
        await db.workflow_list(cursor="not-a-uuid")


async def test_workflow_create_for_a_missing_agent_is_not_found(db: UnifiedDB):
    before = await snapshot(db)
    with pytest.raises(NotFoundError, match="ghost"):
        await db.workflow_create("job", agent_id="ghost")
    assert await snapshot(db) == before


async def test_workflow_input_changes_only_while_pending(db: UnifiedDB):
    run = await db.workflow_create("job", input=1)
    await db.workflow_claim_next()
    with pytest.raises(ConflictError, match="only while pending"):
        await db.workflow_update(run.id, input=2)
    assert (await db.workflow_get(run.id)).input == 1
    assert (await db.workflow_update(run.id, priority=5)).priority == 5  # other fields still change
    with pytest.raises(NotFoundError):
        await db.workflow_update(uuid.uuid4(), name="x")


async def test_transition_lifecycle_records_times_attempts_output_and_error(db: UnifiedDB):
    run = await db.workflow_create("job")
    running = await db.workflow_transition(run.id, "running", expected_status="pending", worker="w1")
    assert (running.status, running.attempts, running.worker) == ("running", 1, "w1")
    assert running.started_at and running.heartbeat_at and running.finished_at is None

    failed = await db.workflow_transition(
        run.id, "failed", expected_status="running", error="boom", worker="w1"
    )
    assert (failed.status, failed.error) == ("failed", "boom") and failed.finished_at is not None

    retry = await db.workflow_transition(run.id, "pending", expected_status="failed")
    assert retry.status == "pending" and retry.finished_at is None and retry.worker is None

    again = await db.workflow_transition(run.id, "running", expected_status="pending")
    assert again.attempts == 2
    done = await db.workflow_transition(
        run.id, "succeeded", expected_status="running", output={"n": 1}, error=None
    )
    assert (done.status, done.output, done.error) == ("succeeded", {"n": 1}, None)
    assert done.finished


async def test_transition_is_a_compare_and_set(db: UnifiedDB):
    run = await db.workflow_create("job")
    with pytest.raises(ConflictError, match="is pending, not running"):
        await db.workflow_transition(run.id, "succeeded", expected_status="running")
    assert (await db.workflow_get(run.id)).status == "pending"
    with pytest.raises(NotFoundError):
        await db.workflow_transition(uuid.uuid4(), "running", expected_status="pending")

    # Ten concurrent cancels from pending: exactly one wins.
    results = await asyncio.gather(
        *(db.workflow_transition(run.id, "cancelled", expected_status="pending") for _ in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, Exception))


async def test_transition_with_a_worker_fences_out_a_worker_that_lost_its_run(db: UnifiedDB):
    run = await db.workflow_create("job")
    await db.workflow_claim_next(worker="old")
    await db.workflow_transition(run.id, "pending", expected_status="running")  # a requeue
    await db.workflow_claim_next(worker="new")
    with pytest.raises(ConflictError, match="held by worker 'new'"):
        await db.workflow_transition(run.id, "succeeded", expected_status="running", worker="old")
    with pytest.raises(ConflictError, match="held by worker 'new'"):
        await db.workflow_heartbeat(run.id, worker="old")
    done = await db.workflow_transition(run.id, "succeeded", expected_status="running", worker="new")
    assert done.status == "succeeded" and done.attempts == 2


@pytest.mark.parametrize(
    "src,dst", [("pending", "succeeded"), ("succeeded", "pending"), ("cancelled", "running")]
)
async def test_forbidden_transitions_fail_before_io(db: UnifiedDB, src: str, dst: str):
    run = await db.workflow_create("job")
    before = await snapshot(db)
    with pytest.raises(InvalidInputError, match=f"from {src} to {dst}"):
        await db.workflow_transition(run.id, dst, expected_status=src)
    assert await snapshot(db) == before


async def test_claim_hands_each_run_to_exactly_one_of_ten_workers(db: UnifiedDB):
    n = 60
    await db._executemany(
        "INSERT INTO __schema__.workflow_runs (namespace, name, input) VALUES ($1, 'job', $2)",
        [(db.namespace, i) for i in range(n)],
    )
    claimed: list[tuple[str, Any]] = []

    async def worker(name: str) -> None:
        while (run := await db.workflow_claim_next(worker=name)) is not None:
            claimed.append((name, run.id))
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(f"w{i}") for i in range(10)))
    ids = [rid for _, rid in claimed]
    assert len(ids) == n and len(set(ids)) == n
    assert len({w for w, _ in claimed}) > 1  # the work was actually shared
    rows = await db._fetch("SELECT status, attempts, worker FROM __schema__.workflow_runs")
    assert {(r["status"], r["attempts"]) for r in rows} == {("running", 1)}
    assert await db.workflow_claim_next() is None


async def test_claim_order_priority_then_age_and_agent_filter(db: UnifiedDB):
    await db.agent_create("a", agent_id="a")
    await db.agent_create("b", agent_id="b")
    first = await db.workflow_create("old", agent_id="a")
    await db.workflow_create("b-job", agent_id="b")
    urgent = await db.workflow_create("urgent", agent_id="a", priority=10)
    second = await db.workflow_create("new", agent_id="a")

    assert (await db.workflow_claim_next("a")).id == urgent.id
    assert (await db.workflow_claim_next("a")).id == first.id
    assert (await db.workflow_claim_next("a")).id == second.id
    assert await db.workflow_claim_next("a") is None
    assert (await db.workflow_claim_next()).name == "b-job"


async def test_heartbeat_stale_listing_and_requeue(db: UnifiedDB):
    alive = await db.workflow_create("alive")
    dead = await db.workflow_create("dead")
    await db.workflow_claim_next(worker="w")
    await db.workflow_claim_next(worker="w")
    await db._execute(
        "UPDATE __schema__.workflow_runs SET heartbeat_at = now() - interval '10 seconds' WHERE id = $1",
        dead.id,
    )
    beat = await db.workflow_heartbeat(alive.id, worker="w")
    assert beat is not None

    stale = await db.workflow_list_stale(5)
    assert [r.id for r in stale] == [dead.id]
    requeued = await db.workflow_requeue_stale(5)
    assert [(r.id, r.status, r.worker, r.heartbeat_at) for r in requeued] == [
        (dead.id, "pending", None, None)
    ]
    assert await db.workflow_list_stale(5) == []
    assert (await db.workflow_get(alive.id)).status == "running"

    with pytest.raises(ConflictError, match="is pending, not running"):
        await db.workflow_heartbeat(dead.id)
    with pytest.raises(NotFoundError):
        await db.workflow_heartbeat(uuid.uuid4())

    again = await db.workflow_claim_next()
    assert again.id == dead.id and again.attempts == 2


async def test_requeue_with_max_attempts_fails_the_run(db: UnifiedDB):
    run = await db.workflow_create("flaky")
    await db.workflow_claim_next()
    await asyncio.sleep(0.4)
    [failed] = await db.workflow_requeue_stale(0.2, max_attempts=1)
    assert (failed.id, failed.status) == (run.id, "failed")
    assert "heartbeat timed out on attempt 1" in failed.error and failed.finished_at is not None


async def test_concurrent_requeuers_requeue_each_run_once(db: UnifiedDB):
    for _ in range(20):
        await db.workflow_create("job")
    while await db.workflow_claim_next():
        pass
    await db._execute("UPDATE __schema__.workflow_runs SET heartbeat_at = now() - interval '1 minute'")
    results = await asyncio.gather(*(db.workflow_requeue_stale(30) for _ in range(5)))
    ids = [r.id for batch in results for r in batch]
    assert len(ids) == 20 and len(set(ids)) == 20


@pytest.mark.parametrize(
    "call",
    [
        lambda db, rid: db.workflow_create(""),
        lambda db, rid: db.workflow_create("n", input={"x": object()}),
        lambda db, rid: db.workflow_create("n", priority=2**31),
        lambda db, rid: db.workflow_create("n", priority="high"),
        lambda db, rid: db.workflow_create("n", metadata=[1]),
        lambda db, rid: db.workflow_create("n", agent_id=""),
        lambda db, rid: db.workflow_get("nope"),
        lambda db, rid: db.workflow_list(status="done"),
        lambda db, rid: db.workflow_list(limit=5000),
        lambda db, rid: db.workflow_update(rid),
        lambda db, rid: db.workflow_update(rid, priority=1.5),
        lambda db, rid: db.workflow_update(rid, input={"x": "a\x00"}),
        lambda db, rid: db.workflow_delete(42),
        lambda db, rid: db.workflow_transition(rid, "running", expected_status="nope"),
        lambda db, rid: db.workflow_transition(rid, "failed", expected_status="running", error=""),
        lambda db, rid: db.workflow_transition(
            rid, "running", expected_status="pending", output={1: object()}
        ),
        lambda db, rid: db.workflow_claim_next(""),
        lambda db, rid: db.workflow_claim_next(worker=""),
        lambda db, rid: db.workflow_heartbeat("x"),
        lambda db, rid: db.workflow_list_stale(0),
        lambda db, rid: db.workflow_list_stale("5"),
        lambda db, rid: db.workflow_requeue_stale(-1),
        lambda db, rid: db.workflow_requeue_stale(5, max_attempts=0),
    ],
)
async def test_workflow_bad_input_is_rejected_and_changes_nothing(db: UnifiedDB, call):
    run = await db.workflow_create("job", input={"a": 1})
    before = await snapshot(db)
    with pytest.raises(InvalidInputError):
        await call(db, run.id)
    assert await snapshot(db) == before


# ---------------------------------------------------------------------------- namespaces


async def test_namespaces_never_see_each_others_agents_or_runs(db: UnifiedDB, other_ns: UnifiedDB):
    await db.agent_create("mine", agent_id="shared-id")
    await other_ns.agent_create("theirs", agent_id="shared-id")  # same id, other namespace: fine
    run = await db.workflow_create("job", agent_id="shared-id")

    assert (await other_ns.agent_get("shared-id")).name == "theirs"
    assert [a.name for a in await other_ns.agent_list()] == ["theirs"]
    assert await other_ns.workflow_get(run.id) is None
    assert await other_ns.workflow_list() == []
    assert await other_ns.workflow_claim_next() is None
    with pytest.raises(NotFoundError):
        await other_ns.workflow_transition(run.id, "cancelled", expected_status="pending")
    with pytest.raises(NotFoundError):
        await other_ns.workflow_update(run.id, name="x")
    assert await other_ns.workflow_delete(run.id) is False
    with pytest.raises(InvalidInputError):
        await other_ns.workflow_list(cursor=run.id)

    await db.workflow_claim_next()
    await db._execute("UPDATE __schema__.workflow_runs SET heartbeat_at = now() - interval '1 minute'")
    assert await other_ns.workflow_list_stale(1) == []
    assert await other_ns.workflow_requeue_stale(1) == []
    with pytest.raises(NotFoundError):
        await other_ns.workflow_heartbeat(run.id)

    await db.agent_create("only-mine", agent_id="only-mine")
    with pytest.raises(NotFoundError):
        await other_ns.agent_update("only-mine", name="stolen")
    assert await other_ns.agent_delete("only-mine") is False
    assert (await db.agent_get("only-mine")).name == "only-mine"
    assert await other_ns.agent_delete("shared-id") is True
    assert (await db.agent_get("shared-id")).name == "mine"
    assert (await db.workflow_get(run.id)).status == "running"


# ---------------------------------------------------------------------------- cleanup


async def test_cleanup_deletes_only_old_finished_runs_of_its_namespace(db: UnifiedDB, other_ns: UnifiedDB):
    keep_pending = await db.workflow_create("pending")
    old = [await db.workflow_create("old") for _ in range(5)]
    recent = await db.workflow_create("recent")
    theirs = await other_ns.workflow_create("theirs")
    for r in [*old, recent]:
        await db.workflow_transition(r.id, "cancelled", expected_status="pending")
    await other_ns.workflow_transition(theirs.id, "cancelled", expected_status="pending")
    await db._execute(
        "UPDATE __schema__.workflow_runs SET finished_at = now() - interval '31 days'"
        " WHERE name IN ('old', 'theirs')"
    )
    await db._execute(
        "UPDATE __schema__.workflow_runs SET created_at = now() - interval '40 days' WHERE id = $1",
        keep_pending.id,
    )

    from unified_db.monitoring.maintenance import cleanup_steps

    assert "workflow_runs" in cleanup_steps(db)
    assert await db._cleanup_workflow_runs(dry_run=True, batch_size=2) == 5
    assert len(await db.workflow_list(limit=100)) == 7  # dry run deleted nothing
    assert await db._cleanup_workflow_runs(dry_run=False, batch_size=2) == 5
    left = {r.name for r in await db.workflow_list(limit=100)}
    assert left == {"pending", "recent"}
    assert await other_ns.workflow_get(theirs.id) is not None
    assert await db._cleanup_workflow_runs(dry_run=False, batch_size=2) == 0


async def test_cleanup_honours_the_retention_setting(db_dsn: str):
    async with UnifiedDB(db_dsn, workflow_retention_days=0.00001) as db:  # about a second
        run = await db.workflow_create("job")
        await db.workflow_transition(run.id, "cancelled", expected_status="pending")
        await asyncio.sleep(1.2)
        assert await db._cleanup_workflow_runs(dry_run=False, batch_size=100) == 1


async def test_two_concurrent_cleanups_delete_each_row_once(db: UnifiedDB):
    for _ in range(30):
        r = await db.workflow_create("old")
        await db.workflow_transition(r.id, "cancelled", expected_status="pending")
    await db._execute("UPDATE __schema__.workflow_runs SET finished_at = now() - interval '60 days'")
    a, b = await asyncio.gather(
        db._cleanup_workflow_runs(dry_run=False, batch_size=5),
        db._cleanup_workflow_runs(dry_run=False, batch_size=5),
    )
    assert a + b == 30
    assert await db.workflow_list() == []


async def test_operations_are_counted_in_stats(db: UnifiedDB):
    await db.workflow_create("job")
    await db.workflow_claim_next()
    ops = db.get_stats()["operations"]
    assert ops["workflow_create"]["count"] == 1 and ops["workflow_claim_next"]["count"] == 1


def test_cli_lists_runs_and_requeues_stale_ones(db_dsn: str):
    from typer.testing import CliRunner

    from unified_db.cli import app

    async def seed() -> str:
        async with UnifiedDB(db_dsn, namespace="cli") as db:
            run = await db.workflow_create("cli-job")
            await db.workflow_claim_next(worker="gone")
            await db._execute("UPDATE __schema__.workflow_runs SET heartbeat_at = now() - interval '1 hour'")
            return str(run.id)

    run_id = asyncio.run(seed())
    runner = CliRunner()
    listed = runner.invoke(app, ["agents", "runs", "--dsn", db_dsn, "--namespace", "cli", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.output)] == [run_id]
    requeued = runner.invoke(
        app,
        ["agents", "stale", "--timeout", "60", "--requeue", "--dsn", db_dsn, "--namespace", "cli", "--json"],
    )
    assert requeued.exit_code == 0, requeued.output
    assert [(r["id"], r["status"]) for r in json.loads(requeued.output)] == [(run_id, "pending")]
    bad = runner.invoke(app, ["agents", "runs", "--status", "bogus", "--dsn", db_dsn])
    assert bad.exit_code == 1 and "status must be one of" in bad.output

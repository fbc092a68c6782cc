"""Demo section: agents. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


async def agents_section(db: UnifiedDB, out: DemoOutput) -> None:
    import asyncio

    from ..errors import ConflictError

    out.title("Agents and workflow runs")
    # Start clean so the demo can run again: the agent goes with its runs.
    await db.agent_delete("demo-planner", force=True)
    with out.step("agent_create") as r:
        agent = await db.agent_create("planner", agent_id="demo-planner", config={"model": "small"})
        r["value"] = f"{agent.id} ({agent.status})"
    with out.step("workflow_create x 6") as r:
        for i in range(6):
            await db.workflow_create("summarize", agent_id=agent.id, input={"doc": i}, priority=i % 2)
        r["value"] = "6 pending runs"

    async def worker(name: str) -> int:
        done = 0
        while (run := await db.workflow_claim_next(agent.id, worker=name)) is not None:
            await db.workflow_heartbeat(run.id, worker=name)
            await db.workflow_transition(
                run.id, "succeeded", expected_status="running", output={"words": 100 + done}, worker=name
            )
            done += 1
        return done

    with out.step("3 workers claim (SKIP LOCKED), heartbeat and finish every run") as r:
        per_worker = await asyncio.gather(*(worker(f"w{i}") for i in range(3)))
        r["value"] = f"runs per worker {per_worker}, total {sum(per_worker)}"
    with out.step("workflow_transition from a stale status (compare-and-set)") as r:
        run = (await db.workflow_list(agent_id=agent.id, limit=1))[0]
        try:
            await db.workflow_transition(run.id, "cancelled", expected_status="pending")
        except ConflictError as exc:
            r["value"] = f"{type(exc).__name__}: run is {run.status}"
    runs = await db.workflow_list(agent_id=agent.id, limit=6)
    out.table(
        "workflow runs",
        ["name", "status", "attempts", "worker", "output"],
        [[x.name, x.status, x.attempts, x.worker, x.output] for x in runs],
    )
    await langgraph_demo(db, out)


async def langgraph_demo(db: UnifiedDB, out: DemoOutput) -> None:
    try:
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Command, interrupt

        from ..integrations.langgraph import UnifiedCheckpointSaver
    except ImportError:
        out.console.print("  (LangGraph checkpointer: install unified-db[langgraph] to see it)")
        return
    from typing import TypedDict

    class State(TypedDict):
        draft: str
        approved: bool

    def write(state: State) -> dict:
        return {"draft": "a two-line plan"}

    def review(state: State) -> dict:
        return {"approved": interrupt({"approve": state["draft"]}) == "yes"}

    g = StateGraph(State)
    g.add_node("write", write)
    g.add_node("review", review)
    g.add_edge(START, "write")
    g.add_edge("write", "review")
    g.add_edge("review", END)
    saver = UnifiedCheckpointSaver(db)
    graph = g.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "demo-thread"}}
    await saver.adelete_thread("demo-thread")
    with out.step("LangGraph: run a two-node graph until its interrupt") as r:
        first = await graph.ainvoke({"draft": "", "approved": False}, config)
        r["value"] = f"waiting on {first['__interrupt__'][0].value}"
    with out.step("LangGraph: resume from the checkpoint in PostgreSQL") as r:
        final = await graph.ainvoke(Command(resume="yes"), config)
        r["value"] = f"approved={final['approved']}"
    with out.step("LangGraph: aget_tuple (latest checkpoint, one round trip)") as r:
        tup = await saver.aget_tuple(config)
        r["value"] = f"step {tup.metadata['step']}, channels {sorted(tup.checkpoint['channel_values'])}"

"""Demo section: memory. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


async def memory_section(db: UnifiedDB, out: DemoOutput) -> None:
    out.title("Memory snapshots")
    agent = "demo-travel-agent"
    state = {
        "goal": "plan a weekend in Lisbon",
        "notes": ["prefers trains over flights", "budget 600 euros"],
        "itinerary": {"day1": "Alfama walking tour", "day2": "Sintra by train"},
    }
    with out.step("snapshot a 3-key state") as r:
        first = await db.memory_snapshot_create(agent, state, label="first plan", tags=["trip", "draft"])
        r["value"] = f"version {first.version}, {first.size_bytes} bytes"
    changed = {**state, "itinerary": {**state["itinerary"], "day2": "Cascais beach"}, "booked": True}
    with out.step("snapshot the changed state") as r:
        second = await db.memory_snapshot_create(agent, changed, label="booked", tags=["trip"])
        r["value"] = f"version {second.version}"
    big = {"log": [f"step {i}: looked at option {i} for the Lisbon trip" for i in range(20_000)]}
    with out.step("snapshot a 1 MB state") as r:
        large = await db.memory_snapshot_create(agent + "-log", big)
        r["value"] = f"{large.size_bytes:,} bytes"
    with out.step("latest snapshot of the agent") as r:
        latest = await db.memory_snapshot_latest(agent)
        r["value"] = f"version {latest.version if latest else None}"
    with out.step("diff the two versions") as r:
        d = await db.memory_snapshot_diff(first.id, second.id)
        r["value"] = f"added {d.added}, changed {d.changed}"
    with out.step('search "sintra train" -beach') as r:
        hits = await db.memory_snapshot_search('"sintra by train" -beach', agent_id=agent, limit=3)
        r["value"] = f"{len(hits)} hit(s): {hits[0].excerpt!r}" if hits else "no hits"
    with out.step("restore the first plan") as r:
        restored = await db.memory_snapshot_restore(first.id)
        r["value"] = f"version {restored.version}, restored_from={restored.restored_from}"
    with out.step("keep the 3 newest per agent") as r:
        r["value"] = f"{await db.memory_snapshot_cleanup(keep_last=3)} deleted"
    stats = await db.memory_snapshot_stats()
    out.table(
        "snapshots per agent",
        ["agent", "snapshots", "bytes", "latest version"],
        [[a.agent_id, a.count, f"{a.bytes:,}", a.latest_version] for a in stats.agents],
    )

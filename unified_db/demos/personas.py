"""Demo section: personas. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


DEMO_PERSONAS = [
    {
        "name": "code-reviewer",
        "display_name": "Code Reviewer",
        "role": "Senior reviewer",
        "system_prompt": "You review code for correctness first, then clarity. Be specific and brief.",
        "expertise": ["python", "sql", "testing"],
        "personality_traits": {"tone": "direct"},
        "persona_type": "enhanced-development",
    },
    {
        "name": "metrics-analyst",
        "display_name": "Metrics Analyst",
        "system_prompt": "You explain metrics and trends, with the numbers that support each claim.",
        "persona_type": "metrics-intelligence",
    },
]


def _fields(entry: Any) -> str:
    return "(all: new persona)" if entry.action == "create" else ", ".join(sorted(entry.diff))


async def personas_section(db: UnifiedDB, out: DemoOutput) -> None:
    out.title("Personas: one source of truth, versioned and audited")
    with out.step("persona_initialize_default()") as r:
        default = await db.persona_initialize_default(actor="demo")
        r["value"] = f"default is {default.name!r}"
    with out.step(f"persona_import({len(DEMO_PERSONAS)} personas), all or nothing") as r:
        report = await db.persona_import(DEMO_PERSONAS, actor="demo")
        r["value"] = f"{len(report.created)} created, {len(report.unchanged)} unchanged"
    with out.step("persona_get('code-reviewer'): one indexed query") as r:
        p = await db.persona_get("code-reviewer")
        assert p is not None
        r["value"] = f"version {p.version}, type {p.persona_type}"
    with out.step("persona_update(..., expected_version=current)") as r:
        stamp = time.strftime("%H:%M:%S")
        p = await db.persona_update(
            "code-reviewer", {"context": f"demo run at {stamp}"}, actor="demo", expected_version=p.version
        )
        r["value"] = f"now version {p.version}"
    with out.step("persona_rollback to the previous version") as r:
        p = await db.persona_rollback("code-reviewer", p.version - 1, actor="demo")
        r["value"] = f"version {p.version}, context {p.context!r}"
    with out.step("persona_set_user_preference + persona_get_for_user") as r:
        await db.persona_set_user_preference("demo-user", "metrics-analyst")
        chosen = await db.persona_get_for_user("demo-user")
        fallback = await db.persona_get_for_user("someone-else")
        r["value"] = f"demo-user -> {chosen and chosen.name}, others -> {fallback and fallback.name}"
    with out.step("persona_record_metric x20 + persona_metrics") as r:
        for i in range(20):
            await db.persona_record_metric("code-reviewer", "latency_ms", 100.0 + i * 5, tags={"run": stamp})
        m = (await db.persona_metrics("code-reviewer"))[0]
        r["value"] = f"{m.metric}: n={m.count} mean={m.mean:.1f} p95={m.p95:.1f}"
    with out.step("persona_list(persona_type='enhanced-development')") as r:
        r["value"] = [x.name for x in await db.persona_list(persona_type="enhanced-development")]
    log = await db.persona_audit_log(limit=5)
    out.table(
        "persona_audit_log(limit=5)",
        ["when", "persona", "action", "actor", "version", "fields"],
        [[e.at.strftime("%H:%M:%S"), e.name, e.action, e.actor, e.version, _fields(e)] for e in log],
    )

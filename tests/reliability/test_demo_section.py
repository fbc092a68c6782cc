"""The demo's reliability section runs against a live database, twice in a row."""

from __future__ import annotations

import io

from rich.console import Console

from unified_db import UnifiedDB
from unified_db.demo import DemoOutput
from unified_db.demos.reliability import reliability_section


async def test_reliability_demo_section_runs_and_reruns(db: UnifiedDB):
    for _ in range(2):
        buffer = io.StringIO()
        await reliability_section(db, DemoOutput(Console(file=buffer, width=200)))
        text = buffer.getvalue()
        assert "retried on a fresh connection 1x" in text
        assert "OperationTimeoutError" in text and "PoolTimeoutError" in text
        assert "health ok=True" in text
    assert (await db.health()).ok

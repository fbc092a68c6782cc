"""The examples of docs/agent-state.md (## Memory snapshots) run, in order, on a fresh database."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from unified_db import UnifiedDB

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent-state.md"


def memory_examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Memory snapshots", 1)[1]
    section = re.split(r"^## ", section, flags=re.M)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


async def test_memory_snapshot_examples_run(db: UnifiedDB):
    examples = memory_examples()
    assert len(examples) >= 5
    scope: dict[str, object] = {"db": db}
    for source in examples:
        code = compile(source, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, scope)  # noqa: S307 - our own documentation
        if result is not None:
            await result

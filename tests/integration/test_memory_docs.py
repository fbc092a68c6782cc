"""The examples of docs/agent-state.md (## Memory snapshots) run, in order, on a fresh database."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from unified_db import UnifiedDB

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent-state.md"


def memory_examples() -> list[tuple[bool, str]]:
    """(needs pgvector, source) of each example; a ```python pgvector fence marks the former."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Memory snapshots", 1)[1]
    section = re.split(r"^## ", section, flags=re.M)[0]
    return [
        (bool(tag), src) for tag, src in re.findall(r"```python( pgvector)?\n(.*?)```", section, flags=re.S)
    ]


async def test_memory_snapshot_examples_run(db: UnifiedDB):
    examples = memory_examples()
    assert len(examples) >= 6 and any(needs for needs, _ in examples)
    has_pgvector = await db._fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
    )
    scope: dict[str, object] = {"db": db}
    for needs_pgvector, source in examples:
        if needs_pgvector and not has_pgvector:
            continue
        code = compile(source, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, scope)  # noqa: S307 - our own documentation
        if result is not None:
            await result

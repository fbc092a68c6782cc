"""The Python examples of docs/agent-state.md (agents and LangGraph sections) run as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from unified_db import UnifiedDB

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent-state.md"
SECTIONS = ("## Agents and workflow runs", "## LangGraph checkpointer")


def examples(heading: str) -> list[str]:
    text = DOC.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("heading", SECTIONS)
async def test_doc_examples_run(db: UnifiedDB, heading: str):
    if "LangGraph" in heading:
        pytest.importorskip("langgraph.graph")
    blocks = examples(heading)
    assert blocks, f"no python example under {heading}"
    for code in blocks:
        namespace: dict = {}
        exec("async def example(db):\n" + textwrap.indent(code, "    "), namespace)  # noqa: S102
        await namespace["example"](db)

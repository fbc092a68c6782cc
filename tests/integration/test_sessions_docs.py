"""The examples of docs/sessions.md run as written against a real PostgreSQL."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from unified_db import UnifiedDB

DOC = Path(__file__).resolve().parents[2] / "docs" / "sessions.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if "FastAPI(" not in b]


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
async def test_doc_example_runs(db: UnifiedDB, code: str):
    scope: dict = {}
    exec("async def example(db):\n" + textwrap.indent(code, "    "), scope)  # noqa: S102
    await scope["example"](db)


def test_the_fastapi_example_in_the_doc_compiles():
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if "FastAPI(" in b]
    compile(code, "docs/sessions.md", "exec")

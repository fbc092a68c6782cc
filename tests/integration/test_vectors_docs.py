"""The first example of docs/vectors.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unified_db import UnifiedDB

DOC = Path(__file__).resolve().parents[2] / "docs" / "vectors.md"


async def test_the_quick_start_example_runs(db_dsn: str, db: UnifiedDB):
    if not await db._fetchval("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"):
        pytest.skip("this server has no pgvector")
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    ids = await namespace["main"](db_dsn)
    assert ids[0] == "n1"  # the filtered semantic search finds ana's note
    assert "n2" in ids[1:]  # hybrid search finds the invoice note by its text
    assert await namespace["main"](db_dsn) == ids  # idempotent

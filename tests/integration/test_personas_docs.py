"""The Python examples of docs/personas.md, run in order against a real PostgreSQL."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from unified_db import UnifiedDB

DOC = Path(__file__).resolve().parents[2] / "docs" / "personas.md"


def examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    # The opening block opens its own (embedded) instance; the rest use the test's `db`.
    return [b for b in blocks if "UnifiedDB(" not in b]


async def test_the_examples_in_docs_run(db: UnifiedDB):
    blocks = examples()
    assert len(blocks) >= 6
    source = "async def _example(db):\n" + "".join(textwrap.indent(b, "    ") for b in blocks)
    scope: dict = {}
    exec(compile(source, str(DOC), "exec"), scope)  # noqa: S102 - our own documentation
    await scope["_example"](db)

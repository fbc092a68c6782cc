"""The README's first example runs as written, against the test server instead of the
embedded default (the second block needs a server named db.internal, so only its shape
is checked)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_readme_example_runs(db_dsn: str, capsys):
    block = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]
    first, _, second = block.partition("async with UnifiedDB(\"postgresql://")
    assert "UnifiedDB() as db" in first and "namespace=" in second
    code = first.replace("UnifiedDB()", f"UnifiedDB({db_dsn!r})")
    source = "async def _example():\n" + textwrap.indent(code, "    ")
    scope: dict = {}
    exec(compile(source, str(README), "exec"), scope)  # noqa: S102 - our own documentation
    await scope["_example"]()
    out = capsys.readouterr().out
    assert "ok=True" in out

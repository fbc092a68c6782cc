"""The Python examples in docs/reliability.md and docs/deployment.md run."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks(name: str) -> list[str]:
    return BLOCK.findall((DOCS / name).read_text(encoding="utf-8"))


async def test_reliability_error_handling_example_runs(db_dsn: str):
    (code,) = blocks("reliability.md")
    namespace: dict = {}
    exec(compile(code, "docs/reliability.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert await namespace["main"](db_dsn) == "ready"
    assert (await namespace["main"]("postgresql://nobody@127.0.0.1:1/none")).startswith("database down")


async def test_deployment_serverless_example_runs(db_dsn: str, monkeypatch):
    code = next(b for b in blocks("deployment.md") if "serverless" in b)
    monkeypatch.setenv("UNIFIED_DB_DSN", db_dsn)
    namespace: dict = {}
    exec(compile(code, "docs/deployment.md", "exec"), namespace)  # noqa: S102 - our own docs
    db = namespace["db"]
    try:
        assert await namespace["handler"]({}) is True
        assert await namespace["handler"]({}) is True  # open() again is a no-op
        assert db.settings.pool_sizes() == (0, 2)
    finally:
        await db.close()

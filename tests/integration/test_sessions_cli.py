"""``unified-db sessions ...`` against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time

from typer.testing import CliRunner

from unified_db import UnifiedDB
from unified_db.cli import app

runner = CliRunner()


def _seed(dsn: str) -> list:
    async def go() -> list:
        async with UnifiedDB(dsn, max_size=2) as db:
            made = [
                await db.session_create("ann"),
                await db.session_create("ann"),
                await db.session_create("bo"),
            ]
            await db.session_create("bo", idle_timeout=0.2)
            async with UnifiedDB(dsn, namespace="elsewhere", max_size=1) as other:
                await other.session_create("ann")
            return made

    made = asyncio.run(go())
    time.sleep(0.3)
    return made


def cli(*args: str):
    return runner.invoke(app, ["sessions", *args])


def test_sessions_commands(db_dsn: str):
    made = _seed(db_dsn)
    d = ["--dsn", db_dsn]
    r = cli("count", *d)
    assert r.exit_code == 0 and r.stdout.strip() == "3"
    assert cli("count", "--user", "ann", *d).stdout.strip() == "2"
    assert cli("count", "-n", "elsewhere", *d).stdout.strip() == "1"

    listed = json.loads(cli("list", "--json", *d).stdout)
    assert [s["id"] for s in listed] == [str(s.id) for s in reversed(made)]
    assert all("token" not in s for s in listed)
    assert len(json.loads(cli("list", "--json", "--all", *d).stdout)) == 4
    page = json.loads(cli("list", "--json", "--limit", "1", "--after", str(made[2].id), *d).stdout)
    assert [s["id"] for s in page] == [str(made[1].id)]
    assert str(made[0].id)[:8] in cli("list", *d).stdout

    stats = json.loads(cli("analytics", "--json", *d).stdout)
    assert stats["active"] == 3 and stats["max_sessions_per_user"] == 2
    assert "active users" in cli("analytics", *d).stdout

    assert "would delete 1" in cli("cleanup", "--dry-run", *d).stdout
    assert "deleted 1" in cli("cleanup", *d).stdout
    assert "revoked 2" in cli("revoke-user", "ann", *d).stdout
    assert cli("delete", str(made[2].id), *d).exit_code == 0
    assert cli("delete", str(made[2].id), *d).exit_code == 1
    assert cli("count", *d).stdout.strip() == "0"
    assert cli("count", "-n", "elsewhere", *d).stdout.strip() == "1"  # untouched


def test_bad_input_exits_1_with_the_reason(db_dsn: str):
    r = cli("list", "--limit", "0", "--dsn", db_dsn)
    assert r.exit_code == 1 and "limit must be an int" in r.stdout
    r = cli("delete", "not-a-uuid", "--dsn", db_dsn)
    assert r.exit_code == 1 and "session_id must be" in r.stdout


async def test_demo_section_runs_twice_and_leaves_nothing(db_dsn: str):
    import io

    from rich.console import Console

    from unified_db.demo import DemoOutput
    from unified_db.demos.sessions import sessions_section

    async with UnifiedDB(db_dsn, namespace="demo", max_size=2) as db:
        for _ in range(2):
            buf = io.StringIO()
            await sessions_section(db, DemoOutput(Console(file=buf, width=200)))
            text = buf.getvalue()
            assert "old token valid: False; new token valid: True" in text
            assert "ConflictError, nothing written" in text and "still valid: False" in text
        assert await db.session_get_active_count() == 0

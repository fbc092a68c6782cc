"""``unified-db memory ...`` against a real PostgreSQL (sync tests: the CLI runs its own loop)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from unified_db.cli import app

runner = CliRunner()


def invoke(dsn: str, *args: str, input: str | None = None):
    return runner.invoke(app, ["memory", *args, "--dsn", dsn], input=input)


def test_memory_commands_end_to_end(db_dsn: str, tmp_path: Path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"plan": "fly to Lisbon", "steps": [1]}))
    r = invoke(db_dsn, "create", "cli-agent", str(state), "--label", "first", "--tag", "trip")
    assert r.exit_code == 0, r.output
    assert "version 1" in r.output
    r = invoke(db_dsn, "create", "cli-agent", "-", input=json.dumps({"plan": "stay home"}))
    assert r.exit_code == 0, r.output

    r = invoke(db_dsn, "list", "cli-agent", "--json")
    listed = json.loads(r.output)
    assert [s["version"] for s in listed] == [2, 1] and listed[1]["tags"] == ["trip"]
    first, second = listed[1]["id"], listed[0]["id"]

    r = invoke(db_dsn, "show", str(first))
    assert json.loads(r.output)["state"] == {"plan": "fly to Lisbon", "steps": [1]}
    r = invoke(db_dsn, "search", "lisbon", "--json")
    hits = json.loads(r.output)
    assert [h["snapshot"]["id"] for h in hits] == [first] and "<b>Lisbon</b>" in hits[0]["excerpt"]
    r = invoke(db_dsn, "diff", str(first), str(second))
    assert r.exit_code == 0 and "- /steps" in r.output and "~ /plan" in r.output
    r = invoke(db_dsn, "restore", str(first))
    assert r.exit_code == 0 and "version 3" in r.output
    r = invoke(db_dsn, "stats", "--json")
    assert json.loads(r.output)["count"] == 3
    r = invoke(db_dsn, "cleanup", "--keep-last", "1", "--dry-run")
    assert r.exit_code == 0 and "would delete: 2" in r.output
    r = invoke(db_dsn, "cleanup", "--keep-last", "1")
    assert "deleted: 2" in r.output
    r = invoke(db_dsn, "list", "--json", "--namespace", "other")
    assert json.loads(r.output) == []


def test_memory_commands_report_errors_with_exit_code_1(db_dsn: str, tmp_path: Path):
    r = invoke(db_dsn, "show", "999")
    assert r.exit_code == 1 and "no snapshot 999" in r.output
    r = invoke(db_dsn, "restore", "999")
    assert r.exit_code == 1 and "does not exist" in r.output
    r = invoke(db_dsn, "cleanup")
    assert r.exit_code == 1 and "keep_last" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    r = invoke(db_dsn, "create", "a", str(bad))
    assert r.exit_code == 1 and "JSON object" in r.output
    r = invoke(db_dsn, "list", "--json")
    assert json.loads(r.output) == []

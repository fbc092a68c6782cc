"""``unified-db personas import|export|list`` against a real PostgreSQL."""

from __future__ import annotations

import json

import asyncpg
import pytest
import yaml
from typer.testing import CliRunner

from unified_db.cli import app

runner = CliRunner()

PERSONAS = [
    {
        "name": "analyst",
        "system_prompt": "Analyse.",
        "persona_type": "metrics-intelligence",
        "is_default": True,
    },
    {
        "name": "coder",
        "system_prompt": "Code.",
        "expertise": ["python"],
        "persona_type": "enhanced-development",
    },
]


async def _count(dsn: str, namespace: str = "default") -> int:
    con = await asyncpg.connect(dsn)
    try:
        return await con.fetchval("SELECT count(*) FROM unified_db.personas WHERE namespace = $1", namespace)
    finally:
        await con.close()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_import_yaml_list_and_export_json_round_trip(db_dsn: str, tmp_path):
    src = tmp_path / "personas.yaml"
    src.write_text(yaml.safe_dump({"personas": PERSONAS}))
    result = invoke("personas", "import", str(src), "--dsn", db_dsn, "--actor", "cli")
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 0 unchanged" in result.output

    listed = invoke("personas", "list", "--dsn", db_dsn, "--type", "enhanced-development")
    assert listed.exit_code == 0 and "coder" in listed.output and "analyst" not in listed.output

    out = tmp_path / "export.json"
    exported = invoke("personas", "export", "--dsn", db_dsn, "--output", str(out))
    assert exported.exit_code == 0, exported.output
    records = json.loads(out.read_text())
    assert [r["name"] for r in records] == ["analyst", "coder"]
    assert records[0]["is_default"] is True and records[1]["expertise"] == ["python"]

    # the export imports back as is, into another namespace, and again as "unchanged"
    again = invoke("personas", "import", str(out), "--dsn", db_dsn, "--namespace", "copy")
    assert again.exit_code == 0 and "2 created" in again.output
    same = invoke("personas", "import", str(out), "--dsn", db_dsn)
    assert same.exit_code == 0 and "2 unchanged" in same.output

    stdout = invoke("personas", "export", "--dsn", db_dsn, "--yaml", "--namespace", "copy")
    assert [r["name"] for r in yaml.safe_load(stdout.output)] == ["analyst", "coder"]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("{not json", ".json", "not valid JSON"),
        ("- [unclosed", ".yml", "not valid YAML"),
        ('{"name": "x"}', ".json", "list of personas"),
        (json.dumps([{"name": "ok", "system_prompt": "p"}, {"name": "Bad"}]), ".json", "item 1"),
    ],
)
def test_bad_files_fail_cleanly_and_import_nothing(db_dsn: str, tmp_path, content, suffix, message):
    import asyncio

    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    result = invoke("personas", "import", str(path), "--dsn", db_dsn)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert asyncio.run(_count(db_dsn)) == 0


def test_missing_file_is_an_error(db_dsn: str, tmp_path):
    result = invoke("personas", "import", str(tmp_path / "none.json"), "--dsn", db_dsn)
    assert result.exit_code == 1 and "cannot read" in result.output

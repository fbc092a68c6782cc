"""``unified-db vectors ...`` against a real server."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from unified_db.cli import app

from .test_vectors import _server_has_pgvector


def test_create_list_search_and_drop_from_the_shell(db_dsn: str, admin_dsn: str):
    if not asyncio.run(_server_has_pgvector(admin_dsn)):
        pytest.skip("this server has no pgvector")
    runner = CliRunner()
    base = ["--dsn", db_dsn, "--namespace", "cli"]
    r = runner.invoke(app, ["vectors", "create", "docs", "3", "--distance", "l2", *base])
    assert r.exit_code == 0 and "3 dimensions, l2, hnsw" in r.output
    r = runner.invoke(app, ["vectors", "list", *base])
    assert r.exit_code == 0 and "docs" in r.output and "l2" in r.output
    r = runner.invoke(app, ["vectors", "search", "docs", "--embedding", "[1, 0, 0]", *base])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["vectors", "search", "docs", "--embedding", "[1, 0]", *base])
    assert r.exit_code == 1 and "2 dimensions" in r.output
    r = runner.invoke(app, ["vectors", "search", "docs", "--embedding", "[1, 0", *base])
    assert r.exit_code == 2 and "not JSON" in r.output
    r = runner.invoke(app, ["vectors", "drop", "docs", "--yes", *base])
    assert r.exit_code == 0 and "dropped docs" in r.output
    r = runner.invoke(app, ["vectors", "drop", "docs", "--yes", *base])
    assert r.exit_code == 1 and "no vector collection" in r.output

"""No query in the package is built by string formatting with caller data."""

from __future__ import annotations

import ast
from pathlib import Path

import unified_db

from .sqlscan import ALLOWED, SINKS, scan_package

PACKAGE = Path(unified_db.__file__).parent


def test_no_query_in_the_package_is_built_by_formatting():
    findings = scan_package(PACKAGE)
    assert not findings, "SQL built by string formatting:\n" + "\n".join(str(f) for f in findings)


def test_the_scan_sees_the_package_queries():
    # Guards against a scan that passes because it looked at nothing.
    calls = 0
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SINKS
            ):
                calls += 1
    assert calls >= 15


def test_every_allowed_entry_names_a_real_function():
    for (path, function), reason in ALLOWED.items():
        source = (PACKAGE / path).read_text(encoding="utf-8")
        assert function.split(".")[-1] in source, f"stale ALLOWED entry {path}:{function}"
        assert reason.strip()

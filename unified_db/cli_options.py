"""Command-line options shared by every ``unified-db`` command.

A module of its own (no import of ``cli``), so feature command modules can use them at
import time without an import cycle.
"""

from __future__ import annotations

from typing import Annotated

import typer

DsnOpt = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL DSN (default: UNIFIED_DB_DSN, else embedded)"),
]
SchemaOpt = Annotated[
    str | None, typer.Option("--schema", help="schema (default: UNIFIED_DB_SCHEMA or unified_db)")
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="namespace (default: UNIFIED_DB_NAMESPACE or default)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]

"""``python -m benchmarks [--quick] [--markdown FILE] [module ...]``.

Runs every ``benchmarks/bench_*.py`` (or the ones named) against one server, prints a
table per section with ratios against the floor (raw asyncpg) and the peer (Redis or a
peer library), and optionally writes the same tables as Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pkgutil
import platform
import sys
import time

from rich.console import Console
from rich.table import Table

from . import common

console = Console()


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:.3g}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"


def _columns(row: common.Row) -> list[str]:
    return [
        row.name,
        f"{_fmt(row.value)} {row.unit}",
        _fmt(row.floor),
        _fmt(row.ratio(row.floor), "x"),
        f"{_fmt(row.peer)} ({row.peer_name})" if row.peer is not None else "-",
        _fmt(row.ratio(row.peer), "x"),
        row.target,
    ]


HEADERS = ["measure", "unified_db", "raw asyncpg", "vs asyncpg", "peer", "vs peer", "target"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("modules", nargs="*", help="e.g. cache sessions (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()

    available = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([os.path.dirname(__file__)])
        if m.name.startswith("bench_")
    )
    chosen = args.modules or available
    unknown = set(chosen) - set(available)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; available: {available}")

    ctx = common.Context(
        dsn=common.bench_server(),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
        quick=args.quick,
    )
    md: list[str] = []
    for name in chosen:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        console.rule(f"[bold]{name}")
        start = time.perf_counter()
        rows: list[common.Row] = asyncio.run(module.run(ctx))
        sections: dict[str, list[common.Row]] = {}
        for row in rows:
            sections.setdefault(row.section, []).append(row)
        for section, srows in sections.items():
            table = Table(*HEADERS, title=section)
            md.append(f"\n### {section}\n\n| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS))
            for row in srows:
                cols = _columns(row)
                table.add_row(*cols)
                md.append("| " + " | ".join(c.replace("|", "/") for c in cols) + " |")
            console.print(table)
        console.print(f"[dim]{name}: {time.perf_counter() - start:.1f}s[/dim]")
    for note in ctx.notes:
        console.print(f"note: {note}")
    if args.markdown:
        header = (
            f"Command: `make bench` (`python -m benchmarks {' '.join(sys.argv[1:])}`), "
            f"{platform.python_version()}, {os.cpu_count()} cores, one run; "
            "ratios > 1 mean unified_db is faster.\n"
        )
        notes = "".join(f"\n- {n}" for n in ctx.notes)
        with open(args.markdown, "w") as fh:
            fh.write(header + "\n".join(md) + ("\n\nNotes:" + notes if notes else "") + "\n")


if __name__ == "__main__":
    main()

"""Operations commands of ``unified-db``: dashboard, metrics, cleanup, maintain.

Thin: each command opens the database with :func:`unified_db.cli.run` and calls into
``unified_db.monitoring``. Registered on the main app by one import in cli.py.
"""

from __future__ import annotations

import importlib
import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cli import DsnOpt, NamespaceOpt, SchemaOpt, app, console, run
from .db import UnifiedDB
from .errors import FeatureUnavailableError

DbClassOpt = Annotated[
    str | None,
    typer.Option(
        "--db-class",
        help="module:Class of a UnifiedDB subclass whose mixins add cleanup steps (default: UnifiedDB)",
    ),
]

#: `unified-db cleanup` exit codes (docs/operations.md).
EXIT_NOTHING_TO_DO = 0
EXIT_FAILED = 1
EXIT_ROWS_DELETED = 3


def _db_class(path: str | None) -> type[UnifiedDB]:
    if path is None:
        return UnifiedDB
    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        console.print(f"[red]error:[/red] cannot import --db-class {path!r} ({exc}); use module:Class")
        raise typer.Exit(2) from None
    if not (isinstance(cls, type) and issubclass(cls, UnifiedDB)):
        console.print(f"[red]error:[/red] --db-class {path!r} is not a subclass of UnifiedDB")
        raise typer.Exit(2)
    return cls


@app.command()
def dashboard(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON and exit")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between frames")] = 1.0,
) -> None:
    """Live performance dashboard of a namespace (Ctrl-C to quit)."""
    from .monitoring.dashboard import run_dashboard

    async def go(db: UnifiedDB) -> None:
        await run_dashboard(db, console, once=once, as_json=as_json, interval=interval)

    try:
        run(dsn, schema, go, namespace=namespace, stats_flush_interval=0)
    except KeyboardInterrupt:
        pass


@app.command()
def metrics(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="HTTP port of /metrics")] = 9187,
    addr: Annotated[str, typer.Option("--addr", help="address to listen on")] = "0.0.0.0",  # noqa: S104
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="seconds between refreshes")] = 5.0,
) -> None:
    """Serve Prometheus metrics of a namespace on http://ADDR:PORT/metrics (Ctrl-C to quit)."""
    try:
        from .monitoring.metrics import serve
    except (ImportError, FeatureUnavailableError) as exc:  # the metrics extra is missing
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None

    def ready(bound: int) -> None:
        console.print(f"serving http://{addr}:{bound}/metrics", highlight=False)

    async def go(db: UnifiedDB) -> None:
        await serve(db, port=port, addr=addr, interval=interval, ready=ready)

    try:
        run(dsn, schema, go, namespace=namespace, stats_flush_interval=0)
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken
        console.print(f"[red]error:[/red] cannot listen on {addr}:{port}: {exc}")
        raise typer.Exit(1) from None


@app.command()
def cleanup(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be deleted; delete nothing")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="rows per batch")
    ] = 1000,
    step: Annotated[list[str] | None, typer.Option("--step", help="run only this step (repeatable)")] = None,
    db_class: DbClassOpt = None,
    exit_zero: Annotated[
        bool, typer.Option("--exit-zero", help="exit 0 after deleting rows too (for cron)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Delete expired rows of every feature (batched, SKIP LOCKED: safe from several hosts).

    Exit code: 0 nothing to delete, 3 rows deleted (or would be, with --dry-run), 1 a step
    or the connection failed.
    """
    from .monitoring.maintenance import CleanupReport, StepResult, cleanup_steps, run_cleanup

    cls = _db_class(db_class)
    unknown = sorted(set(step or ()) - set(cleanup_steps(cls)))
    if unknown:
        console.print(
            f"[red]error:[/red] unknown --step {unknown}; {cls.__name__} declares {cleanup_steps(cls)}"
        )
        raise typer.Exit(2)

    async def go(db: UnifiedDB) -> CleanupReport:
        names = step or cleanup_steps(db)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TimeElapsedColumn(),
            console=console,
            disable=as_json or not console.is_terminal,
            transient=True,
        ) as progress:
            task = progress.add_task("cleanup", total=len(names))

            def advance(result: StepResult) -> None:
                progress.update(task, advance=1, description=f"cleanup: {result.step} done")

            return await run_cleanup(db, dry_run=dry_run, batch_size=batch_size, steps=names, on_step=advance)

    report = run(dsn, schema, go, db_class=cls, namespace=namespace)
    if as_json:
        typer.echo(json.dumps({**report.model_dump(), "total": report.total}, indent=2))
    else:
        verb = "would delete" if dry_run else "deleted"
        t = Table("step", verb, "seconds", "error", title=f"cleanup{' (dry run)' if dry_run else ''}")
        for r in report.steps:
            t.add_row(r.step, f"{r.deleted:,}", f"{r.seconds:.2f}", r.error or "")
        if not report.steps:
            t.add_row("-", "0", "-", "no feature declares a cleanup step")
        console.print(t)
        console.print(f"{verb} {report.total:,} row(s) in {len(report.steps)} step(s)")
    if report.failed:
        raise typer.Exit(EXIT_FAILED)
    if report.total and not exit_zero:
        raise typer.Exit(EXIT_ROWS_DELETED)


@app.command()
def maintain(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    vacuum: Annotated[bool, typer.Option("--vacuum", help="VACUUM (ANALYZE) the churn tables")] = False,
    analyze: Annotated[bool, typer.Option("--analyze", help="only ANALYZE them")] = False,
) -> None:
    """Vacuum and analyze the high-churn tables (cache, sessions, snapshots, runs, stats)."""
    from .monitoring.maintenance import vacuum as run_vacuum

    if vacuum == analyze:
        console.print("[red]error:[/red] choose --vacuum or --analyze")
        raise typer.Exit(2)

    async def go(db: UnifiedDB) -> Any:
        return await run_vacuum(db, analyze_only=analyze)

    results = run(dsn, schema, go)
    title = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
    t = Table("table", "dead rows before", "seconds", "note", title=title)
    for r in results:
        t.add_row(r.table, f"{r.dead_rows_before:,}", f"{r.seconds:.2f}", "ANALYZE only" if r.skipped else "")
    console.print(t)
    for reason in dict.fromkeys(r.skipped for r in results if r.skipped):  # each reason once
        console.print(f"[yellow]note:[/yellow] {reason}")


def main_for_script(command: str, argv: list[str]) -> None:
    """Run ``unified-db <command> argv...`` (the thin scripts under scripts/ and monitoring/)."""
    app(args=[command, *argv], prog_name=f"unified-db {command}")

"""The ``unified-db`` command. Thin: every command calls into the package."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from .cli_options import DsnOpt, JsonOpt, NamespaceOpt, SchemaOpt  # noqa: F401 - re-exported
from .db import UnifiedDB
from .errors import UnifiedDBError

app = typer.Typer(
    help="unified_db: one PostgreSQL for cache, sessions, agent state and more.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
T = TypeVar("T")


def _settings(dsn: str | None, schema: str | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if schema is not None:
        out["schema"] = schema
    if dsn is not None:
        out["dsn"] = dsn
    return out


def run(
    dsn: str | None,
    schema: str | None,
    fn: Callable[[UnifiedDB], Awaitable[T]],
    *,
    db_class: type[UnifiedDB] = UnifiedDB,
    **settings: Any,
) -> T:
    """Open a UnifiedDB (or *db_class*), run *fn* on it, close it; a UnifiedDBError exits
    with code 1."""

    async def main() -> T:
        async with db_class(**_settings(dsn, schema, **settings)) as db:
            return await fn(db)

    try:
        return asyncio.run(main())
    except UnifiedDBError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def init(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    app_role: Annotated[
        str | None,
        typer.Option(
            "--app-role",
            help="also create this login role with run-time privileges only (no DDL, TRUNCATE or DROP)",
        ),
    ] = None,
    app_password: Annotated[
        str | None,
        typer.Option(
            "--app-password",
            envvar="UNIFIED_DB_APP_PASSWORD",
            help="password for --app-role (better given as UNIFIED_DB_APP_PASSWORD)",
        ),
    ] = None,
) -> None:
    """Create the schema and apply every migration (and, with --app-role, the app's role)."""
    from .roles import check_role_name, grant_app_role

    if app_role is not None:
        try:
            check_role_name(app_role)
        except UnifiedDBError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None

    async def go(db: UnifiedDB) -> Any:
        await db.migrate()
        if app_role is not None:
            return await grant_app_role(db, app_role, password=app_password)
        return None

    role = run(dsn, schema, go, auto_migrate=False)
    console.print("schema ready")
    if role is not None:
        verb = "created" if role.created else "updated"
        console.print(f"app role {role.role} {verb}: run-time privileges on schema {role.schema_name}")
        if not role.maintain:
            console.print("PostgreSQL < 17 has no MAINTAIN privilege: VACUUM stays the schema owner's")


@app.command()
def migrate(
    action: Annotated[str, typer.Argument(help="up | down | status")] = "up",
    steps: Annotated[int | None, typer.Argument(help="up: target version; down: steps (default 1)")] = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Apply (up), revert (down [N]) or list (status) migrations."""
    if action not in ("up", "down", "status"):
        console.print(f"[red]error:[/red] unknown action {action!r}; use up, down or status")
        raise typer.Exit(2)

    async def go(db: UnifiedDB) -> Any:
        if action == "up":
            return await db.migrate(steps)
        if action == "down":
            return await db.migrate_down(steps or 1)
        return await db.migration_status()

    result = run(dsn, schema, go, auto_migrate=False)
    if action == "status":
        t = Table("version", "name", "applied", "applied at")
        for m in result:
            t.add_row(f"{m.version:04d}", m.name, "yes" if m.applied else "no", str(m.applied_at or ""))
        console.print(t)
    else:
        verb = "applied" if action == "up" else "reverted"
        console.print(f"{verb}: {', '.join(f'{v:04d}' for v in result) or 'nothing'}")


@app.command()
def status(
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Health, schema version and migrations as a table (or --json)."""

    async def go(db: UnifiedDB) -> dict[str, Any]:
        health = await db.health()
        migrations = await db.migration_status()
        return {
            "health": health.model_dump(),
            "migrations": [{"version": m.version, "name": m.name, "applied": m.applied} for m in migrations],
        }

    result = run(dsn, schema, go)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    t = Table("setting", "value", title="unified_db status")
    for k, v in result["health"].items():
        t.add_row(k, str(v))
    pending = [m for m in result["migrations"] if not m["applied"]]
    t.add_row("pending migrations", str(len(pending)))
    console.print(t)


@app.command()
def demo(dsn: DsnOpt = None, schema: SchemaOpt = None) -> None:
    """Show what the library does, with timings (embedded PostgreSQL by default)."""
    from .demo import run_demo

    async def go(db: UnifiedDB) -> None:
        await run_demo(db, console)

    run(dsn, schema, go, namespace="demo")


# Feature commands register themselves on `app`; imported last because they need it.
from . import cli_memory, cli_ops, cli_sessions  # noqa: E402,F401 - each registers its commands
from .cli_agents import app as agents_app  # noqa: E402
from .cli_cache import app as cache_app  # noqa: E402
from .cli_personas import app as personas_app  # noqa: E402
from .cli_vectors import app as vectors_app  # noqa: E402

app.add_typer(cache_app, name="cache")
app.add_typer(agents_app, name="agents")
app.add_typer(personas_app, name="personas")
app.add_typer(vectors_app, name="vectors")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

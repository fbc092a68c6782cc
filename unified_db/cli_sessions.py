"""``unified-db sessions ...``: inspect and manage server-side sessions.

Imported once by ``unified_db.cli``, which it extends with a ``sessions`` group. Thin:
each command calls one ``session_*`` method. Tokens are never printed (they exist
only at creation), so nothing here can leak a live session.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli import DsnOpt, JsonOpt, NamespaceOpt, SchemaOpt, app, console, run
from .db import UnifiedDB

sessions_app = typer.Typer(help="Inspect and manage server-side sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def list_(
    user: Annotated[str | None, typer.Option("--user", "-u", help="only this user's sessions")] = None,
    include_expired: Annotated[bool, typer.Option("--all", help="include expired sessions")] = False,
    limit: Annotated[int, typer.Option("--limit", help="at most this many (1-1000)")] = 50,
    cursor: Annotated[str | None, typer.Option("--after", help="id of the last session shown")] = None,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sessions, newest first."""

    async def go(db: UnifiedDB) -> list[Any]:
        return await db.session_list(
            user_id=user, active_only=not include_expired, limit=limit, cursor=cursor
        )

    sessions = run(dsn, schema, go, namespace=namespace)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json", exclude={"token"}) for s in sessions], indent=2))
        return
    t = Table(title="sessions")
    t.add_column("id", no_wrap=True, min_width=36)
    for name in ("user", "created", "last access", "idle expiry", "absolute expiry", "ip"):
        t.add_column(name)
    for s in sessions:
        t.add_row(
            str(s.id),
            s.user_id,
            f"{s.created_at:%Y-%m-%d %H:%M:%S}",
            f"{s.last_accessed_at:%Y-%m-%d %H:%M:%S}",
            f"{s.expires_at:%Y-%m-%d %H:%M:%S}",
            f"{s.absolute_expires_at:%Y-%m-%d %H:%M:%S}",
            s.ip or "",
        )
    console.print(t)
    if len(sessions) == limit:
        console.print(f"[dim]more: --after {sessions[-1].id}[/dim]")


@sessions_app.command()
def count(
    user: Annotated[str | None, typer.Option("--user", "-u", help="only this user's sessions")] = None,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """How many sessions are active."""

    async def go(db: UnifiedDB) -> int:
        return await db.session_get_active_count(user)

    typer.echo(run(dsn, schema, go, namespace=namespace))


@sessions_app.command("revoke-user")
def revoke_user(
    user: Annotated[str, typer.Argument(help="the user whose sessions end")],
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """End every session of a user (all devices)."""

    async def go(db: UnifiedDB) -> int:
        return await db.session_revoke_user(user)

    console.print(f"revoked {run(dsn, schema, go, namespace=namespace)} active session(s) of {user!r}")


@sessions_app.command()
def delete(
    session_id: Annotated[str, typer.Argument(help="the session id (from `sessions list`)")],
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """End one session."""

    async def go(db: UnifiedDB) -> bool:
        return await db.session_delete(session_id)

    if not run(dsn, schema, go, namespace=namespace):
        console.print(f"no active session {session_id}")
        raise typer.Exit(1)
    console.print(f"deleted {session_id}")


@sessions_app.command()
def cleanup(
    batch_size: Annotated[int, typer.Option("--batch-size", help="rows per DELETE")] = 10_000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count, delete nothing")] = False,
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Delete idle- or absolutely-expired sessions (reads already ignore them)."""

    async def go(db: UnifiedDB) -> int:
        if dry_run:
            return await db._cleanup_sessions(dry_run=True, batch_size=batch_size)
        return await db.session_cleanup_inactive(batch_size=batch_size)

    n = run(dsn, schema, go, namespace=namespace)
    console.print(f"{'would delete' if dry_run else 'deleted'} {n} expired session(s)")


@sessions_app.command()
def analytics(
    namespace: NamespaceOpt = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Active sessions, creations and expiries in the last hour and day, and more."""

    async def go(db: UnifiedDB) -> Any:
        return await db.session_analytics()

    result = run(dsn, schema, go, namespace=namespace)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    t = Table("measure", "value", title="session analytics")
    for k, v in result.model_dump().items():
        t.add_row(k.replace("_", " "), "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v))
    console.print(t)

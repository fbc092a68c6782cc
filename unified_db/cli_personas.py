"""``unified-db personas import|export|list``: personas from and to JSON or YAML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli_options import DsnOpt, NamespaceOpt, SchemaOpt
from .db import UnifiedDB
from .errors import InvalidInputError
from .extensions.persona_models import ImportReport, Persona

app = typer.Typer(help="Import, export and list personas.", no_args_is_help=True)

YAML_SUFFIXES = (".yaml", ".yml")


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise InvalidInputError("YAML files need PyYAML: pip install 'unified-db[yaml]'") from None
    return yaml


def parse_personas_text(text: str, *, yaml_format: bool) -> list[Any]:
    """The persona records in a JSON or YAML document: a list, or ``{"personas": [...]}``."""
    try:
        data = _yaml().safe_load(text) if yaml_format else json.loads(text)
    except InvalidInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - json and yaml raise different classes
        kind = "YAML" if yaml_format else "JSON"
        raise InvalidInputError(f"the file is not valid {kind}: {exc}") from None
    if isinstance(data, dict) and "personas" in data:
        data = data["personas"]
    if not isinstance(data, list):
        raise InvalidInputError('the file must hold a list of personas, or {"personas": [...]}')
    return data


def load_personas_file(path: Path) -> list[Any]:
    """Read *path* (YAML when it ends in .yaml/.yml, else JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_personas_text(text, yaml_format=path.suffix.lower() in YAML_SUFFIXES)


def dump_personas(personas: list[Persona], *, yaml_format: bool) -> str:
    """Personas as a JSON or YAML document that ``import`` reads back."""
    records = [p.model_dump(mode="json") for p in personas]
    if yaml_format:
        return _yaml().safe_dump(records, sort_keys=False, allow_unicode=True)
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


def _run(dsn: str | None, schema: str | None, namespace: str | None, fn: Any) -> Any:
    from .cli import run  # late: cli imports this module to register it

    return run(dsn, schema, fn, namespace=namespace)


def _fail(message: str) -> typer.Exit:
    from .cli import console

    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="a .json, .yaml or .yml file: a list of personas")],
    no_upsert: Annotated[
        bool, typer.Option("--no-upsert", help="fail (importing nothing) if any name exists")
    ] = False,
    actor: Annotated[str | None, typer.Option("--actor", help="who, for the audit log")] = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Create or update personas from FILE, all or nothing."""
    from .cli import console

    try:
        items = load_personas_file(file)
    except InvalidInputError as exc:
        raise _fail(str(exc)) from None

    async def go(db: UnifiedDB) -> ImportReport:
        return await db.persona_import(items, upsert=not no_upsert, actor=actor)

    report: ImportReport = _run(dsn, schema, namespace, go)
    console.print(
        f"imported {report.total}: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged"
    )


@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    yaml_format: Annotated[
        bool, typer.Option("--yaml", help="YAML instead of JSON (default when --output ends in .yaml)")
    ] = False,
    active_only: Annotated[
        bool, typer.Option("--active-only", help="leave soft-deleted personas out")
    ] = False,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Write every persona as JSON (or YAML), in the format `import` reads."""
    from .cli import console

    async def go(db: UnifiedDB) -> list[Persona]:
        return await db.persona_export(include_inactive=not active_only)

    personas: list[Persona] = _run(dsn, schema, namespace, go)
    as_yaml = yaml_format or (output is not None and output.suffix.lower() in YAML_SUFFIXES)
    text = dump_personas(personas, yaml_format=as_yaml)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"exported {len(personas)} persona(s) to {output}")


@app.command("list")
def list_(
    persona_type: Annotated[str | None, typer.Option("--type", help="only this persona_type")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include soft-deleted personas")] = False,
    search: Annotated[str | None, typer.Option("--search", help="substring of name or description")] = None,
    limit: Annotated[int, typer.Option("--limit", help="at most this many (1-1000)")] = 100,
    cursor: Annotated[str | None, typer.Option("--after", help="start after this name")] = None,
    dsn: DsnOpt = None,
    schema: SchemaOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """One page of personas, by name."""
    from .cli import console

    async def go(db: UnifiedDB) -> list[Persona]:
        return await db.persona_list(
            persona_type=persona_type, include_inactive=all_, search=search, limit=limit, cursor=cursor
        )

    personas: list[Persona] = _run(dsn, schema, namespace, go)
    t = Table("name", "display name", "type", "version", "default", "active", title="personas")
    for p in personas:
        t.add_row(
            p.name,
            p.display_name,
            p.persona_type,
            str(p.version),
            "yes" if p.is_default else "",
            "yes" if p.is_active else "no",
        )
    console.print(t)
    if len(personas) == limit:
        console.print(f"[dim]more after {personas[-1].name}: --after {personas[-1].name}[/dim]")

"""Persona models and the pure logic behind ``PersonaMixin``: validation, diffs, import plans.

Nothing here does I/O, so all of it is unit-tested without a database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..codecs import dumps
from ..errors import ConflictError, InvalidInputError

NAME_RE = re.compile(r"^[a-z0-9-]{1,100}$")

#: Fields that make up a version: what update changes, history keeps and rollback restores.
CONTENT_FIELDS = (
    "display_name",
    "role",
    "description",
    "system_prompt",
    "context",
    "expertise",
    "personality_traits",
    "capabilities",
    "response_format",
    "persona_type",
)
#: Fields kept by the server; accepted on input (an export re-imports) but never written from it.
READ_ONLY_FIELDS = ("version", "created_by", "updated_by", "created_at", "updated_at")

MAX_SHORT_TEXT = 200
MAX_LONG_TEXT = 100_000
MAX_EXPERTISE = 100
MAX_JSON_BYTES = 256 * 1024
MAX_USER_ID = 200
MAX_METRIC_NAME = 100
MAX_LIMIT = 1000

DEFAULT_PERSONA: dict[str, Any] = {
    "name": "assistant",
    "display_name": "Assistant",
    "role": "General assistant",
    "description": "The persona every user gets until they choose another.",
    "system_prompt": (
        "You are a helpful, honest assistant. Answer clearly and concisely, say when you are "
        "not sure, and ask a question when the request is ambiguous."
    ),
    "expertise": ["general knowledge", "writing", "analysis"],
    "personality_traits": {"tone": "friendly", "verbosity": "concise"},
    "capabilities": {"tools": False},
    "response_format": "markdown",
    "persona_type": "standard",
}


# ---------------------------------------------------------------------------- models


class Persona(BaseModel):
    """One persona as stored: its content, its state and its bookkeeping."""

    name: str
    display_name: str
    role: str = ""
    description: str = ""
    system_prompt: str
    context: str = ""
    expertise: list[str] = Field(default_factory=list)
    personality_traits: dict[str, Any] = Field(default_factory=dict)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    response_format: str = ""
    persona_type: str = "standard"
    is_default: bool = False
    is_active: bool = True
    version: int = 1
    created_by: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def content(self) -> dict[str, Any]:
        """The versioned fields only (what :func:`diff_content` compares)."""
        return {f: getattr(self, f) for f in CONTENT_FIELDS}


class PersonaVersion(BaseModel):
    """The content of one version of a persona, with who wrote it and when."""

    name: str
    version: int
    actor: str | None = None
    created_at: datetime
    display_name: str
    role: str = ""
    description: str = ""
    system_prompt: str
    context: str = ""
    expertise: list[str] = Field(default_factory=list)
    personality_traits: dict[str, Any] = Field(default_factory=dict)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    response_format: str = ""
    persona_type: str = "standard"

    def content(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in CONTENT_FIELDS}


class PersonaAuditEntry(BaseModel):
    """One change: who, when, what (``diff``: field -> {"old", "new"}) and context (``info``)."""

    id: int
    name: str
    action: str
    actor: str | None = None
    version: int | None = None
    diff: dict[str, Any] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class PersonaMetricSummary(BaseModel):
    """Count, mean and percentiles of one metric of one persona."""

    metric: str
    count: int
    mean: float
    p50: float
    p95: float
    min: float
    max: float


class ImportReport(BaseModel):
    """What ``persona_import`` did: the names created, updated and left unchanged."""

    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.created) + len(self.updated) + len(self.unchanged)


# ---------------------------------------------------------------------------- input validation


def _clean_text(v: str) -> str:
    if "\x00" in v:
        raise ValueError("must not contain NUL characters")
    return v


def _json_object(v: dict[str, Any]) -> dict[str, Any]:
    if not all(isinstance(k, str) for k in v):
        raise ValueError("keys must be strings")
    try:
        size = len(dumps(v))
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from None
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_JSON_BYTES} are accepted")
    return v


class _ContentInput(BaseModel):
    """The writable content of a persona, every field optional (the shape of ``changes``)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=MAX_SHORT_TEXT)
    role: str | None = Field(None, max_length=MAX_SHORT_TEXT)
    description: str | None = Field(None, max_length=MAX_LONG_TEXT)
    system_prompt: str | None = Field(None, max_length=MAX_LONG_TEXT)
    context: str | None = Field(None, max_length=MAX_LONG_TEXT)
    expertise: list[str] | None = Field(None, max_length=MAX_EXPERTISE)
    personality_traits: dict[str, Any] | None = None
    capabilities: dict[str, Any] | None = None
    response_format: str | None = Field(None, max_length=MAX_LONG_TEXT)
    persona_type: str | None = Field(None, min_length=1, max_length=100)

    @field_validator("display_name", "role", "description", "context", "response_format", "persona_type")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return None if v is None else _clean_text(v)

    @field_validator("system_prompt")
    @classmethod
    def _prompt(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.strip():
            raise ValueError("must be a non-empty string (the persona's instructions)")
        return _clean_text(v)

    @field_validator("expertise")
    @classmethod
    def _expertise(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        for item in v:
            if not item.strip() or len(item) > MAX_SHORT_TEXT:
                raise ValueError(f"items must be non-empty strings of at most {MAX_SHORT_TEXT} characters")
            _clean_text(item)
        return v

    @field_validator("personality_traits", "capabilities")
    @classmethod
    def _objects(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else _json_object(v)


class _PersonaInput(_ContentInput):
    """A whole persona as given to create or import."""

    name: str
    system_prompt: str = Field(..., max_length=MAX_LONG_TEXT)  # type: ignore[assignment]
    is_default: bool = False
    is_active: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                "must be 1 to 100 lowercase letters, digits or hyphens (a slug like 'code-reviewer')"
            )
        return v


def _problems(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "value"
        msg = "unknown field (check the spelling)" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _as_mapping(item: Any, what: str) -> dict[str, Any]:
    if isinstance(item, BaseModel):
        return item.model_dump()
    if isinstance(item, Mapping):
        return dict(item)
    raise InvalidInputError(f"{what} must be a dict or a Persona model, not {type(item).__name__}")


@dataclass(frozen=True)
class PersonaDraft:
    """A validated persona ready to write: name, full content, and state."""

    name: str
    content: dict[str, Any]
    is_default: bool = False
    is_active: bool = True


def parse_persona(item: Any, *, what: str = "persona") -> PersonaDraft:
    """Validate a persona (dict or model) for create/import; InvalidInputError names the field.

    Read-only fields (version, timestamps, created_by) are accepted and ignored, so an
    export can be imported again. ``display_name`` defaults to the name.
    """
    data = _as_mapping(item, what)
    for key in READ_ONLY_FIELDS:
        data.pop(key, None)
    name = data.get("name")
    label = f"{what} {name!r}" if isinstance(name, str) else what
    try:
        parsed = _PersonaInput.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {label}: {_problems(exc)}") from None
    if parsed.is_default and not parsed.is_active:
        raise InvalidInputError(f"invalid {label}: is_default: a default persona must be active")
    content = {
        "display_name": parsed.display_name if parsed.display_name is not None else parsed.name,
        "role": parsed.role or "",
        "description": parsed.description or "",
        "system_prompt": parsed.system_prompt,
        "context": parsed.context or "",
        "expertise": list(parsed.expertise or []),
        "personality_traits": dict(parsed.personality_traits or {}),
        "capabilities": dict(parsed.capabilities or {}),
        "response_format": parsed.response_format or "",
        "persona_type": parsed.persona_type if parsed.persona_type is not None else "standard",
    }
    return PersonaDraft(parsed.name, content, parsed.is_default, parsed.is_active)


_STATE_HINT = {
    "name": "a persona cannot be renamed; create a new one and purge the old",
    "is_default": "use persona_set_default",
    "is_active": "use persona_delete or persona_restore",
}


def parse_changes(changes: Any) -> dict[str, Any]:
    """Validate the ``changes`` of persona_update: content fields only, each checked.

    Returns only the fields given. InvalidInputError names the field and what is accepted.
    """
    if isinstance(changes, BaseModel):
        changes = changes.model_dump(exclude_unset=True)
    if not isinstance(changes, Mapping):
        raise InvalidInputError(f"changes must be a dict of fields to change, not {type(changes).__name__}")
    if not changes:
        raise InvalidInputError(f"changes is empty; give at least one of {', '.join(CONTENT_FIELDS)}")
    for key in changes:
        if key in _STATE_HINT:
            raise InvalidInputError(f"changes.{key} cannot be changed by persona_update: {_STATE_HINT[key]}")
        if key in READ_ONLY_FIELDS:
            raise InvalidInputError(f"changes.{key} is kept by the server and cannot be set")
    nulls = [k for k, v in changes.items() if v is None]
    if nulls:
        raise InvalidInputError(f"changes.{nulls[0]}: None is not a value; give the new value")
    try:
        parsed = _ContentInput.model_validate(dict(changes))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid changes: {_problems(exc)}") from None
    return {k: getattr(parsed, k) for k in changes}


def check_name(name: Any, arg: str = "name") -> str:
    """The persona name, or InvalidInputError saying what a name looks like."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInputError(
            f"{arg} must be a persona name: 1 to 100 lowercase letters, digits or hyphens, got {name!r}"
        )
    return name


def check_actor(actor: Any) -> str | None:
    if actor is None:
        return None
    if not isinstance(actor, str) or not actor or len(actor) > MAX_SHORT_TEXT or "\x00" in actor:
        raise InvalidInputError(f"actor must be None or a string of 1 to {MAX_SHORT_TEXT} characters")
    return actor


def check_user_id(user_id: Any) -> str:
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID or "\x00" in user_id:
        raise InvalidInputError(f"user_id must be a string of 1 to {MAX_USER_ID} characters, got {user_id!r}")
    return user_id


def check_positive_int(value: Any, arg: str, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{arg} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{arg} must be at most {maximum}, got {value}")
    return value


def check_persona_type(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 100 or "\x00" in value:
        raise InvalidInputError(
            f"persona_type must be None or a string of 1 to 100 characters, got {value!r}"
        )
    return value


def search_pattern(search: Any) -> str | None:
    """An ILIKE pattern matching *search* as a plain substring (wildcards escaped)."""
    if search is None:
        return None
    if not isinstance(search, str) or not search or len(search) > MAX_SHORT_TEXT or "\x00" in search:
        raise InvalidInputError(f"search must be None or a string of 1 to {MAX_SHORT_TEXT} characters")
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def check_metric(metric: Any, value: Any, tags: Any) -> tuple[str, float, dict[str, Any]]:
    """Validate persona_record_metric's arguments."""
    if not isinstance(metric, str) or not metric or len(metric) > MAX_METRIC_NAME or "\x00" in metric:
        raise InvalidInputError(
            f"metric must be a string of 1 to {MAX_METRIC_NAME} characters, got {metric!r}"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"value must be a finite number, got {value!r}")
    if tags is None:
        tags = {}
    if not isinstance(tags, Mapping):
        raise InvalidInputError(f"tags must be None or a JSON object (dict), not {type(tags).__name__}")
    try:
        tags = _json_object(dict(tags))
    except ValueError as exc:
        raise InvalidInputError(f"tags {exc}") from None
    return metric, float(value), tags


def check_since(since: Any, now: datetime | None = None) -> datetime | None:
    """``since`` as an aware datetime: a datetime (aware) or a timedelta back from *now*."""
    if since is None:
        return None
    if isinstance(since, timedelta):
        if since <= timedelta(0):
            raise InvalidInputError("since as a timedelta must be positive (how far back to look)")
        try:
            return (now or datetime.now(UTC)) - since
        except OverflowError:  # further back than year 1: every metric there is
            return None
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise InvalidInputError("since must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return since
    raise InvalidInputError(
        f"since must be None, an aware datetime or a timedelta, not {type(since).__name__}"
    )


# ---------------------------------------------------------------------------- diffs and plans


def diff_content(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Field -> {"old", "new"} for every field whose value differs (missing side: None)."""
    old = old or {}
    new = new or {}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a != b:
            out[key] = {"old": a, "new": b}
    return out


@dataclass
class ImportPlan:
    """What an import will write, computed from the drafts and the rows they replace."""

    creates: list[PersonaDraft] = field(default_factory=list)
    #: (draft, new version, content changed, diff)
    updates: list[tuple[PersonaDraft, int, bool, dict[str, Any]]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    default: str | None = None


def parse_import(items: Any) -> list[PersonaDraft]:
    """Validate every record of an import; the error names the record (index and name)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidInputError("items must be a list of personas (dicts or Persona models)")
    drafts: list[PersonaDraft] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        draft = parse_persona(item, what=f"item {i}")
        if draft.name in seen:
            raise InvalidInputError(
                f"invalid item {i} {draft.name!r}: name: the same name is also item {seen[draft.name]}"
            )
        seen[draft.name] = i
        drafts.append(draft)
    defaults = [d.name for d in drafts if d.is_default]
    if len(defaults) > 1:
        raise InvalidInputError(f"is_default: only one item may be the default, got {defaults}")
    return drafts


def plan_import(drafts: list[PersonaDraft], existing: Mapping[str, Persona]) -> ImportPlan:
    """Split *drafts* into creates, updates and unchanged against the *existing* rows.

    A content change is a new version; an ``is_active`` change alone is an update that
    keeps the version. ``is_default: true`` moves the default (false never clears it).
    """
    plan = ImportPlan()
    for d in drafts:
        cur = existing.get(d.name)
        if cur is None:
            plan.creates.append(d)
        else:
            if cur.is_default and not d.is_active:
                raise ConflictError(
                    f"item {d.name!r} would soft-delete the default persona; "
                    "make another persona the default first"
                )
            diff = diff_content(cur.content(), d.content)
            content_changed = bool(diff)
            if cur.is_active != d.is_active:
                diff["is_active"] = {"old": cur.is_active, "new": d.is_active}
            if not diff:
                plan.unchanged.append(d.name)
            else:
                plan.updates.append((d, cur.version + (1 if content_changed else 0), content_changed, diff))
        if d.is_default and not (cur is not None and cur.is_default):
            plan.default = d.name
    return plan

"""AgentMixin: agent records and workflow runs with a compare-and-set state machine.

A workflow run moves through ``pending -> running -> succeeded | failed | cancelled``
(see :data:`TRANSITIONS`). Workers take pending runs with :meth:`workflow_claim_next`
(``FOR UPDATE SKIP LOCKED``: each run goes to exactly one worker, and workers never wait
on each other), prove they are alive with :meth:`workflow_heartbeat`, and a supervisor
puts back the runs of dead workers with :meth:`workflow_requeue_stale`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .. import codecs
from ..core import operation
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..validation import check_uuid

if TYPE_CHECKING:
    from ._protocol import DBProtocol as _Base
else:
    _Base = object

# ---------------------------------------------------------------------------- pure logic

RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
AGENT_STATUSES = ("active", "paused", "retired")

#: The allowed moves of a run. ``running -> pending`` gives a run back (a worker that
#: stops early, or a requeue); ``failed -> pending`` retries it. Succeeded and
#: cancelled runs are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled", "pending"}),
    "failed": frozenset({"pending"}),
    "succeeded": frozenset(),
    "cancelled": frozenset(),
}

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_LIMIT = 1000
_INT32 = 2**31 - 1


class _Unset:
    """Marks an argument that was not given (so ``None`` can mean "clear it")."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def check_text(value: Any, arg: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A non-empty string without NUL of at most *max_length* characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{arg} must be a non-empty string (got {value!r})")
    if len(value) > max_length:
        raise InvalidInputError(f"{arg} must be at most {max_length} characters (got {len(value)})")
    if "\x00" in value:
        raise InvalidInputError(f"{arg} must not contain NUL characters")
    return value


def check_agent_id(value: Any, arg: str = "agent_id") -> str:
    return check_text(value, arg, max_length=MAX_ID_LENGTH)


def check_run_id(value: Any, arg: str = "run_id") -> uuid.UUID:
    """A run id: a ``uuid.UUID`` or its string form."""
    return check_uuid(value, arg)


def check_choice(value: Any, arg: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidInputError(f"{arg} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def check_statuses(value: Any, arg: str = "status") -> list[str] | None:
    """None, one run status, or several: the list to pass as ``text[]``."""
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) else [value]
    if not values:
        raise InvalidInputError(f"{arg} must name at least one status of {', '.join(RUN_STATUSES)}")
    return [check_choice(v, arg, RUN_STATUSES) for v in values]


def check_transition(from_status: str, to_status: str) -> None:
    """Raise InvalidInputError unless a run may move from *from_status* to *to_status*."""
    check_choice(from_status, "expected_status", RUN_STATUSES)
    check_choice(to_status, "to_status", RUN_STATUSES)
    if to_status not in TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(TRANSITIONS[from_status])) or "nothing (it is final)"
        raise InvalidInputError(
            f"a run cannot move from {from_status} to {to_status}; "
            f"from {from_status} it may move to {allowed}"
        )


def check_seconds(value: Any, arg: str) -> float:
    """A positive duration in seconds, given as a number or a ``timedelta``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInputError(f"{arg} must be a positive number of seconds or a timedelta (got {value!r})")
    return float(value)


def check_limit(value: Any, arg: str = "limit", *, maximum: int = MAX_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInputError(f"{arg} must be an integer from 1 to {maximum} (got {value!r})")
    return value


def check_int32(value: Any, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT32 - 1 <= value <= _INT32:
        raise InvalidInputError(f"{arg} must be an integer that fits in 32 bits (got {value!r})")
    return value


def check_json(value: Any, arg: str, *, object_only: bool = False) -> Any:
    """*value* if it encodes as JSON (a dict when *object_only*), else InvalidInputError."""
    if object_only and not isinstance(value, dict):
        raise InvalidInputError(f"{arg} must be a JSON object (a dict), got {type(value).__name__}")
    try:
        encoded = codecs.dumps(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{arg} is not JSON-encodable: {exc}") from None
    if b"\\u0000" in encoded:  # PostgreSQL's jsonb cannot hold NUL in strings
        raise InvalidInputError(f"{arg} must not contain NUL characters in strings")
    return value


# ---------------------------------------------------------------------------- models


class Agent(BaseModel):
    """An agent record."""

    id: str
    name: str
    persona_name: str | None = None
    config: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


class WorkflowRun(BaseModel):
    """One run of a workflow, and where it stands."""

    id: uuid.UUID
    agent_id: str | None = None
    name: str
    status: str
    priority: int
    input: Any = None
    output: Any = None
    error: str | None = None
    metadata: dict[str, Any]
    attempts: int
    worker: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


# ---------------------------------------------------------------------------- SQL

_AGENT_COLS = "id, name, persona_name, config, status, created_at, updated_at"
_RUN_COLS = (
    "id, agent_id, name, status, priority, input, output, error, metadata, attempts, worker,"
    " created_at, updated_at, started_at, finished_at, heartbeat_at"
)
# The same columns qualified by the alias r (UPDATE ... FROM and self-joins need it).
_R_RUN_COLS = (
    "r.id, r.agent_id, r.name, r.status, r.priority, r.input, r.output, r.error, r.metadata,"
    " r.attempts, r.worker, r.created_at, r.updated_at, r.started_at, r.finished_at, r.heartbeat_at"
)

AGENT_INSERT = f"""
INSERT INTO __schema__.agents (namespace, id, name, persona_name, config, status)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {_AGENT_COLS}
"""  # noqa: S608 - column list constant

AGENT_GET = f"SELECT {_AGENT_COLS} FROM __schema__.agents WHERE namespace = $1 AND id = $2"  # noqa: S608

AGENT_LIST = f"""
SELECT {_AGENT_COLS} FROM __schema__.agents
WHERE namespace = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR persona_name = $3)
  AND ($4::text IS NULL OR id > $4)
ORDER BY id
LIMIT $5
"""  # noqa: S608

AGENT_UPDATE = f"""
UPDATE __schema__.agents SET
    name = COALESCE($3, name),
    persona_name = CASE WHEN $4 THEN $5 ELSE persona_name END,
    config = COALESCE($6, config),
    status = COALESCE($7, status),
    updated_at = now()
WHERE namespace = $1 AND id = $2
RETURNING {_AGENT_COLS}
"""  # noqa: S608

# One statement: count the agent's live runs and delete the agent only when there are
# none (or when forced); the CTEs share one snapshot, so "exists" reads the row as it
# was before the delete.
AGENT_DELETE = """
WITH active AS (
    SELECT count(*) AS n FROM __schema__.workflow_runs
    WHERE namespace = $1 AND agent_id = $2 AND status IN ('pending', 'running')
), gone AS (
    DELETE FROM __schema__.agents
    WHERE namespace = $1 AND id = $2 AND ($3 OR (SELECT n FROM active) = 0)
    RETURNING 1
)
SELECT (SELECT n FROM active) AS active,
       (SELECT count(*) FROM gone) AS deleted,
       EXISTS (SELECT 1 FROM __schema__.agents WHERE namespace = $1 AND id = $2) AS existed
"""

RUN_INSERT = f"""
INSERT INTO __schema__.workflow_runs (namespace, agent_id, name, input, priority, metadata)
VALUES ($1, NULL, $2, $3, $4, $5)
RETURNING {_RUN_COLS}
"""  # noqa: S608

# With an agent: insert only when the agent exists in this namespace (no row: NotFound).
RUN_INSERT_FOR_AGENT = f"""
INSERT INTO __schema__.workflow_runs (namespace, agent_id, name, input, priority, metadata)
SELECT $1, a.id, $2, $3, $4, $5 FROM __schema__.agents a WHERE a.namespace = $1 AND a.id = $6
RETURNING {_RUN_COLS}
"""  # noqa: S608

RUN_GET = f"SELECT {_RUN_COLS} FROM __schema__.workflow_runs WHERE namespace = $1 AND id = $2"  # noqa: S608

RUN_STATE = "SELECT status, worker FROM __schema__.workflow_runs WHERE namespace = $1 AND id = $2"

RUN_LIST = f"""
SELECT {_R_RUN_COLS} FROM __schema__.workflow_runs r
WHERE r.namespace = $1
  AND ($2::text IS NULL OR r.agent_id = $2)
  AND ($3::text[] IS NULL OR r.status = ANY($3))
  AND ($4::text IS NULL OR r.name = $4)
  AND ($5::uuid IS NULL OR (r.created_at, r.id) < (
        SELECT c.created_at, c.id FROM __schema__.workflow_runs c WHERE c.namespace = $1 AND c.id = $5))
ORDER BY r.created_at DESC, r.id DESC
LIMIT $6
"""  # noqa: S608

RUN_EXISTS = "SELECT EXISTS (SELECT 1 FROM __schema__.workflow_runs WHERE namespace = $1 AND id = $2)"

RUN_UPDATE = f"""
UPDATE __schema__.workflow_runs SET
    name = COALESCE($3, name),
    priority = COALESCE($4, priority),
    metadata = COALESCE($5, metadata),
    input = CASE WHEN $6 THEN $7 ELSE input END,
    updated_at = now()
WHERE namespace = $1 AND id = $2 AND (NOT $6 OR status = 'pending')
RETURNING {_RUN_COLS}
"""  # noqa: S608

RUN_DELETE = "DELETE FROM __schema__.workflow_runs WHERE namespace = $1 AND id = $2"

# Compare-and-set on the status (and, when given, on the worker holding the run).
# $3 is the new status, $4 the expected one, $5 the worker.
RUN_TRANSITION = f"""
UPDATE __schema__.workflow_runs SET
    status = $3,
    attempts = attempts + CASE WHEN $3 = 'running' THEN 1 ELSE 0 END,
    started_at = CASE WHEN $3 = 'running' THEN now() ELSE started_at END,
    heartbeat_at = CASE WHEN $3 = 'running' THEN now() WHEN $3 = 'pending' THEN NULL ELSE heartbeat_at END,
    finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'cancelled') THEN now() ELSE NULL END,
    worker = CASE WHEN $3 = 'running' THEN $5 WHEN $3 = 'pending' THEN NULL ELSE worker END,
    output = CASE WHEN $6 THEN $7 ELSE output END,
    error = CASE WHEN $8 THEN $9 ELSE error END,
    updated_at = now()
WHERE namespace = $1 AND id = $2 AND status = $4
  AND ($3 = 'running' OR $5::text IS NULL OR worker = $5)
RETURNING {_RUN_COLS}
"""  # noqa: S608

# SKIP LOCKED: concurrent claimers pass over a row another one is taking, so each run
# goes to one worker and nobody queues behind a lock. Two statements (with and without
# an agent) so each keeps a plan that uses its partial index.
_CLAIM = """
UPDATE __schema__.workflow_runs r SET
    status = 'running', attempts = r.attempts + 1, started_at = now(), heartbeat_at = now(),
    finished_at = NULL, worker = $2, updated_at = now()
WHERE r.id = (
    SELECT p.id FROM __schema__.workflow_runs p
    WHERE p.namespace = $1 AND p.status = 'pending' {agent}
    ORDER BY p.priority DESC, p.created_at, p.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {cols}
"""
RUN_CLAIM = _CLAIM.format(agent="", cols=_R_RUN_COLS)
RUN_CLAIM_FOR_AGENT = _CLAIM.format(agent="AND p.agent_id = $3", cols=_R_RUN_COLS)

RUN_HEARTBEAT = """
UPDATE __schema__.workflow_runs SET heartbeat_at = now()
WHERE namespace = $1 AND id = $2 AND status = 'running' AND ($3::text IS NULL OR worker = $3)
RETURNING heartbeat_at
"""

RUN_LIST_STALE = f"""
SELECT {_RUN_COLS} FROM __schema__.workflow_runs
WHERE namespace = $1 AND status = 'running' AND heartbeat_at < now() - make_interval(secs => $2)
ORDER BY heartbeat_at
LIMIT $3
"""  # noqa: S608

# A run at max_attempts ($3) fails instead of going back to the queue.
RUN_REQUEUE_STALE = f"""
WITH stale AS (
    SELECT id FROM __schema__.workflow_runs
    WHERE namespace = $1 AND status = 'running' AND heartbeat_at < now() - make_interval(secs => $2)
    ORDER BY heartbeat_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE __schema__.workflow_runs r SET
    status = CASE WHEN $3::int IS NOT NULL AND r.attempts >= $3 THEN 'failed' ELSE 'pending' END,
    error = CASE WHEN $3::int IS NOT NULL AND r.attempts >= $3
                 THEN 'heartbeat timed out on attempt ' || r.attempts ELSE r.error END,
    finished_at = CASE WHEN $3::int IS NOT NULL AND r.attempts >= $3 THEN now() ELSE NULL END,
    worker = NULL, heartbeat_at = NULL, updated_at = now()
FROM stale WHERE r.id = stale.id
RETURNING {_R_RUN_COLS}
"""  # noqa: S608

CLEANUP_RUNS = """
WITH doomed AS (
    SELECT id FROM __schema__.workflow_runs
    WHERE namespace = $1 AND status IN ('succeeded', 'failed', 'cancelled')
      AND finished_at < now() - make_interval(secs => $2)
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM __schema__.workflow_runs r USING doomed WHERE r.id = doomed.id
"""

CLEANUP_RUNS_COUNT = """
SELECT count(*) FROM __schema__.workflow_runs
WHERE namespace = $1 AND status IN ('succeeded', 'failed', 'cancelled')
  AND finished_at < now() - make_interval(secs => $2)
"""


def _agent(row: Any) -> Agent:
    return Agent.model_validate(dict(row))


def _run(row: Any) -> WorkflowRun:
    return WorkflowRun.model_validate(dict(row))


def _rowcount(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class AgentMixin(_Base):
    """Agents and workflow runs. Every row belongs to ``self.namespace``."""

    cleanup_steps = ("workflow_runs",)

    # ------------------------------------------------------------------ agents

    @operation("agent_create")
    async def agent_create(
        self,
        name: str,
        *,
        agent_id: str | None = None,
        persona_name: str | None = None,
        config: dict[str, Any] | None = None,
        status: str = "active",
    ) -> Agent:
        """Create an agent record.

        ``agent_id`` defaults to a new UUID string; ``config`` is any JSON object;
        ``status`` is active, paused or retired (informational: claiming does not read it).
        Raises ConflictError when the id is taken in this namespace. One round trip.
        """
        name = check_text(name, "name")
        agent_id = str(uuid.uuid4()) if agent_id is None else check_agent_id(agent_id)
        if persona_name is not None:
            check_text(persona_name, "persona_name")
        config = {} if config is None else check_json(config, "config", object_only=True)
        check_choice(status, "status", AGENT_STATUSES)
        row = await self._fetchrow(
            AGENT_INSERT, self.namespace, agent_id, name, persona_name, config, status, write=True
        )
        assert row is not None
        return _agent(row)

    @operation("agent_get")
    async def agent_get(self, agent_id: str) -> Agent | None:
        """The agent *agent_id*, or None. One round trip."""
        row = await self._fetchrow(AGENT_GET, self.namespace, check_agent_id(agent_id))
        return None if row is None else _agent(row)

    @operation("agent_list")
    async def agent_list(
        self,
        *,
        status: str | None = None,
        persona_name: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Agent]:
        """Agents ordered by id, optionally filtered by status and persona.

        ``cursor`` is the id of the last agent of the previous page. One round trip.
        """
        if status is not None:
            check_choice(status, "status", AGENT_STATUSES)
        if persona_name is not None:
            check_text(persona_name, "persona_name")
        if cursor is not None:
            check_agent_id(cursor, "cursor")
        rows = await self._fetch(AGENT_LIST, self.namespace, status, persona_name, cursor, check_limit(limit))
        return [_agent(r) for r in rows]

    @operation("agent_update")
    async def agent_update(
        self,
        agent_id: str,
        *,
        name: str = UNSET,
        persona_name: str | None = UNSET,
        config: dict[str, Any] = UNSET,
        status: str = UNSET,
    ) -> Agent:
        """Change the given fields of an agent (``persona_name=None`` clears it).

        Raises NotFoundError when the agent does not exist, InvalidInputError when no
        field is given. One round trip.
        """
        check_agent_id(agent_id)
        if all(v is UNSET for v in (name, persona_name, config, status)):
            raise InvalidInputError("agent_update needs at least one of name, persona_name, config, status")
        new_name = None if name is UNSET else check_text(name, "name")
        set_persona = persona_name is not UNSET
        if set_persona and persona_name is not None:
            check_text(persona_name, "persona_name")
        new_config = None if config is UNSET else check_json(config, "config", object_only=True)
        new_status = None if status is UNSET else check_choice(status, "status", AGENT_STATUSES)
        row = await self._fetchrow(
            AGENT_UPDATE,
            self.namespace,
            agent_id,
            new_name,
            set_persona,
            persona_name if set_persona else None,
            new_config,
            new_status,
            write=True,
        )
        if row is None:
            raise NotFoundError(f"agent {agent_id!r} does not exist in namespace {self.namespace!r}")
        return _agent(row)

    @operation("agent_delete")
    async def agent_delete(self, agent_id: str, *, force: bool = False) -> bool:
        """Delete an agent and its finished runs; False when it did not exist.

        Raises ConflictError when the agent has pending or running runs, unless
        ``force=True`` (then those are deleted too). One round trip.
        """
        check_agent_id(agent_id)
        if not isinstance(force, bool):
            raise InvalidInputError(f"force must be True or False (got {force!r})")
        row = await self._fetchrow(AGENT_DELETE, self.namespace, agent_id, force, write=True)
        assert row is not None
        if row["deleted"]:
            return True
        if row["existed"]:
            raise ConflictError(
                f"agent {agent_id!r} has {row['active']} pending or running run(s); finish or cancel "
                "them first, or pass force=True to delete them with the agent"
            )
        return False

    # ------------------------------------------------------------------ workflow runs

    @operation("workflow_create")
    async def workflow_create(
        self,
        name: str,
        *,
        agent_id: str | None = None,
        input: Any = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> WorkflowRun:
        """Create a pending run of workflow *name*, optionally for agent *agent_id*.

        ``input`` is any JSON value; higher ``priority`` runs are claimed first. Raises
        NotFoundError when the agent does not exist in this namespace. One round trip.
        """
        name = check_text(name, "name")
        check_json(input, "input")
        check_int32(priority, "priority")
        metadata = {} if metadata is None else check_json(metadata, "metadata", object_only=True)
        if agent_id is None:
            row = await self._fetchrow(
                RUN_INSERT, self.namespace, name, input, priority, metadata, write=True
            )
        else:
            check_agent_id(agent_id)
            row = await self._fetchrow(
                RUN_INSERT_FOR_AGENT, self.namespace, name, input, priority, metadata, agent_id, write=True
            )
            if row is None:
                raise NotFoundError(
                    f"agent {agent_id!r} does not exist in namespace {self.namespace!r}; create it first"
                )
        assert row is not None
        return _run(row)

    @operation("workflow_get")
    async def workflow_get(self, run_id: uuid.UUID | str) -> WorkflowRun | None:
        """The run *run_id*, or None. One round trip."""
        row = await self._fetchrow(RUN_GET, self.namespace, check_run_id(run_id))
        return None if row is None else _run(row)

    @operation("workflow_list")
    async def workflow_list(
        self,
        *,
        agent_id: str | None = None,
        status: str | Iterable[str] | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: uuid.UUID | str | None = None,
    ) -> list[WorkflowRun]:
        """Runs, newest first, filtered by agent, status (one or several) and name.

        ``cursor`` is the id of the last run of the previous page; an id that is not a
        run of this namespace raises InvalidInputError. One round trip (two when a
        cursor page comes back empty, to tell the end from a bad cursor).
        """
        if agent_id is not None:
            check_agent_id(agent_id)
        statuses = check_statuses(status)
        if name is not None:
            check_text(name, "name")
        limit = check_limit(limit)
        cursor_id = None if cursor is None else check_run_id(cursor, "cursor")
        rows = await self._fetch(RUN_LIST, self.namespace, agent_id, statuses, name, cursor_id, limit)
        if not rows and cursor_id is not None:
            if not await self._fetchval(RUN_EXISTS, self.namespace, cursor_id):
                raise InvalidInputError(
                    f"cursor {cursor_id} is not a run of namespace {self.namespace!r}; pass the id "
                    "of the last run of the previous page"
                )
        return [_run(r) for r in rows]

    @operation("workflow_update")
    async def workflow_update(
        self,
        run_id: uuid.UUID | str,
        *,
        name: str = UNSET,
        input: Any = UNSET,
        priority: int = UNSET,
        metadata: dict[str, Any] = UNSET,
    ) -> WorkflowRun:
        """Change a run's name, priority, metadata, or (while it is pending) its input.

        Status changes go through :meth:`workflow_transition`. Raises NotFoundError,
        ConflictError when ``input`` is given for a run that is no longer pending. One
        round trip (two on failure).
        """
        rid = check_run_id(run_id)
        if all(v is UNSET for v in (name, input, priority, metadata)):
            raise InvalidInputError("workflow_update needs at least one of name, input, priority, metadata")
        new_name = None if name is UNSET else check_text(name, "name")
        new_priority = None if priority is UNSET else check_int32(priority, "priority")
        new_metadata = None if metadata is UNSET else check_json(metadata, "metadata", object_only=True)
        set_input = input is not UNSET
        if set_input:
            check_json(input, "input")
        row = await self._fetchrow(
            RUN_UPDATE,
            self.namespace,
            rid,
            new_name,
            new_priority,
            new_metadata,
            set_input,
            input if set_input else None,
            write=True,
        )
        if row is not None:
            return _run(row)
        state = await self._fetchrow(RUN_STATE, self.namespace, rid)
        if state is None:
            raise NotFoundError(f"workflow run {rid} does not exist in namespace {self.namespace!r}")
        raise ConflictError(
            f"workflow run {rid} is {state['status']}: its input can change only while pending"
        )

    @operation("workflow_delete")
    async def workflow_delete(self, run_id: uuid.UUID | str) -> bool:
        """Delete a run whatever its status; False when it did not exist. One round trip."""
        status = await self._execute(RUN_DELETE, self.namespace, check_run_id(run_id))
        return _rowcount(status) == 1

    @operation("workflow_transition")
    async def workflow_transition(
        self,
        run_id: uuid.UUID | str,
        to_status: str,
        *,
        expected_status: str,
        output: Any = UNSET,
        error: str | None = UNSET,
        worker: str | None = None,
    ) -> WorkflowRun:
        """Move a run from *expected_status* to *to_status*, atomically (compare-and-set).

        The move must be one of :data:`TRANSITIONS` (else InvalidInputError, before any
        I/O). ``output`` and ``error`` are stored when given. ``worker``: for a move to
        running, the worker taking the run; otherwise, when given, the run must be held
        by that worker (so a worker whose run was requeued cannot finish it). Raises
        NotFoundError, and ConflictError when the run is not in *expected_status* (or
        held by another worker). One round trip (two on failure).
        """
        rid = check_run_id(run_id)
        check_transition(expected_status, to_status)
        set_output = output is not UNSET
        if set_output:
            check_json(output, "output")
        set_error = error is not UNSET
        if set_error and error is not None:
            check_text(error, "error", max_length=1_000_000)
        if worker is not None:
            check_text(worker, "worker")
        row = await self._fetchrow(
            RUN_TRANSITION,
            self.namespace,
            rid,
            to_status,
            expected_status,
            worker,
            set_output,
            output if set_output else None,
            set_error,
            error if set_error else None,
            write=True,
        )
        if row is not None:
            return _run(row)
        state = await self._fetchrow(RUN_STATE, self.namespace, rid)
        if state is None:
            raise NotFoundError(f"workflow run {rid} does not exist in namespace {self.namespace!r}")
        if state["status"] != expected_status:
            raise ConflictError(
                f"workflow run {rid} is {state['status']}, not {expected_status}; read it again and retry"
            )
        raise ConflictError(f"workflow run {rid} is held by worker {state['worker']!r}, not {worker!r}")

    @operation("workflow_claim_next")
    async def workflow_claim_next(
        self, agent_id: str | None = None, *, worker: str | None = None
    ) -> WorkflowRun | None:
        """Take the next pending run (highest priority, then oldest) and mark it running.

        Each pending run goes to exactly one of any number of concurrent callers; None
        when nothing is pending. ``agent_id`` limits the choice to that agent's runs;
        ``worker`` names the caller (default: host, pid and instance). One round trip.
        """
        worker = self._default_worker() if worker is None else check_text(worker, "worker")
        if agent_id is None:
            row = await self._fetchrow(RUN_CLAIM, self.namespace, worker, write=True)
        else:
            row = await self._fetchrow(
                RUN_CLAIM_FOR_AGENT, self.namespace, worker, check_agent_id(agent_id), write=True
            )
        return None if row is None else _run(row)

    @operation("workflow_heartbeat")
    async def workflow_heartbeat(self, run_id: uuid.UUID | str, *, worker: str | None = None) -> datetime:
        """Record that the worker of a running run is alive; returns the new heartbeat time.

        Raises NotFoundError, and ConflictError when the run is not running (it was
        requeued, cancelled or finished) or, with ``worker``, is held by another worker:
        the caller should stop working on it. One round trip (two on failure).
        """
        rid = check_run_id(run_id)
        if worker is not None:
            check_text(worker, "worker")
        at = await self._fetchval(RUN_HEARTBEAT, self.namespace, rid, worker, write=True)
        if at is not None:
            return at
        state = await self._fetchrow(RUN_STATE, self.namespace, rid)
        if state is None:
            raise NotFoundError(f"workflow run {rid} does not exist in namespace {self.namespace!r}")
        if state["status"] != "running":
            raise ConflictError(f"workflow run {rid} is {state['status']}, not running; stop working on it")
        raise ConflictError(f"workflow run {rid} is held by worker {state['worker']!r}, not {worker!r}")

    @operation("workflow_list_stale")
    async def workflow_list_stale(self, timeout: float | timedelta, *, limit: int = 100) -> list[WorkflowRun]:
        """Running runs whose last heartbeat is older than *timeout* (seconds), oldest first.

        One round trip.
        """
        seconds = check_seconds(timeout, "timeout")
        rows = await self._fetch(RUN_LIST_STALE, self.namespace, seconds, check_limit(limit))
        return [_run(r) for r in rows]

    @operation("workflow_requeue_stale")
    async def workflow_requeue_stale(
        self, timeout: float | timedelta, *, max_attempts: int | None = None, limit: int = 1000
    ) -> list[WorkflowRun]:
        """Put running runs whose heartbeat is older than *timeout* back to pending.

        A run that has already had ``max_attempts`` attempts is marked failed instead.
        Safe to run from several supervisors at once (SKIP LOCKED). Returns the runs as
        they are now. One round trip.
        """
        seconds = check_seconds(timeout, "timeout")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise InvalidInputError(f"max_attempts must be a positive integer or None (got {max_attempts!r})")
        rows = await self._fetch(
            RUN_REQUEUE_STALE, self.namespace, seconds, max_attempts, check_limit(limit), write=True
        )
        return [_run(r) for r in rows]

    # ------------------------------------------------------------------ maintenance

    async def _cleanup_workflow_runs(self, *, dry_run: bool, batch_size: int) -> int:
        """Delete finished runs older than ``workflow_retention_days``, in batches."""
        check_limit(batch_size, "batch_size", maximum=1_000_000)
        seconds = float(self.settings.workflow_retention_days) * 86400.0
        if dry_run:
            return int(await self._fetchval(CLEANUP_RUNS_COUNT, self.namespace, seconds))
        total = 0
        while True:
            status = await self._execute(CLEANUP_RUNS, self.namespace, seconds, batch_size)
            deleted = _rowcount(status)
            total += deleted
            if deleted < batch_size:
                return total

    def _default_worker(self) -> str:
        host, pid = getattr(self, "hostname", "host"), getattr(self, "pid", 0)
        return f"{host}:{pid}:{getattr(self, 'instance_id', '')[:8]}"

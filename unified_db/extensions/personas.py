"""PersonaMixin: LLM personas with one source of truth, versions, an audit trail and one default.

Reads by name go through :meth:`PersonaMixin._persona_read` and user lookups through
:meth:`PersonaMixin._persona_read_for_user`; every write calls
:meth:`PersonaMixin._persona_changed` inside its transaction. Those three seams are
where the near-cache (``unified_db.nearcache``, on with ``cache_local_size`` > 0) and its
LISTEN/NOTIFY invalidation plug in, with the cache's protocol (see docs/personas.md).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg

from .. import nearcache
from .. import stats as st
from ..core import Conn, operation
from ..errors import ConflictError, InvalidInputError, NotFoundError
from .persona_models import (
    DEFAULT_PERSONA,
    MAX_LIMIT,
    ImportReport,
    Persona,
    PersonaAuditEntry,
    PersonaDraft,
    PersonaMetricSummary,
    PersonaVersion,
    check_actor,
    check_metric,
    check_name,
    check_persona_type,
    check_positive_int,
    check_since,
    check_user_id,
    diff_content,
    parse_changes,
    parse_import,
    parse_persona,
    plan_import,
    search_pattern,
)

if TYPE_CHECKING:
    from ._protocol import DBProtocol as _Base
else:
    _Base = object

__all__ = [
    "ImportReport",
    "Persona",
    "PersonaAuditEntry",
    "PersonaMetricSummary",
    "PersonaMixin",
    "PersonaVersion",
]

# ---------------------------------------------------------------------------- SQL
# $1 is always the namespace.

_GET = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND name = $2 AND (is_active OR $3)
"""

_GET_FOR_UPDATE = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND name = $2
   FOR UPDATE
"""

# Rows are locked in name order, so two imports that overlap cannot deadlock.
_GET_MANY_FOR_UPDATE = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND name = ANY($2::text[])
 ORDER BY name
   FOR UPDATE
"""

_GET_DEFAULT = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND is_default
"""

# The user's choice while it is active, else the default: both branches are index lookups
# (primary keys, then the partial unique index on the default).
_GET_FOR_USER = """
SELECT * FROM (
    SELECT 0 AS rank, p.name, p.display_name, p.role, p.description, p.system_prompt, p.context,
           p.expertise, p.personality_traits, p.capabilities, p.response_format, p.persona_type,
           p.is_default, p.is_active, p.version, p.created_by, p.updated_by, p.created_at, p.updated_at
      FROM __schema__.persona_user_preferences u
      JOIN __schema__.personas p ON p.namespace = u.namespace AND p.name = u.persona_name
     WHERE u.namespace = $1 AND u.user_id = $2 AND p.is_active
    UNION ALL
    SELECT 1 AS rank, p.name, p.display_name, p.role, p.description, p.system_prompt, p.context,
           p.expertise, p.personality_traits, p.capabilities, p.response_format, p.persona_type,
           p.is_default, p.is_active, p.version, p.created_by, p.updated_by, p.created_at, p.updated_at
      FROM __schema__.personas p
     WHERE p.namespace = $1 AND p.is_default
) AS candidates
ORDER BY rank
LIMIT 1
"""

# Keyset pagination: `name > $2` stays an index condition in a generic plan ('' sorts
# before every name). One statement per filter shape, so a plan never has to serve both.
_LIST = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND name > $2 AND (is_active OR $3)
   AND ($4::text IS NULL OR name ILIKE $4 OR display_name ILIKE $4 OR description ILIKE $4)
 ORDER BY name
 LIMIT $5
"""

_LIST_BY_TYPE = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND persona_type = $6 AND name > $2 AND (is_active OR $3)
   AND ($4::text IS NULL OR name ILIKE $4 OR display_name ILIKE $4 OR description ILIKE $4)
 ORDER BY name
 LIMIT $5
"""

_EXPORT = """
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM __schema__.personas
 WHERE namespace = $1 AND (is_active OR $2)
 ORDER BY name
"""

# Create, its first version and its audit entry in one statement. ON CONFLICT DO NOTHING
# turns a duplicate into "no row" (ConflictError with a clear message) instead of an error
# that would abort the caller's transaction.
_CREATE = """
WITH ins AS (
    INSERT INTO __schema__.personas (
        namespace, name, display_name, role, description, system_prompt, context, expertise,
        personality_traits, capabilities, response_format, persona_type, is_active,
        created_by, updated_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
    ON CONFLICT (namespace, name) DO NOTHING
    RETURNING *
), ver AS (
    INSERT INTO __schema__.persona_versions (namespace, name, version, content, actor)
    SELECT namespace, name, version, $15::jsonb, $14 FROM ins
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff)
    SELECT namespace, name, 'create', $14, version, $16::jsonb FROM ins
)
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM ins
"""

# A new version (update or rollback): the row, the version's content and the audit entry.
_WRITE_VERSION = """
WITH upd AS (
    UPDATE __schema__.personas
       SET display_name = $3, role = $4, description = $5, system_prompt = $6, context = $7,
           expertise = $8, personality_traits = $9, capabilities = $10, response_format = $11,
           persona_type = $12, version = version + 1, updated_by = $13, updated_at = now()
     WHERE namespace = $1 AND name = $2
 RETURNING *
), ver AS (
    INSERT INTO __schema__.persona_versions (namespace, name, version, content, actor)
    SELECT namespace, name, version, $14::jsonb, $13 FROM upd
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff, info)
    SELECT namespace, name, $15::text, $13, version, $16::jsonb, $17::jsonb FROM upd
)
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM upd
"""

# A state change (delete, restore, default): the row and its audit entry.
_SET_STATE = """
WITH upd AS (
    UPDATE __schema__.personas
       SET is_active = $3, is_default = $4, updated_by = $5, updated_at = now()
     WHERE namespace = $1 AND name = $2
 RETURNING *
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff, info)
    SELECT namespace, name, $6::text, $5, version, $7::jsonb, $8::jsonb FROM upd
)
SELECT name, display_name, role, description, system_prompt, context, expertise, personality_traits,
       capabilities, response_format, persona_type, is_default, is_active, version, created_by,
       updated_by, created_at, updated_at
  FROM upd
"""

# Serializes every change of the default of one namespace (transaction-scoped, so it is
# safe behind PgBouncer): concurrent persona_set_default calls all succeed, one after the
# other, instead of failing on the unique index.
_LOCK_DEFAULT = "SELECT pg_advisory_xact_lock(hashtextextended('unified_db:persona_default:' || $1, 0))"

# Two statements, not one: a unique index is checked row by row, so clearing the old
# default and setting the new one in one UPDATE could trip it mid-statement.
_CLEAR_DEFAULT = """
WITH upd AS (
    UPDATE __schema__.personas SET is_default = false, updated_by = $3, updated_at = now()
     WHERE namespace = $1 AND is_default AND name <> $2
 RETURNING namespace, name, version
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff, info)
    SELECT namespace, name, 'default_changed', $3, version,
           '{"is_default": {"old": true, "new": false}}'::jsonb, jsonb_build_object('new_default', $2::text)
      FROM upd
)
SELECT name FROM upd
"""

_PURGE = """
WITH del AS (
    DELETE FROM __schema__.personas WHERE namespace = $1 AND name = $2 RETURNING namespace, name, version
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff, info)
    SELECT namespace, name, 'purge', $3, version, '{}'::jsonb, '{}'::jsonb FROM del
)
SELECT count(*) FROM del
"""

_HISTORY = """
SELECT v.name, v.version, v.actor, v.created_at, v.content
  FROM __schema__.persona_versions v
 WHERE v.namespace = $1 AND v.name = $2
 ORDER BY v.version DESC
 LIMIT $3
"""

_GET_VERSION = """
SELECT name, version, actor, created_at, content
  FROM __schema__.persona_versions
 WHERE namespace = $1 AND name = $2 AND version = $3
"""

_EXISTS = "SELECT EXISTS (SELECT 1 FROM __schema__.personas WHERE namespace = $1 AND name = $2)"

_AUDIT_ALL = """
SELECT id, name, action, actor, version, diff, info, at
  FROM __schema__.persona_audit
 WHERE namespace = $1
 ORDER BY id DESC
 LIMIT $2
"""

_AUDIT_ONE = """
SELECT id, name, action, actor, version, diff, info, at
  FROM __schema__.persona_audit
 WHERE namespace = $1 AND name = $2
 ORDER BY id DESC
 LIMIT $3
"""

# Only an active persona can be chosen; the foreign key keeps the choice pointing at a row.
_SET_PREFERENCE = """
INSERT INTO __schema__.persona_user_preferences (namespace, user_id, persona_name)
SELECT namespace, $2, name FROM __schema__.personas WHERE namespace = $1 AND name = $3 AND is_active
ON CONFLICT (namespace, user_id)
DO UPDATE SET persona_name = EXCLUDED.persona_name, updated_at = now()
RETURNING persona_name
"""

_CLEAR_PREFERENCE = "DELETE FROM __schema__.persona_user_preferences WHERE namespace = $1 AND user_id = $2"

_RECORD_METRIC = """
INSERT INTO __schema__.persona_metrics (namespace, name, metric, value, tags)
SELECT namespace, name, $3::text, $4::float8, $5::jsonb
  FROM __schema__.personas WHERE namespace = $1 AND name = $2
"""

_METRICS = """
SELECT metric, count(*) AS count, avg(value) AS mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
       min(value) AS min, max(value) AS max
  FROM __schema__.persona_metrics
 WHERE namespace = $1 AND name = $2 AND recorded_at >= coalesce($3::timestamptz, '-infinity')
 GROUP BY metric
 ORDER BY metric
"""

# Import: the whole batch as one jsonb parameter, so 10,000 personas are a handful of
# statements, not 10,000 round trips.
_IMPORT_CREATE = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset($2::jsonb)
        AS x(name text, is_active boolean, content jsonb, diff jsonb)
), ins AS (
    INSERT INTO __schema__.personas (
        namespace, name, display_name, role, description, system_prompt, context, expertise,
        personality_traits, capabilities, response_format, persona_type, is_active,
        created_by, updated_by)
    SELECT $1, x.name, x.content->>'display_name', x.content->>'role', x.content->>'description',
           x.content->>'system_prompt', x.content->>'context',
           ARRAY(SELECT jsonb_array_elements_text(x.content->'expertise')),
           x.content->'personality_traits', x.content->'capabilities', x.content->>'response_format',
           x.content->>'persona_type', x.is_active, $3, $3
      FROM x
 RETURNING name
), ver AS (
    INSERT INTO __schema__.persona_versions (namespace, name, version, content, actor)
    SELECT $1, x.name, 1, x.content, $3 FROM x
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff, info)
    SELECT $1, x.name, 'create', $3, 1, x.diff, '{"import": true}'::jsonb FROM x
)
SELECT count(*) FROM ins
"""

_IMPORT_UPDATE = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset($2::jsonb)
        AS x(name text, is_active boolean, version integer, content_changed boolean, content jsonb,
             diff jsonb)
), upd AS (
    UPDATE __schema__.personas p
       SET display_name = x.content->>'display_name', role = x.content->>'role',
           description = x.content->>'description', system_prompt = x.content->>'system_prompt',
           context = x.content->>'context',
           expertise = ARRAY(SELECT jsonb_array_elements_text(x.content->'expertise')),
           personality_traits = x.content->'personality_traits', capabilities = x.content->'capabilities',
           response_format = x.content->>'response_format', persona_type = x.content->>'persona_type',
           is_active = x.is_active, version = x.version, updated_by = $3, updated_at = now()
      FROM x
     WHERE p.namespace = $1 AND p.name = x.name
 RETURNING p.name
), ver AS (
    INSERT INTO __schema__.persona_versions (namespace, name, version, content, actor)
    SELECT $1, x.name, x.version, x.content, $3 FROM x WHERE x.content_changed
), aud AS (
    INSERT INTO __schema__.persona_audit (namespace, name, action, actor, version, diff, info)
    SELECT $1, x.name, 'update', $3, x.version, x.diff, '{"import": true}'::jsonb FROM x
)
SELECT count(*) FROM upd
"""

_NO_INFO: dict[str, Any] = {}

#: Near-cache kinds: personas by name, and what a user resolves to (user id -> persona).
KIND = "persona"
USER_KIND = "persona_user"


def _persona(row: asyncpg.Record) -> Persona:
    return Persona.model_validate(dict(row))


def _version(row: asyncpg.Record) -> PersonaVersion:
    return PersonaVersion.model_validate(
        {
            "name": row["name"],
            "version": row["version"],
            "actor": row["actor"],
            "created_at": row["created_at"],
        }
        | row["content"]
    )


def _drop_local(cache: nearcache.NearCache, names: list[str], users: list[str] | None) -> None:
    """Drop this process's L1 copies after a write: *names*, and *users* (None: every user)."""
    if names:
        cache.invalidate(KIND, names)
    if users is None:
        cache.invalidate_kind(USER_KIND)
    else:
        cache.invalidate(USER_KIND, users)


def _content_args(content: dict[str, Any]) -> tuple[Any, ...]:
    """The content fields in the order of the $3..$12 parameters of _CREATE/_WRITE_VERSION."""
    return (
        content["display_name"],
        content["role"],
        content["description"],
        content["system_prompt"],
        content["context"],
        content["expertise"],
        content["personality_traits"],
        content["capabilities"],
        content["response_format"],
        content["persona_type"],
    )


class PersonaMixin(_Base):
    """Personas: versioned, audited, soft-deletable, one default per namespace.

    The table of record is PostgreSQL: there is no file and no cache that can drift.
    """

    component_factories: ClassVar[dict[str, Any]] = {"nearcache": nearcache.factory}

    # ------------------------------------------------------------------ seams

    async def _persona_read(self, name: str, *, include_inactive: bool = False) -> Persona | None:
        """Every read of one persona by name comes here: the L1, else one indexed query.

        The L1 keeps one entry per name whatever its state (absent included), read with
        ``include_inactive``; the flag is applied to the copy served.
        """
        svc = self._component("nearcache")
        if svc is None or not svc.available:
            row = await self._fetchrow(_GET, self.namespace, name, include_inactive)
            return None if row is None else _persona(row)
        found = await self._persona_cached(svc, KIND, name, _GET, name, True)
        if found is None or (not found.is_active and not include_inactive):
            return None
        return found

    async def _persona_read_for_user(self, user_id: str) -> Persona | None:
        """Every user lookup comes here: the L1, else one indexed query."""
        svc = self._component("nearcache")
        if svc is None or not svc.available:
            row = await self._fetchrow(_GET_FOR_USER, self.namespace, user_id)
            return None if row is None else _persona(row)
        return await self._persona_cached(svc, USER_KIND, user_id, _GET_FOR_USER, user_id)

    async def _persona_changed(
        self, con: Conn, names: Collection[str], *, user_ids: Collection[str] = ()
    ) -> None:
        """Called inside every write transaction, after its statements, before the commit.

        *names*: personas whose row changed (content, state or default flag); *user_ids*:
        users whose preference changed. Publishes the invalidations on *con* (one round
        trip), so every near-cache drops them once the change commits and not at all if it
        rolls back; this process's own L1 drops them when the transaction ends. A change
        to any persona may change what any user resolves to (the default moved, a choice
        was deleted), so it drops every user lookup. Always published, near-cache or not
        (see docs/personas.md).
        """
        names = sorted(set(names))
        users = None if names else sorted(set(user_ids))
        if not names and not users:
            return
        origin = self.instance_id
        payloads = nearcache.invalidation_payloads(self.namespace, USER_KIND, users, origin=origin)
        if names:
            payloads += nearcache.invalidation_payloads(self.namespace, KIND, names, origin=origin)
        await con.fetchval(nearcache.NOTIFY_SQL, nearcache.channel(self.schema), payloads)
        svc = self._component("nearcache")
        if svc is not None:
            # Our listener ignores the echo (origin): drop our copies once the transaction
            # is over, commit or not (the write may have committed even if its answer was lost).
            con.when_done(lambda: _drop_local(svc.cache, names, users))

    async def _persona_cached(
        self, svc: nearcache.NearCacheService, kind: str, key: str, query: str, *args: Any
    ) -> Persona | None:
        """The L1's copy of (kind, key), else *query*'s row, stored unless invalidated meanwhile.

        Stored as JSON and decoded per hit (a few microseconds), so a caller that mutates
        its persona (a list, a dict) never changes what the next caller gets.
        """
        hit, stored = svc.cache.get(kind, key)
        if hit:
            self._stats.incr(st.PERSONA_LOCAL_HITS)
            return None if stored is None else Persona.model_validate_json(stored)
        self._stats.incr(st.PERSONA_LOCAL_MISSES)
        token = svc.cache.token()  # before the read: a write committed after it wins
        row = await self._fetchrow(query, self.namespace, *args)
        persona = None if row is None else _persona(row)
        svc.cache.put(kind, key, None if persona is None else persona.model_dump_json(), None, token)
        return persona

    # ------------------------------------------------------------------ helpers

    async def _persona_lock_default(self, con: Conn) -> None:
        await con.execute(_LOCK_DEFAULT, f"{self.schema}:{self.namespace}")

    async def _persona_make_default(
        self, con: Conn, name: str, actor: str | None
    ) -> tuple[Persona, str | None]:
        """Make *name* (locked, active) the default; the caller holds the default lock."""
        previous = await con.fetchval(_CLEAR_DEFAULT, self.namespace, name, actor)
        info = {"previous_default": previous} if previous else {}
        row = await con.fetchrow(
            _SET_STATE,
            self.namespace,
            name,
            True,
            True,
            actor,
            "default_changed",
            {"is_default": {"old": False, "new": True}},
            info,
        )
        return self._persona_row(row, name), previous

    async def _persona_insert(self, con: Conn, draft: PersonaDraft, actor: str | None) -> Persona:
        row = await con.fetchrow(
            _CREATE,
            self.namespace,
            draft.name,
            *_content_args(draft.content),
            draft.is_active,
            actor,
            draft.content,
            diff_content(None, draft.content),
        )
        if row is None:
            raise ConflictError(
                f"persona {draft.name!r} already exists in namespace {self.namespace!r} (perhaps "
                "soft-deleted): update it, restore it, or purge it first"
            )
        return _persona(row)

    def _persona_row(self, row: asyncpg.Record | None, name: str) -> Persona:
        # The callers hold the row lock, so the row cannot vanish; say so if it ever does.
        if row is None:
            raise NotFoundError(f"persona {name!r} vanished from namespace {self.namespace!r} mid-change")
        return _persona(row)

    async def _persona_locked(self, con: Conn, name: str) -> Persona:
        row = await con.fetchrow(_GET_FOR_UPDATE, self.namespace, name)
        if row is None:
            raise NotFoundError(f"no persona {name!r} in namespace {self.namespace!r}")
        return _persona(row)

    async def _persona_new_version(
        self,
        con: Conn,
        current: Persona,
        content: dict[str, Any],
        actor: str | None,
        action: str,
        info: dict[str, Any],
    ) -> Persona:
        row = await con.fetchrow(
            _WRITE_VERSION,
            self.namespace,
            current.name,
            *_content_args(content),
            actor,
            content,
            action,
            diff_content(current.content(), content),
            info,
        )
        return self._persona_row(row, current.name)

    # ------------------------------------------------------------------ create and read

    @operation("persona_create")
    async def persona_create(self, persona: Any, *, actor: str | None = None) -> Persona:
        """Create a persona from a dict or a ``Persona`` model; returns it at version 1.

        ``is_default=True`` moves the default to it. Raises InvalidInputError naming the
        bad field (nothing written), ConflictError when the name exists in this namespace
        (soft-deleted ones included). One transaction, 4 round trips with the NOTIFY (7 to move the
        default).
        """
        draft = parse_persona(persona)
        actor = check_actor(actor)
        async with self._transaction() as con:
            if draft.is_default:
                await self._persona_lock_default(con)
            created = await self._persona_insert(con, draft, actor)
            changed = [created.name]
            if draft.is_default:
                created, previous = await self._persona_make_default(con, created.name, actor)
                changed += [previous] if previous else []
            await self._persona_changed(con, changed)
        return created

    @operation("persona_get")
    async def persona_get(self, name: str, *, include_inactive: bool = False) -> Persona | None:
        """The persona called *name*, or None (soft-deleted ones only with ``include_inactive``).

        One indexed query (the primary key); none on a near-cache hit.
        """
        check_name(name)
        return await self._persona_read(name, include_inactive=bool(include_inactive))

    @operation("persona_list")
    async def persona_list(
        self,
        *,
        persona_type: str | None = None,
        include_inactive: bool = False,
        search: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[Persona]:
        """One page of personas ordered by name; pass the last name as ``cursor`` for the next.

        ``search`` is a case-insensitive substring of the name, display name or description
        (a filter on the page's index scan, not an index of its own). One query; a page
        costs the same at any depth (keyset pagination).
        """
        persona_type = check_persona_type(persona_type)
        pattern = search_pattern(search)
        limit = check_positive_int(limit, "limit", MAX_LIMIT)
        after = "" if cursor is None else check_name(cursor, "cursor")
        args: tuple[Any, ...] = (self.namespace, after, bool(include_inactive), pattern, limit)
        if persona_type is None:
            rows = await self._fetch(_LIST, *args)
        else:
            rows = await self._fetch(_LIST_BY_TYPE, *args, persona_type)
        return [_persona(r) for r in rows]

    # ------------------------------------------------------------------ versions

    @operation("persona_update")
    async def persona_update(
        self,
        name: str,
        changes: Any,
        *,
        actor: str | None = None,
        expected_version: int | None = None,
    ) -> Persona:
        """Change content fields; the result is version + 1 and the old version stays in history.

        ``changes``: a dict of content fields (display_name, role, description,
        system_prompt, context, expertise, personality_traits, capabilities,
        response_format, persona_type). Changes equal to the current values write nothing
        and return the persona as it is. ``expected_version``: optimistic concurrency, a
        different current version is ConflictError. Raises InvalidInputError,
        NotFoundError. One transaction, 3 round trips (with the NOTIFY) plus BEGIN/COMMIT.
        """
        check_name(name)
        fields = parse_changes(changes)
        actor = check_actor(actor)
        if expected_version is not None:
            check_positive_int(expected_version, "expected_version")
        async with self._transaction() as con:
            current = await self._persona_locked(con, name)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"persona {name!r} is at version {current.version}, not {expected_version}: "
                    "someone changed it meanwhile; read it again and reapply your change"
                )
            content = current.content() | fields
            if content == current.content():
                return current
            updated = await self._persona_new_version(con, current, content, actor, "update", _NO_INFO)
            await self._persona_changed(con, [name])
        return updated

    @operation("persona_history")
    async def persona_history(self, name: str, *, limit: int = 100) -> list[PersonaVersion]:
        """The persona's versions, newest first (the current one included).

        Raises NotFoundError when there is no such persona. One query (two when empty).
        """
        check_name(name)
        limit = check_positive_int(limit, "limit", MAX_LIMIT)
        rows = await self._fetch(_HISTORY, self.namespace, name, limit)
        if not rows and not await self._fetchval(_EXISTS, self.namespace, name):
            raise NotFoundError(f"no persona {name!r} in namespace {self.namespace!r}")
        return [_version(r) for r in rows]

    @operation("persona_get_version")
    async def persona_get_version(self, name: str, version: int) -> PersonaVersion | None:
        """The content of one version of a persona, or None when there is no such version.

        One indexed query.
        """
        check_name(name)
        check_positive_int(version, "version")
        row = await self._fetchrow(_GET_VERSION, self.namespace, name, version)
        return None if row is None else _version(row)

    @operation("persona_rollback")
    async def persona_rollback(self, name: str, version: int, *, actor: str | None = None) -> Persona:
        """Write a new version whose content equals *version*'s (history is never rewritten).

        Raises NotFoundError when the persona or the version does not exist. One
        transaction, 4 round trips (with the NOTIFY) plus BEGIN/COMMIT.
        """
        check_name(name)
        check_positive_int(version, "version")
        actor = check_actor(actor)
        async with self._transaction() as con:
            current = await self._persona_locked(con, name)
            row = await con.fetchrow(_GET_VERSION, self.namespace, name, version)
            if row is None:
                raise NotFoundError(
                    f"persona {name!r} has no version {version} (current is {current.version}); "
                    "see persona_history"
                )
            target = _version(row).content()
            info = {"rolled_back_to": version, "previous_version": current.version}
            updated = await self._persona_new_version(con, current, target, actor, "rollback", info)
            await self._persona_changed(con, [name])
        return updated

    # ------------------------------------------------------------------ soft delete

    async def _persona_set_active(self, name: str, active: bool, actor: str | None) -> Persona:
        async with self._transaction() as con:
            current = await self._persona_locked(con, name)
            if current.is_active == active:
                return current
            if current.is_default and not active:
                raise ConflictError(
                    f"persona {name!r} is the default: make another persona the default first "
                    "(persona_set_default), then delete this one"
                )
            row = await con.fetchrow(
                _SET_STATE,
                self.namespace,
                name,
                active,
                False,
                actor,
                "restore" if active else "delete",
                {"is_active": {"old": not active, "new": active}},
                _NO_INFO,
            )
            persona = self._persona_row(row, name)
            await self._persona_changed(con, [name])
        return persona

    @operation("persona_delete")
    async def persona_delete(self, name: str, *, actor: str | None = None) -> Persona:
        """Soft-delete: hide the persona from get, list and user lookups; keeps its history.

        Users who chose it fall back to the default. Deleting a deleted persona changes
        nothing. Raises NotFoundError, ConflictError for the default persona. One
        transaction, 3 round trips (with the NOTIFY) plus BEGIN/COMMIT.
        """
        check_name(name)
        return await self._persona_set_active(name, False, check_actor(actor))

    @operation("persona_restore")
    async def persona_restore(self, name: str, *, actor: str | None = None) -> Persona:
        """Undo a soft delete. Raises NotFoundError. One transaction, 3 round trips + BEGIN/COMMIT."""
        check_name(name)
        return await self._persona_set_active(name, True, check_actor(actor))

    @operation("persona_purge")
    async def persona_purge(self, name: str, *, actor: str | None = None) -> None:
        """Delete for good: the persona, its versions, metrics and the preferences naming it.

        The audit trail is kept (with a ``purge`` entry). Raises NotFoundError,
        ConflictError for the default persona. One transaction, 3 round trips + BEGIN/COMMIT.
        """
        check_name(name)
        actor = check_actor(actor)
        async with self._transaction() as con:
            current = await self._persona_locked(con, name)
            if current.is_default:
                raise ConflictError(
                    f"persona {name!r} is the default: make another persona the default first"
                )
            await con.fetchval(_PURGE, self.namespace, name, actor)
            await self._persona_changed(con, [name])

    # ------------------------------------------------------------------ default

    @operation("persona_set_default")
    async def persona_set_default(self, name: str, *, actor: str | None = None) -> Persona:
        """Make *name* the one default persona of this namespace (the old one stops being it).

        Concurrent calls are serialized by a transaction-scoped advisory lock, so each
        succeeds and exactly one default remains (the last to commit); the partial unique
        index guarantees it regardless. Raises NotFoundError, ConflictError for a
        soft-deleted persona. One transaction, 5 round trips (with the NOTIFY) plus BEGIN/COMMIT.
        """
        check_name(name)
        actor = check_actor(actor)
        async with self._transaction() as con:
            await self._persona_lock_default(con)
            current = await self._persona_locked(con, name)
            if current.is_default:
                return current
            if not current.is_active:
                raise ConflictError(
                    f"persona {name!r} is soft-deleted: restore it before making it the default"
                )
            persona, previous = await self._persona_make_default(con, name, actor)
            await self._persona_changed(con, [name, previous] if previous else [name])
        return persona

    @operation("persona_get_default")
    async def persona_get_default(self) -> Persona | None:
        """The default persona, or None before one is set. One indexed query."""
        row = await self._fetchrow(_GET_DEFAULT, self.namespace)
        return None if row is None else _persona(row)

    @operation("persona_initialize_default")
    async def persona_initialize_default(self, *, persona: Any = None, actor: str | None = None) -> Persona:
        """Return the default persona, creating one first when there is none. Idempotent.

        *persona*: what to create (dict or model) instead of the built-in ``assistant``;
        an existing active persona of that name is made the default rather than
        replaced. Raises ConflictError when that name exists but is soft-deleted.
        One transaction: 4 round trips when a default exists, up to 8 otherwise.
        """
        draft = parse_persona(DEFAULT_PERSONA if persona is None else persona)
        if not draft.is_active:
            raise InvalidInputError("persona.is_active: the default persona must be active")
        actor = check_actor(actor)
        async with self._transaction() as con:
            await self._persona_lock_default(con)
            row = await con.fetchrow(_GET_DEFAULT, self.namespace)
            if row is not None:
                return _persona(row)
            existing = await con.fetchrow(_GET_FOR_UPDATE, self.namespace, draft.name)
            if existing is not None and not existing["is_active"]:
                raise ConflictError(
                    f"persona {draft.name!r} exists but is soft-deleted: restore or purge it, "
                    "or pass another persona"
                )
            if existing is None:
                await self._persona_insert(con, draft, actor)
            result, _ = await self._persona_make_default(con, draft.name, actor)
            await self._persona_changed(con, [draft.name])
        return result

    # ------------------------------------------------------------------ users

    @operation("persona_set_user_preference")
    async def persona_set_user_preference(self, user_id: str, name: str | None) -> None:
        """Record which persona *user_id* wants; ``name=None`` clears the choice.

        Raises NotFoundError when *name* is not an active persona. One statement in a
        transaction (4 round trips with BEGIN/COMMIT and the NOTIFY).
        """
        check_user_id(user_id)
        if name is not None:
            check_name(name)
        async with self._transaction() as con:
            if name is None:
                await con.execute(_CLEAR_PREFERENCE, self.namespace, user_id)
            elif await con.fetchval(_SET_PREFERENCE, self.namespace, user_id, name) is None:
                raise NotFoundError(f"no active persona {name!r} in namespace {self.namespace!r}")
            await self._persona_changed(con, (), user_ids=[user_id])

    @operation("persona_get_for_user")
    async def persona_get_for_user(self, user_id: str) -> Persona | None:
        """The persona *user_id* chose while it is active, else the default (None if neither).

        One indexed query; none on a near-cache hit.
        """
        check_user_id(user_id)
        return await self._persona_read_for_user(user_id)

    # ------------------------------------------------------------------ audit and metrics

    @operation("persona_audit_log")
    async def persona_audit_log(
        self, name: str | None = None, *, limit: int = 100
    ) -> list[PersonaAuditEntry]:
        """Audit entries, newest first: of one persona (purged ones too) or of the namespace.

        One indexed query.
        """
        limit = check_positive_int(limit, "limit", MAX_LIMIT)
        if name is None:
            rows = await self._fetch(_AUDIT_ALL, self.namespace, limit)
        else:
            rows = await self._fetch(_AUDIT_ONE, self.namespace, check_name(name), limit)
        return [PersonaAuditEntry.model_validate(dict(r)) for r in rows]

    @operation("persona_record_metric")
    async def persona_record_metric(
        self, name: str, metric: str, value: float, *, tags: dict[str, Any] | None = None
    ) -> None:
        """Record one observation of *metric* (e.g. latency_ms, rating) for a persona.

        Raises NotFoundError when there is no such persona (soft-deleted ones count).
        One statement.
        """
        check_name(name)
        metric, value, tags = check_metric(metric, value, tags)
        status = await self._execute(_RECORD_METRIC, self.namespace, name, metric, value, tags)
        if status.endswith(" 0"):
            raise NotFoundError(f"no persona {name!r} in namespace {self.namespace!r}")

    @operation("persona_metrics")
    async def persona_metrics(self, name: str, *, since: Any = None) -> list[PersonaMetricSummary]:
        """Count, mean, p50, p95, min and max per metric of a persona, by metric name.

        ``since``: an aware datetime, or a timedelta back from now. An unknown persona has
        no metrics (an empty list). One query.
        """
        check_name(name)
        start = check_since(since)
        rows = await self._fetch(_METRICS, self.namespace, name, start)
        return [PersonaMetricSummary.model_validate(dict(r)) for r in rows]

    # ------------------------------------------------------------------ import and export

    @operation("persona_import")
    async def persona_import(
        self, items: Any, *, upsert: bool = True, actor: str | None = None
    ) -> ImportReport:
        """Create or update many personas, all or nothing, in one transaction.

        Every record is validated first: one bad record raises InvalidInputError naming it
        (index and name) and writes nothing. With ``upsert=False`` an existing name is
        ConflictError. A record equal to the stored persona (content and is_active) is
        reported unchanged and not written; ``is_default: true`` moves the default.
        Read-only fields (version, timestamps) are ignored, so ``persona_export`` output
        imports as is. Round trips do not grow with the batch: at most 7 plus BEGIN/COMMIT.
        """
        drafts = parse_import(items)
        actor = check_actor(actor)
        if not drafts:
            return ImportReport()
        names = [d.name for d in drafts]
        moves_default = any(d.is_default for d in drafts)
        async with self._transaction() as con:
            if moves_default:
                await self._persona_lock_default(con)
            rows = await con.fetch(_GET_MANY_FOR_UPDATE, self.namespace, names)
            plan = plan_import(drafts, {r["name"]: _persona(r) for r in rows})
            if not upsert and len(plan.creates) != len(drafts):
                taken = sorted({r["name"] for r in rows})
                raise ConflictError(
                    f"{len(taken)} persona(s) already exist ({', '.join(taken[:10])}"
                    f"{', ...' if len(taken) > 10 else ''}); nothing was imported. "
                    "Use upsert=True to update them"
                )
            if plan.creates:
                payload = [
                    {
                        "name": d.name,
                        "is_active": d.is_active,
                        "content": d.content,
                        "diff": diff_content(None, d.content),
                    }
                    for d in plan.creates
                ]
                await con.fetchval(_IMPORT_CREATE, self.namespace, payload, actor)
            if plan.updates:
                payload = [
                    {
                        "name": d.name,
                        "is_active": d.is_active,
                        "version": version,
                        "content_changed": changed,
                        "content": d.content,
                        "diff": diff,
                    }
                    for d, version, changed, diff in plan.updates
                ]
                await con.fetchval(_IMPORT_UPDATE, self.namespace, payload, actor)
            touched = [d.name for d in plan.creates] + [u[0].name for u in plan.updates]
            if plan.default is not None:
                _, previous = await self._persona_make_default(con, plan.default, actor)
                touched += [plan.default] + ([previous] if previous else [])
            if touched:
                await self._persona_changed(con, sorted(set(touched)))
        default_only = [plan.default] if plan.default is not None and plan.default in plan.unchanged else []
        return ImportReport(
            created=[d.name for d in plan.creates],
            updated=[u[0].name for u in plan.updates] + default_only,
            unchanged=[n for n in plan.unchanged if n not in default_only],
        )

    @operation("persona_export")
    async def persona_export(self, *, include_inactive: bool = True) -> list[Persona]:
        """Every persona of this namespace, by name, in the shape ``persona_import`` accepts.

        One query (the whole namespace in memory: page with persona_list for huge sets).
        """
        rows = await self._fetch(_EXPORT, self.namespace, bool(include_inactive))
        return [_persona(r) for r in rows]

"""Memory snapshots: immutable, versioned copies of an agent's state (a JSON object).

Every write appends a row; nothing is updated in place. Versions come from a per-agent
head row (``memory_snapshot_heads``) bumped in the same statement as the insert, so they
are gap-free under concurrent writers and a deleted snapshot's version is never reused.
Search is PostgreSQL full text over a generated ``tsvector`` (label, tags and every
string value of the state) with a GIN index. See docs/agent-state.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg
import orjson
from pydantic import BaseModel, Field

from ..codecs import dumps, loads
from ..core import operation
from ..errors import FeatureUnavailableError, InvalidInputError, NotFoundError
from ..vectors import base as vb

# The reserved vector collection (one per namespace) holding snapshot embeddings; the item
# id is the snapshot id. See docs/agent-state.md (### Semantic search (embeddings)).
from .vectors import SNAPSHOT_COLLECTION

if TYPE_CHECKING:
    from ..core import Conn
    from ._protocol import DBProtocol as _Base
else:
    _Base = object


MAX_AGENT_ID_CHARS = 256
MAX_LABEL_CHARS = 1024
MAX_TAG_CHARS = 128
MAX_TAGS = 64
MAX_METADATA_BYTES = 1024 * 1024
MAX_QUERY_CHARS = 1024
MAX_LIST_LIMIT = 1000
MAX_SEARCH_LIMIT = 200
#: Reciprocal rank fusion constant of a hybrid (text and embedding) search.
SEARCH_RRF_K = 60
MAX_ID = 2**63 - 1
#: A state larger than this (as JSON) is indexed for search by a prefix of at most this
#: many bytes of its string values (mirrors 0004_memory.sql; a tsvector holds at most 1 MB).
SEARCH_INDEX_PREFIX_BYTES = 256 * 1024
#: ts_headline reads at most this much of the document, so an excerpt stays cheap.
EXCERPT_SOURCE_CHARS = 64 * 1024

# ---------------------------------------------------------------------------- models


class MemorySnapshot(BaseModel):
    """One immutable snapshot. ``state`` is None when it was not asked for (lists, search)."""

    id: int
    agent_id: str
    version: int
    state: dict[str, Any] | None = None
    label: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    size_bytes: int
    restored_from: int | None = None


class SnapshotHit(BaseModel):
    """A search result: the snapshot, its rank (higher is better) and a highlighted excerpt.

    ``rank`` is ``ts_rank_cd`` for a text search, the cosine similarity for an embedding
    search and the reciprocal rank fusion score when both were given. The excerpt marks
    matches with ``<b>``/``</b>`` and is NOT HTML-escaped: escape the rest of it before
    rendering it as HTML. A hit found by its embedding only has the label (or "") instead.
    """

    snapshot: MemorySnapshot
    rank: float
    excerpt: str


class StateDiff(BaseModel):
    """JSON Pointer paths (RFC 6901) added, removed and changed from snapshot ``a`` to ``b``."""

    a_id: int
    b_id: int
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


class AgentSnapshotStats(BaseModel):
    agent_id: str
    count: int
    bytes: int
    oldest: datetime
    newest: datetime
    latest_version: int


class MemorySnapshotStats(BaseModel):
    """Totals over the agents asked for, and the same figures per agent."""

    count: int = 0
    bytes: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    agents: list[AgentSnapshotStats] = Field(default_factory=list)


# ---------------------------------------------------------------------------- pure logic

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(name: str, value: Any, max_chars: int, *, allow_none: bool = False) -> str | None:
    """*value* when it is a non-empty string of at most *max_chars* without NUL/control chars."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r:.80}")
    if len(value) > max_chars:
        raise InvalidInputError(f"{name} must be at most {max_chars} characters, got {len(value)}")
    if _CONTROL.search(value):
        raise InvalidInputError(f"{name} must not contain NUL or control characters")
    return value


def check_id(name: str, value: Any) -> int:
    """A snapshot id: a positive integer (ids are bigint identities)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidInputError(f"{name} must be a positive integer snapshot id, got {value!r:.80}")
    return value


def check_limit(name: str, value: Any, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInputError(f"{name} must be an integer from 1 to {maximum}, got {value!r:.80}")
    return value


def check_tags(value: Any, *, name: str = "tags") -> list[str]:
    """Tags as a sorted list without duplicates; a bare string is refused (a common slip)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError(f"{name} must be a list of strings (not a single string), got {value!r:.80}")
    tags = list(value)
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(f"{name} accepts at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        check_text(f"each of {name}", tag, MAX_TAG_CHARS)
    return sorted(set(tags))


def check_time(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime or None, got {value!r:.80}")
    return value


def check_seconds(name: str, value: Any) -> float | None:
    """A duration (timedelta or seconds) as seconds; None stays None."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    ok = not isinstance(seconds, bool) and isinstance(seconds, (int, float))
    if not ok or not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(
            f"{name} must be a timedelta or a number of seconds >= 0, or None; got {value!r:.80}"
        )
    return float(seconds)


def encode_state(state: Any, max_bytes: int) -> bytes:
    """The compact JSON of *state* (a JSON object), refusing what the server would refuse."""
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"state must be a JSON object (a dict), got {type(state).__name__}")
    try:
        encoded = dumps(state)
    except InvalidInputError as exc:
        raise InvalidInputError(f"state is not JSON: {exc}") from None
    if len(encoded) > max_bytes:
        raise InvalidInputError(
            f"state is {len(encoded):,} bytes of JSON; at most {max_bytes:,} are accepted "
            "(setting memory_max_state_bytes)"
        )
    return encoded


def encode_metadata(metadata: Any) -> bytes:
    if metadata is None:
        return b"{}"
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    try:
        encoded = dumps(metadata)
    except InvalidInputError as exc:
        raise InvalidInputError(f"metadata is not JSON: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata must be at most {MAX_METADATA_BYTES:,} bytes of JSON")
    return encoded


def _pointer(parent: str, key: str | int) -> str:
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{parent}/{token}"


def _same_leaf(a: Any, b: Any) -> bool:
    # JSON has one number type but true is not 1: compare bools by identity of type.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def diff_json(a: Any, b: Any, path: str = "") -> tuple[list[str], list[str], list[str]]:
    """The (added, removed, changed) JSON Pointer paths from *a* to *b*.

    Objects are compared key by key and arrays index by index, recursively; a value whose
    type changes (object to array, number to string) is one changed path. The root is "".
    """
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    stack: list[tuple[Any, Any, str]] = [(a, b, path)]
    while stack:
        x, y, p = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            for k in x.keys() - y.keys():
                removed.append(_pointer(p, k))
            for k in y.keys() - x.keys():
                added.append(_pointer(p, k))
            for k in x.keys() & y.keys():
                stack.append((x[k], y[k], _pointer(p, k)))
        elif isinstance(x, list) and isinstance(y, list):
            common = min(len(x), len(y))
            for i in range(common, len(x)):
                removed.append(_pointer(p, i))
            for i in range(common, len(y)):
                added.append(_pointer(p, i))
            for i in range(common):
                stack.append((x[i], y[i], _pointer(p, i)))
        elif isinstance(x, (dict, list)) or isinstance(y, (dict, list)):
            changed.append(p)
        elif not _same_leaf(x, y):
            changed.append(p)
    return sorted(added), sorted(removed), sorted(changed)


def search_candidates(limit: int, filtered: bool) -> int:
    """How many nearest embeddings to fetch for *limit* hits: more when tags filter them
    afterwards (or when fused with a text ranking), within the vector search maximum."""
    return min(max(4 * limit, 40), vb.MAX_K) if filtered else limit


def fuse_rankings(vector_ids: Sequence[int], text_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
    """(snapshot id, fused score) best first: reciprocal rank fusion of the two rankings."""
    fused = vb.rrf_fuse(
        [[str(i) for i in vector_ids], [str(i) for i in text_ids]], k=limit, rrf_k=SEARCH_RRF_K
    )
    return [(int(i), score) for i, score in fused]


def retention_rule(keep_last: Any, older_than: Any) -> tuple[int, float | None]:
    """(keep_last, older_than_seconds) for the cleanup SQL.

    A snapshot is deleted when it is not among its agent's *keep_last* newest AND (when
    *older_than* is given) older than that. *keep_last* is at least 1: the latest snapshot
    of an agent is never deleted. At least one rule is required.
    """
    if keep_last is None and older_than is None:
        raise InvalidInputError("give keep_last, older_than or both: with neither, nothing would be kept")
    bad_keep = isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
    if keep_last is not None and bad_keep:
        raise InvalidInputError(f"keep_last must be an integer >= 1 or None, got {keep_last!r:.80}")
    seconds = check_seconds("older_than", older_than)
    return (keep_last or 1), seconds


# ---------------------------------------------------------------------------- SQL

# The head row is bumped (and locked until commit) in the same statement as the insert:
# a failed insert rolls the bump back, so versions stay gap-free.
_CREATE = """
WITH head AS (
    INSERT INTO __schema__.memory_snapshot_heads AS h (namespace, agent_id, version)
    VALUES ($1, $2, 1)
    ON CONFLICT (namespace, agent_id) DO UPDATE SET version = h.version + 1
    RETURNING h.version
)
INSERT INTO __schema__.memory_snapshots AS s
    (namespace, agent_id, version, state, label, tags, metadata, size_bytes)
SELECT $1, $2, head.version, $3::jsonb, $4, $5::text[], $6::jsonb, $7 FROM head
RETURNING s.id, s.agent_id, s.version, s.label, s.tags, s.metadata, s.created_at,
          s.size_bytes, s.restored_from
"""

# The state is copied inside the server: a restore never moves it over the network.
_RESTORE = """
WITH src AS (
    SELECT id, agent_id, state, label, tags, metadata, size_bytes
      FROM __schema__.memory_snapshots WHERE namespace = $1 AND id = $2
), head AS (
    INSERT INTO __schema__.memory_snapshot_heads AS h (namespace, agent_id, version)
    SELECT $1, src.agent_id, 1 FROM src
    ON CONFLICT (namespace, agent_id) DO UPDATE SET version = h.version + 1
    RETURNING h.version
)
INSERT INTO __schema__.memory_snapshots AS s
    (namespace, agent_id, version, state, label, tags, metadata, size_bytes, restored_from)
SELECT $1, src.agent_id, head.version, src.state, src.label, src.tags, src.metadata,
       src.size_bytes, src.id
  FROM src, head
RETURNING s.id, s.agent_id, s.version, s.state, s.label, s.tags, s.metadata, s.created_at,
          s.size_bytes, s.restored_from
"""

_GET = """
SELECT s.id, s.agent_id, s.version, s.state, s.label, s.tags, s.metadata, s.created_at,
       s.size_bytes, s.restored_from
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND s.id = $2
"""

_LATEST = """
SELECT s.id, s.agent_id, s.version, s.state, s.label, s.tags, s.metadata, s.created_at,
       s.size_bytes, s.restored_from
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND s.agent_id = $2
 ORDER BY s.version DESC
 LIMIT 1
"""

_GET_VERSION = """
SELECT s.id, s.agent_id, s.version, s.state, s.label, s.tags, s.metadata, s.created_at,
       s.size_bytes, s.restored_from
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND s.agent_id = $2 AND s.version = $3
"""

# Two list statements, so each plan walks its own index backwards. A missing optional
# filter is an open bound (coalesce), not an OR, so a generic plan still uses the index.
_LIST_AGENT = """
SELECT s.id, s.agent_id, s.version, CASE WHEN $8::bool THEN s.state END AS state, s.label,
       s.tags, s.metadata, s.created_at, s.size_bytes, s.restored_from
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND s.agent_id = $2
   AND s.id < coalesce($3::bigint, 9223372036854775807)
   AND ($4::text[] IS NULL OR s.tags @> $4::text[])
   AND s.created_at >= coalesce($5::timestamptz, '-infinity')
   AND s.created_at < coalesce($6::timestamptz, 'infinity')
 ORDER BY s.id DESC
 LIMIT $7
"""
_LIST_ALL = """
SELECT s.id, s.agent_id, s.version, CASE WHEN $8::bool THEN s.state END AS state, s.label,
       s.tags, s.metadata, s.created_at, s.size_bytes, s.restored_from
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND $2::text IS NULL
   AND s.id < coalesce($3::bigint, 9223372036854775807)
   AND ($4::text[] IS NULL OR s.tags @> $4::text[])
   AND s.created_at >= coalesce($5::timestamptz, '-infinity')
   AND s.created_at < coalesce($6::timestamptz, 'infinity')
 ORDER BY s.id DESC
 LIMIT $7
"""

_DELETE = "DELETE FROM __schema__.memory_snapshots WHERE namespace = $1 AND id = $2"

# Snapshots found by their embeddings, filtered like a text search; the caller orders them.
_GET_HITS = """
SELECT s.id, s.agent_id, s.version, CASE WHEN $5::bool THEN s.state END AS state, s.label,
       s.tags, s.metadata, s.created_at, s.size_bytes, s.restored_from
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND s.id = ANY($2::bigint[])
   AND ($3::text IS NULL OR s.agent_id = $3)
   AND ($4::text[] IS NULL OR s.tags @> $4::text[])
"""

# Rank every match, keep the best $5, and only then build excerpts: ts_headline is the
# expensive part (it re-parses the document text), so it runs on at most $5 rows.
_SEARCH = """
WITH q AS (SELECT websearch_to_tsquery('english'::regconfig, $2) AS q),
hits AS (
    SELECT s.id, ts_rank_cd(s.search, q.q, 1) AS rank
      FROM __schema__.memory_snapshots s, q
     WHERE s.namespace = $1 AND s.search @@ q.q
       AND ($3::text IS NULL OR s.agent_id = $3)
       AND ($4::text[] IS NULL OR s.tags @> $4::text[])
     ORDER BY rank DESC, s.id DESC
     LIMIT $5
)
SELECT s.id, s.agent_id, s.version, CASE WHEN $7::bool THEN s.state END AS state, s.label,
       s.tags, s.metadata, s.created_at, s.size_bytes, s.restored_from, hits.rank,
       ts_headline('english'::regconfig,
                   left(concat_ws(E'\n', s.label, array_to_string(s.tags, ' '),
                                  __schema__.memory_state_text(s.state)), $6),
                   q.q, 'MaxFragments=2, MaxWords=24, MinWords=8, FragmentDelimiter=" ... "') AS excerpt
  FROM hits JOIN __schema__.memory_snapshots s ON s.id = hits.id AND s.namespace = $1, q
 ORDER BY hits.rank DESC, hits.id DESC
"""

_DIFF_PAIR = """
SELECT s.id, s.state FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND s.id = ANY($2::bigint[])
"""

_STATS = """
SELECT s.agent_id, count(*) AS count, sum(s.size_bytes)::bigint AS bytes,
       min(s.created_at) AS oldest, max(s.created_at) AS newest, max(s.version) AS latest_version
  FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND ($2::text IS NULL OR s.agent_id = $2)
 GROUP BY s.agent_id
 ORDER BY s.agent_id
"""

# A snapshot is doomed when its agent has at least $3 newer snapshots (so the latest, with
# none newer, never is) and, when $4 is given, it is older than $4 seconds. The EXISTS walks
# at most $3 index entries above the row. Batches are claimed with SKIP LOCKED: concurrent
# cleanups never wait on each other and never delete a row twice.
_RETENTION_DELETE = """
WITH doomed AS (
    SELECT s.id FROM __schema__.memory_snapshots s
     WHERE s.namespace = $1 AND ($2::text IS NULL OR s.agent_id = $2)
       AND ($4::float8 IS NULL OR s.created_at < now() - make_interval(secs => $4::float8))
       AND EXISTS (
           SELECT 1 FROM __schema__.memory_snapshots n
            WHERE n.namespace = s.namespace AND n.agent_id = s.agent_id AND n.version > s.version
            ORDER BY n.version OFFSET $3::int - 1 LIMIT 1)
     ORDER BY s.id
     LIMIT $5
     FOR UPDATE OF s SKIP LOCKED
)
DELETE FROM __schema__.memory_snapshots d USING doomed WHERE d.id = doomed.id
RETURNING d.id
"""
_RETENTION_COUNT = """
SELECT count(*) FROM __schema__.memory_snapshots s
 WHERE s.namespace = $1 AND ($2::text IS NULL OR s.agent_id = $2)
   AND ($4::float8 IS NULL OR s.created_at < now() - make_interval(secs => $4::float8))
   AND EXISTS (
       SELECT 1 FROM __schema__.memory_snapshots n
        WHERE n.namespace = s.namespace AND n.agent_id = s.agent_id AND n.version > s.version
        ORDER BY n.version OFFSET $3::int - 1 LIMIT 1)
"""


def _snapshot(row: asyncpg.Record) -> MemorySnapshot:
    # Rows come from our own typed columns: construct without re-validating (a 1 MB state
    # would otherwise be walked once more for nothing).
    return MemorySnapshot.model_construct(
        id=row["id"],
        agent_id=row["agent_id"],
        version=row["version"],
        state=row.get("state"),
        label=row["label"],
        tags=row["tags"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        size_bytes=row["size_bytes"],
        restored_from=row["restored_from"],
    )


def _text_hit(row: asyncpg.Record) -> SnapshotHit:
    # The document joins values with newlines; an excerpt reads better on one line.
    return SnapshotHit(snapshot=_snapshot(row), rank=row["rank"], excerpt=" ".join(row["excerpt"].split()))


def _deleted(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


# ---------------------------------------------------------------------------- mixin


class MemorySnapshotMixin(_Base):
    """Versioned, immutable agent state snapshots with full-text search and retention."""

    cleanup_steps: ClassVar[tuple[str, ...]] = ("snapshots",)

    @operation("memory_snapshot_create")
    async def memory_snapshot_create(
        self,
        agent_id: str,
        state: Mapping[str, Any],
        *,
        label: str | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        embedding: Any = None,
    ) -> MemorySnapshot:
        """Append a snapshot of *state* as the agent's next version (previous + 1, gap-free).

        *state* must be a JSON object of at most ``memory_max_state_bytes`` (50 MiB) once
        encoded; *tags* are stored sorted without duplicates. The returned model's
        ``state`` is the object passed in, not read back. *embedding* (a list of numbers or
        a 1-D numpy array) makes the snapshot findable by ``memory_snapshot_search(...,
        embedding=...)``; it is stored with pgvector in the same transaction as the
        snapshot, and every embedding of a namespace has the length of the first one.

        Raises InvalidInputError, with nothing written, for a bad argument (an embedding
        with NaN, infinity, no numbers, all zeros, or another length than the stored
        ones); FeatureUnavailableError, with nothing written, for an embedding on a server
        without pgvector. One round trip without an embedding; with one, a transaction of
        two statements (plus, once per namespace and process, the catalog lookup, and
        the first time ever, creating the collection).
        """
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS)
        label = check_text("label", label, MAX_LABEL_CHARS, allow_none=True)
        tag_list = check_tags(tags)
        meta = encode_metadata(metadata)
        encoded = encode_state(state, self.settings.memory_max_state_bytes)
        args = (
            self.namespace,
            agent,
            orjson.Fragment(encoded),  # encoded once: the codec passes it through
            label,
            tag_list,
            orjson.Fragment(meta),
            len(encoded),
        )
        if embedding is None:
            row = await self._fetchrow(_CREATE, *args, write=True)
        else:
            if not self._memory_has_vectors():
                raise FeatureUnavailableError("snapshot embeddings need the vectors feature (VectorMixin)")
            vec = await self._vector_reserved_check(SNAPSHOT_COLLECTION, embedding)
            # Created (once) outside the transaction below: it takes DDL locks of its own.
            await self._vector_reserved_ensure(SNAPSHOT_COLLECTION, len(vec))
            async with self._transaction() as con:
                row = await con.fetchrow(_CREATE, *args)
                assert row is not None
                await self._vector_reserved_upsert(
                    SNAPSHOT_COLLECTION,
                    str(row["id"]),
                    vec,
                    con=con,
                    content=label or "",
                    metadata={"agent_id": agent},
                )
        assert row is not None
        snapshot = _snapshot(row)
        # Not read back: a 50 MiB state would cross the network twice for nothing.
        snapshot.state = state if isinstance(state, dict) else dict(state)
        return snapshot

    @operation("memory_snapshot_get")
    async def memory_snapshot_get(self, snapshot_id: int) -> MemorySnapshot | None:
        """The snapshot *snapshot_id* with its state, or None. One round trip."""
        sid = check_id("snapshot_id", snapshot_id)
        row = await self._fetchrow(_GET, self.namespace, sid)
        return None if row is None else _snapshot(row)

    @operation("memory_snapshot_latest")
    async def memory_snapshot_latest(self, agent_id: str) -> MemorySnapshot | None:
        """The agent's highest version with its state, or None. One round trip."""
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS)
        row = await self._fetchrow(_LATEST, self.namespace, agent)
        return None if row is None else _snapshot(row)

    @operation("memory_snapshot_get_version")
    async def memory_snapshot_get_version(self, agent_id: str, version: int) -> MemorySnapshot | None:
        """The agent's snapshot *version* (from 1) with its state, or None. One round trip."""
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 2**31 - 1:
            raise InvalidInputError(f"version must be a positive integer, got {version!r:.80}")
        row = await self._fetchrow(_GET_VERSION, self.namespace, agent, version)
        return None if row is None else _snapshot(row)

    @operation("memory_snapshot_list")
    async def memory_snapshot_list(
        self,
        agent_id: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: int | None = None,
        include_state: bool = False,
    ) -> list[MemorySnapshot]:
        """Snapshots newest first, one page of at most *limit*.

        *tags*: only snapshots having all of them. *since* (inclusive) and *until*
        (exclusive) bound ``created_at`` and must be timezone-aware. *cursor*: the ``id``
        of the last snapshot of the previous page (it may have been deleted since).
        ``state`` is None unless *include_state*. Raises InvalidInputError for a bad
        argument or cursor. One round trip.
        """
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS, allow_none=True)
        tag_list = None if tags is None else check_tags(tags)
        start = check_time("since", since)
        end = check_time("until", until)
        lim = check_limit("limit", limit, MAX_LIST_LIMIT)
        after = None if cursor is None else check_id("cursor", cursor)
        if not isinstance(include_state, bool):
            raise InvalidInputError(f"include_state must be True or False, got {include_state!r:.80}")
        query = _LIST_ALL if agent is None else _LIST_AGENT
        rows = await self._fetch(
            query, self.namespace, agent, after, tag_list or None, start, end, lim, include_state
        )
        return [_snapshot(r) for r in rows]

    @operation("memory_snapshot_delete")
    async def memory_snapshot_delete(self, snapshot_id: int) -> bool:
        """Delete one snapshot (even an agent's latest) and its embedding; True when it existed.

        The agent's version counter does not go back: the next snapshot still gets a new
        version, so a version number never names two different states. Two round trips
        (a catalog lookup, then the delete) while the namespace has no snapshot
        embeddings; after that, a transaction of two statements.
        """
        sid = check_id("snapshot_id", snapshot_id)
        if not await self._memory_embeddings_exist():
            return _deleted(await self._execute(_DELETE, self.namespace, sid)) == 1
        async with self._transaction() as con:
            existed = _deleted(await con.execute(_DELETE, self.namespace, sid)) == 1
            if existed:
                await self._memory_delete_embeddings(con, [sid])
        return existed

    @operation("memory_snapshot_cleanup")
    async def memory_snapshot_cleanup(
        self,
        *,
        keep_last: int | None = None,
        older_than: timedelta | float | None = None,
        agent_id: str | None = None,
        batch_size: int = 1000,
        dry_run: bool = False,
    ) -> int:
        """Apply a retention policy; returns the number of snapshots deleted.

        A snapshot is kept when it is among its agent's *keep_last* newest, or (with
        *older_than*, a timedelta or seconds) newer than that; the others are deleted. An
        agent's latest snapshot is never deleted. *agent_id* limits it to one agent;
        *dry_run* counts without deleting. Raises InvalidInputError when neither rule is
        given. One round trip per *batch_size* deletions (one in all for a dry run).
        """
        keep, seconds = retention_rule(keep_last, older_than)
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS, allow_none=True)
        batch = check_limit("batch_size", batch_size, 100_000)
        return await self._memory_retention(keep, seconds, agent, batch, bool(dry_run))

    @operation("memory_snapshot_restore")
    async def memory_snapshot_restore(self, snapshot_id: int) -> MemorySnapshot:
        """Append a new snapshot whose state, label, tags and metadata equal *snapshot_id*'s.

        The new snapshot is the agent's next version with ``restored_from`` set; the state
        and the embedding, if any, are copied inside the server (they never cross the
        network), in one transaction. Raises NotFoundError when *snapshot_id* does not
        exist in this namespace. Two round trips (a catalog lookup, then the copy) while
        the namespace has no snapshot embeddings; after that, a transaction of two
        statements.
        """
        sid = check_id("snapshot_id", snapshot_id)
        if not await self._memory_embeddings_exist():
            row = await self._fetchrow(_RESTORE, self.namespace, sid, write=True)
        else:
            async with self._transaction() as con:
                row = await con.fetchrow(_RESTORE, self.namespace, sid)
                if row is not None:
                    await self._vector_reserved_copy(SNAPSHOT_COLLECTION, str(sid), str(row["id"]), con=con)
        if row is None:
            raise NotFoundError(f"memory snapshot {sid} does not exist in namespace {self.namespace!r}")
        return _snapshot(row)

    @operation("memory_snapshot_search")
    async def memory_snapshot_search(
        self,
        query: str | None = None,
        *,
        embedding: Any = None,
        agent_id: str | None = None,
        tags: Iterable[str] | None = None,
        limit: int = 20,
        include_state: bool = False,
    ) -> list[SnapshotHit]:
        """Search snapshots by text, by embedding, or both; best first.

        *query* is full text over labels, tags and every string value of the states, in
        web-search syntax (``"a phrase"``, ``-exclude``, ``or``) with English stemming; a
        query of stop words only matches nothing. Snapshots larger than 256 KiB of JSON
        are indexed by a prefix of at most 256 KiB of their string values.

        *embedding* finds the snapshots created with the nearest embeddings (cosine
        similarity, HNSW: approximate). With both, the two rankings (up to
        ``max(4 * limit, 40)`` candidates each) are fused by reciprocal rank fusion
        (``1 / (60 + rank)`` per ranking) and ``rank`` is the fused score. *agent_id* and
        *tags* (all of them) filter in every mode; with *tags*, up to ``max(4 * limit,
        40)`` nearest embeddings are read and filtered, so a very selective tag may return
        fewer than *limit* hits.

        Raises InvalidInputError for no query and no embedding, an empty or oversized
        query, a bad embedding or one of another length than the stored ones;
        FeatureUnavailableError for an embedding on a server without pgvector. One round
        trip for text; two for an embedding (vector search, then the snapshots); three
        for both.
        """
        text = None if query is None else check_text("query", query, MAX_QUERY_CHARS)
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS, allow_none=True)
        tag_list = None if tags is None else check_tags(tags)
        lim = check_limit("limit", limit, MAX_SEARCH_LIMIT)
        if not isinstance(include_state, bool):
            raise InvalidInputError(f"include_state must be True or False, got {include_state!r:.80}")
        if text is None and embedding is None:
            raise InvalidInputError("give a query, an embedding or both")
        if embedding is not None and not self._memory_has_vectors():
            raise FeatureUnavailableError("snapshot embeddings need the vectors feature (VectorMixin)")
        if embedding is None:
            rows = await self._fetch(
                _SEARCH,
                self.namespace,
                text,
                agent,
                tag_list or None,
                lim,
                EXCERPT_SOURCE_CHARS,
                include_state,
            )
            return [_text_hit(r) for r in rows]

        hybrid = text is not None
        candidates = search_candidates(lim, bool(tag_list) or hybrid)
        vector_hits = await self._vector_reserved_search(
            SNAPSHOT_COLLECTION,
            embedding,
            k=candidates,
            filter=None if agent is None else {"agent_id": agent},
        )
        scores = {int(h.id): h.score for h in vector_hits}
        rows = (
            await self._fetch(_GET_HITS, self.namespace, list(scores), agent, tag_list or None, include_state)
            if scores
            else []
        )
        found = {r["id"]: r for r in rows}
        vector_ids = [i for i in scores if i in found]  # nearest first, filtered
        if not hybrid:
            return [
                SnapshotHit(snapshot=_snapshot(found[i]), rank=scores[i], excerpt=found[i]["label"] or "")
                for i in vector_ids[:lim]
            ]
        text_rows = await self._fetch(
            _SEARCH,
            self.namespace,
            text,
            agent,
            tag_list or None,
            search_candidates(lim, True),
            EXCERPT_SOURCE_CHARS,
            include_state,
        )
        text_hits = {r["id"]: _text_hit(r) for r in text_rows}
        hits = []
        for i, score in fuse_rankings(vector_ids, list(text_hits), lim):
            hit = text_hits.get(i)
            if hit is None:
                hit = SnapshotHit(snapshot=_snapshot(found[i]), rank=0.0, excerpt=found[i]["label"] or "")
            hit.rank = score
            hits.append(hit)
        return hits

    @operation("memory_snapshot_diff")
    async def memory_snapshot_diff(self, a_id: int, b_id: int) -> StateDiff:
        """The JSON Pointer paths added, removed and changed from snapshot *a_id* to *b_id*.

        Raises NotFoundError when either is missing in this namespace. One round trip;
        both states cross the network once.
        """
        a = check_id("a_id", a_id)
        b = check_id("b_id", b_id)
        rows = await self._fetch(_DIFF_PAIR, self.namespace, [a, b])
        states = {r["id"]: r["state"] for r in rows}
        missing = [i for i in (a, b) if i not in states]
        if missing:
            names = ", ".join(map(str, missing))
            raise NotFoundError(f"memory snapshot(s) {names} do not exist in namespace {self.namespace!r}")
        added, removed, changed = diff_json(states[a], states[b])
        return StateDiff(a_id=a, b_id=b, added=added, removed=removed, changed=changed)

    @operation("memory_snapshot_stats")
    async def memory_snapshot_stats(self, agent_id: str | None = None) -> MemorySnapshotStats:
        """Count, bytes (of JSON), oldest and newest ``created_at``, in total and per agent.

        One round trip; it reads every snapshot row of the namespace (or of *agent_id*).
        """
        agent = check_text("agent_id", agent_id, MAX_AGENT_ID_CHARS, allow_none=True)
        rows = await self._fetch(_STATS, self.namespace, agent)
        agents = [AgentSnapshotStats.model_validate(dict(r)) for r in rows]
        if not agents:
            return MemorySnapshotStats()
        return MemorySnapshotStats(
            count=sum(a.count for a in agents),
            bytes=sum(a.bytes for a in agents),
            oldest=min(a.oldest for a in agents),
            newest=max(a.newest for a in agents),
            agents=agents,
        )

    # ------------------------------------------------------------------ maintenance

    async def _cleanup_snapshots(self, *, dry_run: bool, batch_size: int) -> int:
        """The ``unified-db cleanup`` step: the retention settings, or nothing when both are off."""
        keep = self.settings.memory_retention_keep_last
        days = self.settings.memory_retention_days
        if keep is None and days is None:
            return 0
        keep_last, seconds = retention_rule(keep, None if days is None else days * 86400.0)
        return await self._memory_retention(keep_last, seconds, None, batch_size, dry_run)

    async def _memory_retention(
        self, keep_last: int, seconds: float | None, agent_id: str | None, batch_size: int, dry_run: bool
    ) -> int:
        if dry_run:
            return int(await self._fetchval(_RETENTION_COUNT, self.namespace, agent_id, keep_last, seconds))
        total = 0
        while True:
            # Each batch and its embeddings in one transaction: never one without the other.
            async with self._transaction() as con:
                ids = [
                    r["id"]
                    for r in await con.fetch(
                        _RETENTION_DELETE, self.namespace, agent_id, keep_last, seconds, batch_size
                    )
                ]
                if ids:
                    await self._memory_delete_embeddings(con, ids)
            total += len(ids)
            if len(ids) < batch_size:
                return total

    def _memory_has_vectors(self) -> bool:
        # Mixin order must not matter, nor whether VectorMixin is mixed in at all.
        return hasattr(self, "_vector_reserved_delete")

    async def _memory_embeddings_exist(self) -> bool:
        """Whether this namespace ever stored a snapshot embedding (cached once true).

        When it says no, no existing snapshot has an embedding: the collection is created
        and committed before the first snapshot with an embedding. So deleting or restoring
        a snapshot that exists now needs no embedding statement. (Retention checks inside
        each batch instead: it also deletes snapshots written while it runs.)
        """
        return (
            self._memory_has_vectors() and await self._vector_reserved_info(SNAPSHOT_COLLECTION) is not None
        )

    async def _memory_delete_embeddings(self, con: Conn, ids: list[int]) -> None:
        if self._memory_has_vectors():
            await self._vector_reserved_delete(SNAPSHOT_COLLECTION, [str(i) for i in ids], con=con)


def decode_state(data: bytes | str) -> dict[str, Any]:
    """Parse a state read from a file or the CLI; InvalidInputError unless a JSON object."""
    try:
        value = loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"state is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"state must be a JSON object, got {type(value).__name__}")
    return value


__all__: Sequence[str] = (
    "AgentSnapshotStats",
    "MemorySnapshot",
    "MemorySnapshotMixin",
    "MemorySnapshotStats",
    "SNAPSHOT_COLLECTION",
    "SnapshotHit",
    "StateDiff",
    "diff_json",
)

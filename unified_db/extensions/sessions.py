"""SessionMixin: secure server-side sessions in one logged PostgreSQL table.

The model (docs/sessions.md): a session is a row found by the SHA-256 digest of a
256-bit random token. The plain token exists only in the ``Session`` returned by
:meth:`SessionMixin.session_create` and :meth:`SessionMixin.session_rotate`; it is
never written to a table or a log line. Every read checks both the idle expiry
(``expires_at``, slid forward by use) and the absolute expiry (``absolute_expires_at``,
fixed at creation), so an expired session is invisible whether or not cleanup has run.

The pure helpers (token format and digest, id generation, argument checks) come first
and are unit-tested without a database; the mixin below only adds I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ..codecs import dumps
from ..core import operation
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..validation import check_uuid

if TYPE_CHECKING:
    from ._protocol import DBProtocol as _Base
else:
    _Base = object

# ---------------------------------------------------------------------- models


class Session(BaseModel):
    """One server-side session. ``token`` is set only by create and rotate."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    user_id: str
    data: dict[str, Any]
    version: int
    created_at: datetime
    last_accessed_at: datetime
    #: The idle expiry: slides forward on use, never beyond ``absolute_expires_at``.
    expires_at: datetime
    absolute_expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    #: The plain token; only on the Session returned by create and rotate. Kept out of
    #: repr() and of model_dump()/JSON, so that logging or returning a Session cannot
    #: leak it: read ``.token`` explicitly to hand it to the client.
    token: str | None = Field(default=None, repr=False, exclude=True)


class SessionAnalytics(BaseModel):
    """What ``session_analytics()`` reports for one namespace.

    ``expired_*`` count sessions still on record (cleanup deletes expired rows, which
    are then no longer counted); ``median_session_seconds`` is the median of
    ``last_accessed_at - created_at`` over the sessions on record, exact to within
    ``session_touch_interval``.
    """

    active: int
    active_users: int
    created_last_hour: int
    created_last_day: int
    expired_last_hour: int
    expired_last_day: int
    max_sessions_per_user: int
    median_session_seconds: float | None


# ---------------------------------------------------------------------- pure helpers

#: 32 random bytes: 256 bits, twice OWASP's safe default of 128.
TOKEN_BYTES = 32
#: ``secrets.token_urlsafe(32)`` is 43 characters of the URL-safe base64 alphabet.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_USER_ID_CHARS = 255
MAX_USER_AGENT_CHARS = 1024
MAX_TIMEOUT_SECONDS = 10 * 365 * 86400.0
MAX_LIST_LIMIT = 1000
MAX_BULK_IDS = 100_000
#: A JSON \u0000 escape (preceded by an even number of backslashes, so not the text
#: "\\u0000"): jsonb cannot store NUL, so reject it before the server does.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
#: A touch is written when the last one is older than ``session_touch_interval`` or
#: than this fraction of the idle timeout, whichever is shorter: with a short idle
#: timeout the stored expiry must not lag the sliding one by much, or an active user
#: would be logged out early.
TOUCH_IDLE_FRACTION = 0.1


def new_token() -> str:
    """A fresh session token: 256 bits from the OS CSPRNG, URL-safe base64 (43 chars)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    """The SHA-256 digest stored in place of *token*."""
    return hashlib.sha256(token.encode("ascii")).digest()


def token_digest(token: object) -> bytes | None:
    """The digest of a well-formed token, or None for any string that cannot be one.

    Raises InvalidInputError when *token* is not a str. A string of the wrong shape
    (empty, 100 KB, NUL, SQL text) is rejected here without a round trip: the server
    never issued it.
    """
    if not isinstance(token, str):
        raise InvalidInputError(
            f"token must be a str (the value of Session.token), not {type(token).__name__}"
        )
    if len(token) != 43 or not TOKEN_RE.fullmatch(token):
        return None
    return hash_token(token)


_uuid_lock = threading.Lock()
_uuid_last = [0, 0]  # last millisecond, last 12-bit sequence


def new_session_id(now_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): time-ordered, so ``ORDER BY id DESC`` is newest first.

    Within one millisecond a 12-bit sequence keeps ids from this process increasing;
    the 62 low bits are random, so ids are not guessable from each other.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _uuid_lock:
        last_ms, seq = _uuid_last
        if ms <= last_ms:
            ms, seq = last_ms, seq + 1
            if seq > 0xFFF:  # sequence exhausted: borrow the next millisecond
                ms, seq = ms + 1, 0
        else:
            seq = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave room to count up
        _uuid_last[0], _uuid_last[1] = ms, seq
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def check_session_id(value: object, name: str = "session_id") -> uuid.UUID:
    """*value* as a UUID (a UUID or its string form); InvalidInputError otherwise."""
    return check_uuid(value, name, "a session id (a UUID or its string form)")


def check_session_ids(values: object) -> list[uuid.UUID]:
    """A list of session ids for the bulk methods."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInputError("session_ids must be a list of session ids (UUIDs), not a single value")
    ids = [check_session_id(v, "session_ids[]") for v in values]
    if len(ids) > MAX_BULK_IDS:
        raise InvalidInputError(f"session_ids holds {len(ids)} ids; at most {MAX_BULK_IDS} per call")
    return ids


def check_user_id(value: object, name: str = "user_id") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_USER_ID_CHARS or "\x00" in value:
        raise InvalidInputError(
            f"{name} must be a non-empty str of at most {MAX_USER_ID_CHARS} characters without NUL "
            f"(convert numeric ids with str()), got {value!r:.80}"
        )
    return value


def check_seconds(name: str, value: object) -> timedelta:
    """A positive duration given as seconds (int or float) or a timedelta."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not 0 < seconds <= MAX_TIMEOUT_SECONDS
    ):
        raise InvalidInputError(
            f"{name} must be a number of seconds (or a timedelta) above 0 and at most ten years, "
            f"got {value!r:.80}"
        )
    return timedelta(seconds=seconds)


def encode_data(data: object, max_bytes: int) -> orjson.Fragment:
    """Session data checked and encoded once, before any I/O.

    Returns an ``orjson.Fragment`` so the jsonb codec sends these bytes as they are
    instead of encoding the dict a second time.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"data must be a dict (JSON object) or None, not {type(data).__name__}")
    try:
        encoded = dumps(dict(data))
    except InvalidInputError as exc:
        raise InvalidInputError(f"data is not JSON-encodable: {exc}") from None
    if len(encoded) > max_bytes:
        raise InvalidInputError(
            f"data encodes to {len(encoded)} bytes; session_max_data_bytes allows {max_bytes}"
        )
    if b"\\u0000" in encoded and _JSON_NUL.search(encoded):
        raise InvalidInputError("data contains a NUL character, which PostgreSQL jsonb cannot store")
    return orjson.Fragment(encoded)


def check_ip(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise InvalidInputError(f"ip must be an IPv4 or IPv6 address (str or ipaddress), got {value!r:.80}")


def check_user_agent(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_USER_AGENT_CHARS or "\x00" in value:
        raise InvalidInputError(
            f"user_agent must be a str of at most {MAX_USER_AGENT_CHARS} characters without NUL "
            "(truncate a client's header before passing it)"
        )
    return value


def check_positive_int(name: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInputError(f"{name} must be an int from 1 to {maximum}, got {value!r:.80}")
    return value


def check_version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise InvalidInputError(f"expected_version must be None or a positive int, got {value!r:.80}")
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {value!r:.80}")
    return value


def session_from_row(row: Any, token: str | None = None) -> Session:
    """A Session from a row of ``_COLUMNS`` (validated: pydantic-core does that faster
    than ``model_construct`` skips it)."""
    ip = row["ip"]
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        data=row["data"],
        version=row["version"],
        created_at=row["created_at"],
        last_accessed_at=row["last_accessed_at"],
        expires_at=row["expires_at"],
        absolute_expires_at=row["absolute_expires_at"],
        ip=None if ip is None else str(getattr(ip, "ip", ip)),
        user_agent=row["user_agent"],
        token=token,
    )


# ---------------------------------------------------------------------- SQL

_COLUMNS = (
    "id, user_id, data, version, created_at, last_accessed_at,"
    " expires_at, absolute_expires_at, ip, user_agent"
)
_ACTIVE = "expires_at > now() AND absolute_expires_at > now()"

SQL_CREATE = f"""
INSERT INTO __schema__.sessions
    (namespace, id, token_hash, user_id, data, expires_at, absolute_expires_at, idle_timeout, ip, user_agent)
VALUES ($1, $2, $3, $4, $5, now() + least($6::interval, $7::interval), now() + $7::interval, $6, $8, $9)
RETURNING {_COLUMNS}
"""  # noqa: S608 - constant text, no caller data

SQL_GET_BY_TOKEN = f"""
SELECT {_COLUMNS} FROM __schema__.sessions
WHERE token_hash = $1 AND namespace = $2 AND {_ACTIVE}
"""  # noqa: S608

# Validate and slide in one statement. The UPDATE runs only when the stored touch is
# older than the touch interval (or a tenth of the idle timeout); otherwise nothing is
# written and the row comes from the SELECT alone. greatest() keeps a touch from
# shortening an expiry that session_extend pushed further.
SQL_GET_BY_TOKEN_TOUCH = f"""
WITH found AS (
    SELECT id, user_id, data, version, created_at, last_accessed_at, expires_at,
           absolute_expires_at, ip, user_agent, idle_timeout
      FROM __schema__.sessions
     WHERE token_hash = $1 AND namespace = $2
       AND expires_at > now() AND absolute_expires_at > now()
), touched AS (
    UPDATE __schema__.sessions s
       SET last_accessed_at = now(),
           expires_at = greatest(s.expires_at, least(now() + s.idle_timeout, s.absolute_expires_at))
      FROM found f
     WHERE s.namespace = $2 AND s.id = f.id
       AND f.last_accessed_at <= now() - least($3::interval, f.idle_timeout * {TOUCH_IDLE_FRACTION})
    RETURNING s.last_accessed_at, s.expires_at
)
SELECT f.id, f.user_id, f.data, f.version, f.created_at,
       coalesce(t.last_accessed_at, f.last_accessed_at) AS last_accessed_at,
       coalesce(t.expires_at, f.expires_at) AS expires_at,
       f.absolute_expires_at, f.ip, f.user_agent
  FROM found f LEFT JOIN touched t ON true
"""  # noqa: S608 - constants only

# The old digest is replaced in the same row: from the commit on, only the new token
# matches. Concurrent rotations of one token serialise on the row lock and all but
# the first find no row (the WHERE is re-checked against the committed digest).
SQL_ROTATE = f"""
UPDATE __schema__.sessions
   SET token_hash = $3, last_accessed_at = now(),
       expires_at = greatest(expires_at, least(now() + idle_timeout, absolute_expires_at))
 WHERE token_hash = $1 AND namespace = $2 AND {_ACTIVE}
RETURNING {_COLUMNS}
"""  # noqa: S608

SQL_GET = f"""
SELECT {_COLUMNS} FROM __schema__.sessions WHERE namespace = $1 AND id = $2 AND {_ACTIVE}
"""  # noqa: S608

SQL_UPDATE = f"""
UPDATE __schema__.sessions SET data = $3, version = version + 1
 WHERE namespace = $1 AND id = $2 AND {_ACTIVE} AND ($4::integer IS NULL OR version = $4)
RETURNING {_COLUMNS}
"""  # noqa: S608

SQL_VERSION = f"""
SELECT version FROM __schema__.sessions WHERE namespace = $1 AND id = $2 AND {_ACTIVE}
"""  # noqa: S608

SQL_DELETE = f"""
DELETE FROM __schema__.sessions WHERE namespace = $1 AND id = $2 RETURNING ({_ACTIVE}) AS active
"""  # noqa: S608

# Deletes return how many of the removed rows were still active: an expired session
# is already gone from every reader's view, so removing it revokes nothing.
SQL_BULK_DELETE = f"""
WITH gone AS (
    DELETE FROM __schema__.sessions WHERE namespace = $1 AND id = ANY($2::uuid[])
    RETURNING expires_at, absolute_expires_at
)
SELECT count(*) FILTER (WHERE {_ACTIVE}) FROM gone
"""  # noqa: S608

SQL_REVOKE_USER = f"""
WITH gone AS (
    DELETE FROM __schema__.sessions
     WHERE namespace = $1 AND user_id = $2 AND ($3::uuid IS NULL OR id <> $3)
    RETURNING expires_at, absolute_expires_at
)
SELECT count(*) FILTER (WHERE {_ACTIVE}) FROM gone
"""  # noqa: S608

# Two list statements rather than "$2 IS NULL OR user_id = $2", which a generic plan
# could not answer from the (namespace, user_id) index. The cursor defaults to the
# largest uuid so the same statement serves the first page.
_LAST_UUID = "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid"
SQL_LIST = f"""
SELECT {_COLUMNS} FROM __schema__.sessions
 WHERE namespace = $1 AND id < coalesce($3::uuid, {_LAST_UUID})
   AND (NOT $2::boolean OR ({_ACTIVE}))
 ORDER BY id DESC LIMIT $4
"""  # noqa: S608
SQL_LIST_USER = f"""
SELECT {_COLUMNS} FROM __schema__.sessions
 WHERE namespace = $1 AND user_id = $5 AND id < coalesce($3::uuid, {_LAST_UUID})
   AND (NOT $2::boolean OR ({_ACTIVE}))
 ORDER BY id DESC LIMIT $4
"""  # noqa: S608

SQL_EXTEND = f"""
UPDATE __schema__.sessions SET expires_at = least(expires_at + $3::interval, absolute_expires_at)
 WHERE namespace = $1 AND id = $2 AND {_ACTIVE}
RETURNING {_COLUMNS}
"""  # noqa: S608

SQL_TOUCH = f"""
UPDATE __schema__.sessions
   SET last_accessed_at = now(),
       expires_at = greatest(expires_at, least(now() + idle_timeout, absolute_expires_at))
 WHERE namespace = $1 AND id = $2 AND {_ACTIVE}
RETURNING {_COLUMNS}
"""  # noqa: S608

SQL_COUNT = f"SELECT count(*) FROM __schema__.sessions WHERE namespace = $1 AND {_ACTIVE}"  # noqa: S608
SQL_COUNT_USER = (
    f"SELECT count(*) FROM __schema__.sessions WHERE namespace = $1 AND user_id = $2 AND {_ACTIVE}"  # noqa: S608
)

_EXPIRED = "(expires_at <= now() OR absolute_expires_at <= now())"
# No DELETE ... LIMIT in PostgreSQL: claim a batch with SKIP LOCKED so two sweepers
# never wait on each other nor delete a row twice. expires_at is deliberately not
# indexed (it would make every touch a non-HOT update), so a batch scans the
# namespace; that cost is paid by the sweeper, not by requests.
SQL_CLEANUP = f"""
WITH doomed AS (
    SELECT id FROM __schema__.sessions
     WHERE namespace = $1 AND {_EXPIRED}
     LIMIT $2 FOR UPDATE SKIP LOCKED
)
DELETE FROM __schema__.sessions s USING doomed d WHERE s.namespace = $1 AND s.id = d.id
"""  # noqa: S608
SQL_CLEANUP_COUNT = f"SELECT count(*) FROM __schema__.sessions WHERE namespace = $1 AND {_EXPIRED}"  # noqa: S608

SQL_ANALYTICS = f"""
WITH s AS (
    SELECT user_id, created_at, last_accessed_at,
           least(expires_at, absolute_expires_at) AS ended_at,
           ({_ACTIVE}) AS active
      FROM __schema__.sessions WHERE namespace = $1
)
SELECT count(*) FILTER (WHERE active) AS active,
       count(DISTINCT user_id) FILTER (WHERE active) AS active_users,
       count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS created_last_hour,
       count(*) FILTER (WHERE created_at > now() - interval '1 day') AS created_last_day,
       count(*) FILTER (WHERE NOT active AND ended_at > now() - interval '1 hour') AS expired_last_hour,
       count(*) FILTER (WHERE NOT active AND ended_at > now() - interval '1 day') AS expired_last_day,
       coalesce((SELECT max(n) FROM (SELECT count(*) AS n FROM s WHERE active GROUP BY user_id) per_user), 0)
           AS max_sessions_per_user,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM last_accessed_at - created_at))
           AS median_session_seconds
  FROM s
"""  # noqa: S608


def _rowcount(status: str) -> int:
    """The row count of a command tag such as ``DELETE 12``."""
    return int(status.rsplit(" ", 1)[-1])


# ---------------------------------------------------------------------- mixin


class SessionMixin(_Base):
    """Server-side sessions: ``session_*`` methods. See docs/sessions.md."""

    cleanup_steps: ClassVar[tuple[str, ...]] = ("sessions",)

    def _session_touch_interval(self) -> timedelta:
        return timedelta(seconds=self.settings.session_touch_interval)

    @operation("session_create")
    async def session_create(
        self,
        user_id: str,
        data: Mapping[str, Any] | None = None,
        *,
        idle_timeout: float | timedelta | None = None,
        absolute_timeout: float | timedelta | None = None,
        ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
        user_agent: str | None = None,
    ) -> Session:
        """Start a session for *user_id*; the returned Session's ``token`` is the only copy.

        *data* is a JSON object (dict). The timeouts default to ``session_idle_timeout``
        and ``session_absolute_timeout`` (seconds or timedelta). Raises InvalidInputError
        for a bad argument. One round trip.
        """
        user_id = check_user_id(user_id)
        payload = encode_data(data, self.settings.session_max_data_bytes)
        idle = check_seconds(
            "idle_timeout", self.settings.session_idle_timeout if idle_timeout is None else idle_timeout
        )
        absolute = check_seconds(
            "absolute_timeout",
            self.settings.session_absolute_timeout if absolute_timeout is None else absolute_timeout,
        )
        ip_text = check_ip(ip)
        user_agent = check_user_agent(user_agent)
        token = new_token()
        row = await self._fetchrow(
            SQL_CREATE,
            self.namespace,
            new_session_id(),
            hash_token(token),
            user_id,
            payload,
            idle,
            absolute,
            ip_text,
            user_agent,
            write=True,
        )
        return session_from_row(row, token)

    @operation("session_get_by_token")
    async def session_get_by_token(self, token: str, *, touch: bool = True) -> Session | None:
        """The active session of *token*, sliding its idle expiry; None for any token that
        is not live (unknown, malformed, expired, rotated or revoked).

        The touch is written at most once per ``session_touch_interval`` (sooner for a
        short idle timeout). Raises InvalidInputError when *token* is not a str. One
        round trip; none for a string that cannot be a token.
        """
        digest = token_digest(token)
        check_bool("touch", touch)
        if digest is None:
            return None
        if touch:
            row = await self._fetchrow(
                SQL_GET_BY_TOKEN_TOUCH, digest, self.namespace, self._session_touch_interval(), write=True
            )
        else:
            row = await self._fetchrow(SQL_GET_BY_TOKEN, digest, self.namespace)
        return None if row is None else session_from_row(row)

    @operation("session_get")
    async def session_get(self, session_id: uuid.UUID | str) -> Session | None:
        """The active session with this id, or None; does not touch it.

        Raises InvalidInputError for an id that is not a UUID. One round trip.
        """
        sid = check_session_id(session_id)
        row = await self._fetchrow(SQL_GET, self.namespace, sid)
        return None if row is None else session_from_row(row)

    @operation("session_update")
    async def session_update(
        self, session_id: uuid.UUID | str, data: Mapping[str, Any], *, expected_version: int | None = None
    ) -> Session:
        """Replace the data of an active session and bump its version.

        With *expected_version*, the write happens only if the stored version still
        equals it. Raises NotFoundError when no active session has this id,
        ConflictError when the version moved on (nothing is written),
        InvalidInputError for bad arguments. One round trip (two on a failure).
        """
        sid = check_session_id(session_id)
        payload = encode_data(data, self.settings.session_max_data_bytes)
        expected = check_version(expected_version)
        row = await self._fetchrow(SQL_UPDATE, self.namespace, sid, payload, expected, write=True)
        if row is not None:
            return session_from_row(row)
        if expected is not None:
            current = await self._fetchval(SQL_VERSION, self.namespace, sid)
            if current is not None:
                raise ConflictError(
                    f"session {sid} is at version {current}, not the expected {expected}; "
                    "re-read it and apply the change again"
                )
        raise NotFoundError(f"no active session {sid} in namespace {self.namespace!r}")

    @operation("session_delete")
    async def session_delete(self, session_id: uuid.UUID | str) -> bool:
        """End a session (logout). True when an active session was deleted.

        Raises InvalidInputError for an id that is not a UUID. One round trip.
        """
        sid = check_session_id(session_id)
        return bool(await self._fetchval(SQL_DELETE, self.namespace, sid, write=True))

    @operation("session_rotate")
    async def session_rotate(self, token: str) -> Session:
        """Give the session of *token* a new token; the old one fails from this moment.

        Call it on login and on any privilege change. The data, version and absolute
        expiry stay; the idle expiry slides. Of concurrent rotations of one token,
        exactly one succeeds. Raises NotFoundError when *token* is not live,
        InvalidInputError when it is not a str. One round trip.
        """
        digest = token_digest(token)
        if digest is None:
            raise NotFoundError("no active session for this token")
        new = new_token()
        row = await self._fetchrow(SQL_ROTATE, digest, self.namespace, hash_token(new), write=True)
        if row is None:
            raise NotFoundError("no active session for this token")
        return session_from_row(row, new)

    @operation("session_revoke_user")
    async def session_revoke_user(
        self, user_id: str, *, except_session_id: uuid.UUID | str | None = None
    ) -> int:
        """Delete every session of *user_id* (all devices); returns how many were active.

        *except_session_id* keeps one session (log out the other devices). Raises
        InvalidInputError for bad arguments. One round trip.
        """
        user_id = check_user_id(user_id)
        keep = None if except_session_id is None else check_session_id(except_session_id, "except_session_id")
        return await self._fetchval(SQL_REVOKE_USER, self.namespace, user_id, keep, write=True)

    @operation("session_list")
    async def session_list(
        self,
        *,
        user_id: str | None = None,
        active_only: bool = True,
        limit: int = 100,
        cursor: uuid.UUID | str | None = None,
    ) -> list[Session]:
        """Sessions newest first, one page of at most *limit* (1-1000).

        *cursor* is the id of the last session of the previous page. Raises
        InvalidInputError for bad arguments. One round trip.
        """
        uid = None if user_id is None else check_user_id(user_id)
        check_bool("active_only", active_only)
        check_positive_int("limit", limit, MAX_LIST_LIMIT)
        after = None if cursor is None else check_session_id(cursor, "cursor")
        if uid is None:
            rows = await self._fetch(SQL_LIST, self.namespace, active_only, after, limit)
        else:
            rows = await self._fetch(SQL_LIST_USER, self.namespace, active_only, after, limit, uid)
        return [session_from_row(r) for r in rows]

    @operation("session_extend")
    async def session_extend(self, session_id: uuid.UUID | str, seconds: float | timedelta) -> Session:
        """Push the idle expiry of an active session *seconds* further, never past its
        absolute expiry (which nothing extends).

        Raises NotFoundError when no active session has this id, InvalidInputError for
        bad arguments. One round trip.
        """
        sid = check_session_id(session_id)
        delta = check_seconds("seconds", seconds)
        row = await self._fetchrow(SQL_EXTEND, self.namespace, sid, delta, write=True)
        if row is None:
            raise NotFoundError(f"no active session {sid} in namespace {self.namespace!r}")
        return session_from_row(row)

    @operation("session_touch")
    async def session_touch(self, session_id: uuid.UUID | str) -> Session:
        """Record activity now: slide the idle expiry, whatever the touch interval.

        Raises NotFoundError when no active session has this id, InvalidInputError for
        an id that is not a UUID. One round trip.
        """
        sid = check_session_id(session_id)
        row = await self._fetchrow(SQL_TOUCH, self.namespace, sid, write=True)
        if row is None:
            raise NotFoundError(f"no active session {sid} in namespace {self.namespace!r}")
        return session_from_row(row)

    @operation("session_bulk_delete")
    async def session_bulk_delete(self, session_ids: Iterable[uuid.UUID | str]) -> int:
        """Delete many sessions by id; returns how many of them were active.

        Ids of other namespaces or of no session are ignored. Raises InvalidInputError
        when an id is not a UUID (nothing is deleted). One round trip.
        """
        ids = check_session_ids(session_ids)
        if not ids:
            return 0
        return await self._fetchval(SQL_BULK_DELETE, self.namespace, ids, write=True)

    @operation("session_get_active_count")
    async def session_get_active_count(self, user_id: str | None = None) -> int:
        """How many sessions are active, in the namespace or for one user.

        Raises InvalidInputError for a bad *user_id*. One round trip.
        """
        if user_id is None:
            return await self._fetchval(SQL_COUNT, self.namespace)
        return await self._fetchval(SQL_COUNT_USER, self.namespace, check_user_id(user_id))

    @operation("session_cleanup_inactive")
    async def session_cleanup_inactive(self, batch_size: int = 10_000) -> int:
        """Delete the idle- or absolutely-expired sessions of this namespace; returns how many.

        Runs batches of *batch_size* (1-1,000,000) until one comes back short; safe to
        run from several processes at once. Reads never need it (they check expiry
        themselves); it only reclaims space. Raises InvalidInputError for a bad
        *batch_size*. One round trip per batch.
        """
        check_positive_int("batch_size", batch_size, 1_000_000)
        return await self._cleanup_sessions(dry_run=False, batch_size=batch_size)

    async def _cleanup_sessions(self, *, dry_run: bool, batch_size: int) -> int:
        """The ``unified-db cleanup`` step "sessions": expired sessions of this namespace."""
        check_positive_int("batch_size", batch_size, 1_000_000)
        if dry_run:
            return await self._fetchval(SQL_CLEANUP_COUNT, self.namespace)
        total = 0
        while True:
            deleted = _rowcount(await self._execute(SQL_CLEANUP, self.namespace, batch_size))
            total += deleted
            if deleted < batch_size:
                return total

    @operation("session_analytics")
    async def session_analytics(self) -> SessionAnalytics:
        """Active sessions and users, sessions created and expired in the last hour and
        day, the most sessions one user holds, and the median session length.

        Scans the namespace's sessions: meant for dashboards, not for every request.
        One round trip.
        """
        row = await self._fetchrow(SQL_ANALYTICS, self.namespace)
        assert row is not None  # an aggregate always returns one row
        return SessionAnalytics(**dict(row))

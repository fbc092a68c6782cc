"""FastAPI / Starlette integration (``pip install unified-db[fastapi]``).

Three pieces, usable apart:

* :func:`unified_db_lifespan`: opens one :class:`~unified_db.UnifiedDB` when the app
  starts and closes it when it stops; :func:`get_db` is the dependency that yields it.
* :class:`SessionMiddleware`: a pure ASGI middleware that reads the session token
  from a cookie (HttpOnly, Secure unless ``secure=False``, SameSite=Lax), validates
  it with one round trip, and puts the :class:`~unified_db.extensions.sessions.Session`
  (or None) on ``request.state.session``.
* :func:`login`, :func:`logout` and :func:`rotate`: called from an endpoint, they
  change the session and the middleware sets or clears the cookie on the response.
  ``login`` always issues a new token (OWASP: renew the identifier on every
  privilege change), so a token planted before login is worthless after it.

Only Starlette is imported at module level: the middleware works in a plain
Starlette app too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..db import UnifiedDB
from ..errors import NotFoundError
from ..extensions.sessions import MAX_USER_AGENT_CHARS, Session

#: Where the middleware keeps its per-request state in the ASGI scope.
SCOPE_KEY = "unified_db.session"
STATE_KEY = "unified_db"
#: RFC 6265 cookie-name characters (an HTTP token).
_COOKIE_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_PATH_RE = re.compile(r"/[\x21-\x3a\x3c-\x7e]*")  # no ';', no controls, no spaces

__all__ = [
    "SessionMiddleware",
    "clear_cookie_header",
    "get_db",
    "get_session",
    "login",
    "logout",
    "require_session",
    "rotate",
    "set_cookie_header",
    "unified_db_lifespan",
]


# ---------------------------------------------------------------- lifespan and dependency


def unified_db_lifespan(
    db: UnifiedDB | None = None, **settings: Any
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for ``FastAPI(lifespan=...)`` / ``Starlette(lifespan=...)``.

    Opens *db* (or a ``UnifiedDB(**settings)``) on startup, closes it on shutdown, and
    publishes it as ``app.state.unified_db`` and in the lifespan state.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        instance = db if db is not None else UnifiedDB(**settings)
        await instance.open()
        app.state.unified_db = instance
        try:
            yield {STATE_KEY: instance}
        finally:
            await instance.close()

    return lifespan


def _db_of(scope: Scope) -> UnifiedDB:
    state = scope.get("state") or {}
    db = state.get(STATE_KEY)
    if db is None:
        app = scope.get("app")
        db = getattr(getattr(app, "state", None), STATE_KEY, None)
    if db is None:
        raise RuntimeError(
            "no UnifiedDB for this app: pass lifespan=unified_db_lifespan(...) to the app, "
            "or SessionMiddleware(db=...)"
        )
    return db


async def get_db(request: HTTPConnection) -> AsyncIterator[UnifiedDB]:
    """FastAPI dependency: the app's UnifiedDB (``db: UnifiedDB = Depends(get_db)``)."""
    yield _db_of(request.scope)


# ---------------------------------------------------------------- cookies (pure)


def set_cookie_header(
    name: str,
    token: str,
    *,
    secure: bool = True,
    samesite: Literal["lax", "strict", "none"] = "lax",
    path: str = "/",
    domain: str | None = None,
    max_age: int | None = None,
) -> str:
    """The ``Set-Cookie`` value that stores *token*: always HttpOnly."""
    parts = [f"{name}={token}", f"Path={path}", "HttpOnly", f"SameSite={samesite.capitalize()}"]
    if secure:
        parts.append("Secure")
    if domain:
        parts.append(f"Domain={domain}")
    if max_age is not None:
        parts.append(f"Max-Age={max(0, int(max_age))}")
    return "; ".join(parts)


def clear_cookie_header(
    name: str,
    *,
    secure: bool = True,
    samesite: Literal["lax", "strict", "none"] = "lax",
    path: str = "/",
    domain: str | None = None,
) -> str:
    """The ``Set-Cookie`` value that makes the browser drop the cookie."""
    return (
        set_cookie_header(name, '""', secure=secure, samesite=samesite, path=path, domain=domain, max_age=0)
        + "; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    )


def client_ip(scope: Scope) -> str | None:
    """The peer address when it is an IP address (test clients send names)."""
    client = scope.get("client")
    if not client:
        return None
    try:
        return str(ipaddress.ip_address(client[0]))
    except ValueError:
        return None


def client_user_agent(headers: Mapping[str, str]) -> str | None:
    ua = headers.get("user-agent")
    if not ua:
        return None
    return ua.replace("\x00", "")[:MAX_USER_AGENT_CHARS]


# ---------------------------------------------------------------- middleware


class _SessionState:
    """Per request: the session, and what the response must do with the cookie."""

    __slots__ = ("db", "session", "cookie", "config")

    def __init__(self, db: UnifiedDB, session: Session | None, config: SessionMiddleware) -> None:
        self.db = db
        self.session = session
        self.config = config
        # None: leave the cookie alone; "" : clear it; a token: set it.
        self.cookie: str | None = None


class SessionMiddleware:
    """Server-side sessions for a Starlette/FastAPI app, the token in a cookie.

    ``app.add_middleware(SessionMiddleware, secure=False)`` for local http. The cookie
    name defaults to ``__Host-session`` (browsers then refuse it from a subdomain or
    over http) when ``secure`` and ``path="/"`` with no ``domain``, else ``session``.
    ``persistent=True`` gives the cookie a Max-Age up to the session's absolute
    expiry; by default it is a browser-session cookie. The server enforces expiry
    either way.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        db: UnifiedDB | None = None,
        cookie_name: str | None = None,
        secure: bool = True,
        samesite: Literal["lax", "strict", "none"] = "lax",
        path: str = "/",
        domain: str | None = None,
        persistent: bool = False,
        touch: bool = True,
    ) -> None:
        if samesite not in ("lax", "strict", "none"):
            raise ValueError(f"samesite must be 'lax', 'strict' or 'none', got {samesite!r}")
        if samesite == "none" and not secure:
            raise ValueError("samesite='none' needs secure=True (browsers refuse it otherwise)")
        if not _COOKIE_PATH_RE.fullmatch(path):
            raise ValueError(f"path must start with / and hold no ';' or spaces, got {path!r}")
        if domain is not None and not _COOKIE_NAME_RE.fullmatch(domain):
            raise ValueError(f"domain {domain!r} is not a plain host name")
        if cookie_name is None:
            cookie_name = "__Host-session" if secure and path == "/" and domain is None else "session"
        if not _COOKIE_NAME_RE.fullmatch(cookie_name):
            raise ValueError(f"cookie_name {cookie_name!r} holds characters a cookie name cannot")
        self.app = app
        self.db = db
        self.cookie_name = cookie_name
        self.secure = secure
        self.samesite = samesite
        self.path = path
        self.domain = domain
        self.persistent = persistent
        self.touch = touch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        db = self.db if self.db is not None else _db_of(scope)
        token = HTTPConnection(scope).cookies.get(self.cookie_name)
        session = None
        if token:
            session = await db.session_get_by_token(token, touch=self.touch)
        state = _SessionState(db, session, self)
        if token and session is None:
            state.cookie = ""  # expired, revoked or forged: make the browser forget it
        scope[SCOPE_KEY] = state
        scope.setdefault("state", {})["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.cookie is not None:
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", self._cookie_header(state))
                headers["cache-control"] = "no-store"  # a shared cache must never replay a token
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie_header(self, state: _SessionState) -> str:
        if not state.cookie:
            return clear_cookie_header(
                self.cookie_name,
                secure=self.secure,
                samesite=self.samesite,
                path=self.path,
                domain=self.domain,
            )
        max_age = None
        if self.persistent and state.session is not None:
            max_age = int((state.session.absolute_expires_at - datetime.now(UTC)).total_seconds())
        return set_cookie_header(
            self.cookie_name,
            state.cookie,
            secure=self.secure,
            samesite=self.samesite,
            path=self.path,
            domain=self.domain,
            max_age=max_age,
        )


def _state(request: HTTPConnection) -> _SessionState:
    state = request.scope.get(SCOPE_KEY)
    if state is None:
        raise RuntimeError(
            "SessionMiddleware is not installed on this app: app.add_middleware(SessionMiddleware)"
        )
    return state


def _publish(request: HTTPConnection, state: _SessionState, session: Session | None) -> None:
    state.session = session
    request.scope.setdefault("state", {})["session"] = session


def get_session(request: HTTPConnection) -> Session | None:
    """FastAPI dependency / helper: the request's live session, or None."""
    return _state(request).session


def require_session(request: HTTPConnection) -> Session:
    """FastAPI dependency: the request's session, or a 401 response."""
    from fastapi import HTTPException

    session = _state(request).session
    if session is None:
        raise HTTPException(status_code=401, detail="not logged in")
    return session


async def login(
    request: HTTPConnection,
    user_id: str,
    data: Mapping[str, Any] | None = None,
    **options: Any,
) -> Session:
    """Log *user_id* in: the response carries a new token whatever came before.

    The same user logging in again keeps the session and its data under a new token
    (``session_rotate``); anyone else's session on this browser is deleted and a new
    one created (with *data* and *options* for ``session_create``). Raises what those
    methods raise. One or two round trips.
    """
    state = _state(request)
    current = state.session
    if current is not None and current.user_id == user_id and data is None and not options:
        token = request.cookies.get(state.config.cookie_name)
        try:
            session = await state.db.session_rotate(token or "")
        except NotFoundError:
            pass  # it expired or was revoked since this request began: start afresh
        else:
            state.cookie = session.token
            _publish(request, state, session.model_copy(update={"token": None}))
            return session
    if current is not None:
        await state.db.session_delete(current.id)
    options.setdefault("ip", client_ip(request.scope))
    options.setdefault("user_agent", client_user_agent(request.headers))
    session = await state.db.session_create(user_id, data, **options)
    state.cookie = session.token
    _publish(request, state, session.model_copy(update={"token": None}))
    return session


async def rotate(request: HTTPConnection) -> Session:
    """Give the current session a new token (after a privilege change). Raises
    NotFoundError when the request has no live session. One round trip."""
    state = _state(request)
    token = request.cookies.get(state.config.cookie_name)
    if state.session is None or not token:
        raise NotFoundError("this request has no session to rotate")
    session = await state.db.session_rotate(token)
    state.cookie = session.token
    _publish(request, state, session.model_copy(update={"token": None}))
    return session


async def logout(request: HTTPConnection) -> bool:
    """End the request's session server-side and clear the cookie. True when there
    was a session to end. One round trip (none without a session)."""
    state = _state(request)
    current = state.session
    state.cookie = ""
    _publish(request, state, None)
    if current is None:
        return False
    return await state.db.session_delete(current.id)

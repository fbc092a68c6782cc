"""A FastAPI app with server-side sessions in PostgreSQL: login, logout, whoami.

Run it (embedded PostgreSQL unless UNIFIED_DB_DSN is set; plain http on localhost,
hence ``secure=False``)::

    pip install 'unified-db[fastapi]' uvicorn
    EXAMPLE_INSECURE_COOKIES=1 uvicorn examples.fastapi_sessions:app

    curl -c jar -X POST localhost:8000/login -H 'content-type: application/json' \\
         -d '{"username": "ada", "password": "lovelace"}'
    curl -b jar localhost:8000/whoami
    curl -b jar -c jar -X POST localhost:8000/logout

The users and passwords below stand in for a real user store.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from unified_db import UnifiedDB
from unified_db.extensions.sessions import Session
from unified_db.integrations.fastapi import (
    SessionMiddleware,
    get_db,
    login,
    logout,
    require_session,
    unified_db_lifespan,
)

USERS = {"ada": "lovelace", "alan": "turing"}


class Credentials(BaseModel):
    username: str
    password: str


def create_app(dsn: str | None = None, *, secure: bool = True, **settings: Any) -> FastAPI:
    """The example app; *secure=False* only for plain http on localhost."""
    app = FastAPI(lifespan=unified_db_lifespan(dsn=dsn, **settings))
    app.add_middleware(SessionMiddleware, secure=secure)

    @app.post("/login")
    async def do_login(body: Credentials, request: Request) -> dict[str, Any]:
        expected = USERS.get(body.username)
        # compare_digest: the time taken does not tell how much of the password matched.
        if expected is None or not hmac.compare_digest(expected.encode(), body.password.encode()):
            raise HTTPException(status_code=401, detail="wrong username or password")
        session = await login(request, body.username)
        return {"user": session.user_id, "expires_at": session.expires_at.isoformat()}

    @app.post("/logout")
    async def do_logout(request: Request) -> dict[str, bool]:
        return {"logged_out": await logout(request)}

    @app.get("/whoami")
    async def whoami(session: Session = Depends(require_session)) -> dict[str, Any]:
        return {
            "user": session.user_id,
            "session_id": str(session.id),
            "idle_expires_at": session.expires_at.isoformat(),
            "absolute_expires_at": session.absolute_expires_at.isoformat(),
        }

    @app.get("/sessions/count")
    async def count(
        session: Session = Depends(require_session), db: UnifiedDB = Depends(get_db)
    ) -> dict[str, int]:
        return {"active": await db.session_get_active_count(session.user_id)}

    return app


app = create_app(secure=os.environ.get("EXAMPLE_INSECURE_COOKIES") != "1")

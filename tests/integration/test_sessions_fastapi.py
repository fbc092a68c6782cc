"""The session middleware and the example app through real HTTP requests (Starlette's
test client) against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from examples.fastapi_sessions import create_app
from unified_db import NotFoundError
from unified_db.integrations.fastapi import (
    SessionMiddleware,
    clear_cookie_header,
    get_session,
    set_cookie_header,
    unified_db_lifespan,
)

COOKIE = "__Host-session"
ADA = {"username": "ada", "password": "lovelace"}


def rows(dsn: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        con = await asyncpg.connect(dsn)
        try:
            return await con.fetch("SELECT id, user_id, token_hash FROM unified_db.sessions")
        finally:
            await con.close()

    return asyncio.run(go())


@pytest.fixture
def client(db_dsn: str):
    with TestClient(create_app(db_dsn, max_size=2), base_url="https://testserver") as c:
        yield c


def test_login_sets_a_hardened_cookie_and_whoami_reads_it(client: TestClient, db_dsn: str):
    assert client.get("/whoami").status_code == 401
    r = client.post("/login", json=ADA)
    assert r.status_code == 200 and r.json()["user"] == "ada"
    header = r.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"):
        assert attribute in header
    assert "Max-Age" not in header and "Domain" not in header
    assert r.headers["cache-control"] == "no-store"
    token = client.cookies[COOKIE]
    assert token not in r.text
    who = client.get("/whoami")
    assert who.status_code == 200 and who.json()["user"] == "ada"
    assert "set-cookie" not in who.headers  # nothing changed: no new cookie
    assert client.get("/sessions/count").json() == {"active": 1}
    assert [r["user_id"] for r in rows(db_dsn)] == ["ada"]


def test_wrong_password_creates_nothing(client: TestClient, db_dsn: str):
    r = client.post("/login", json={"username": "ada", "password": "nope"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert rows(db_dsn) == []


def test_login_again_rotates_and_the_old_token_stops_working(client: TestClient, db_dsn: str):
    client.post("/login", json=ADA)
    first = client.cookies[COOKIE]
    session_id = client.get("/whoami").json()["session_id"]
    client.post("/login", json=ADA)
    second = client.cookies[COOKIE]
    assert second != first
    assert client.get("/whoami").json()["session_id"] == session_id  # same session, new token
    client.cookies.clear()
    stale = client.get("/whoami", headers={"cookie": f"{COOKIE}={first}"})
    assert stale.status_code == 401
    assert (
        stale.headers["set-cookie"].startswith(f'{COOKIE}=""') and "Max-Age=0" in stale.headers["set-cookie"]
    )
    assert len(rows(db_dsn)) == 1


def test_a_planted_token_is_replaced_at_login(client: TestClient, db_dsn: str):
    planted = "A" * 43  # a session-fixation attempt: a token the server never issued
    r = client.post("/login", json=ADA, headers={"cookie": f"{COOKIE}={planted}"})
    assert r.status_code == 200
    assert client.cookies[COOKIE] != planted
    assert client.get("/whoami").json()["user"] == "ada"


def test_another_user_logging_in_ends_the_previous_session(client: TestClient, db_dsn: str):
    client.post("/login", json=ADA)
    ada_token = client.cookies[COOKIE]
    client.post("/login", json={"username": "alan", "password": "turing"})
    assert client.get("/whoami").json()["user"] == "alan"
    assert [r["user_id"] for r in rows(db_dsn)] == ["alan"]
    client.cookies.clear()
    assert client.get("/whoami", headers={"cookie": f"{COOKIE}={ada_token}"}).status_code == 401


def test_logout_ends_the_session_server_side(client: TestClient, db_dsn: str):
    client.post("/login", json=ADA)
    token = client.cookies[COOKIE]
    r = client.post("/logout")
    assert r.json() == {"logged_out": True}
    assert "Max-Age=0" in r.headers["set-cookie"]
    assert COOKIE not in client.cookies
    assert rows(db_dsn) == []
    assert client.get("/whoami", headers={"cookie": f"{COOKIE}={token}"}).status_code == 401
    assert client.post("/logout").json() == {"logged_out": False}


@pytest.mark.parametrize("garbage", ["x", "' OR 1=1 --", "%00" * 20, "A" * 4000])
def test_garbage_cookies_are_anonymous(client: TestClient, garbage: str):
    r = client.get("/whoami", headers={"cookie": f"{COOKIE}={garbage}"})
    assert r.status_code == 401


def test_insecure_mode_for_local_http(db_dsn: str):
    with TestClient(create_app(db_dsn, secure=False, max_size=2)) as c:  # http://testserver
        r = c.post("/login", json=ADA)
        header = r.headers["set-cookie"]
        assert header.startswith("session=") and "Secure" not in header and "HttpOnly" in header
        assert c.get("/whoami").json()["user"] == "ada"


def test_idle_expiry_through_http(db_dsn: str):
    with TestClient(
        create_app(db_dsn, max_size=2, session_idle_timeout=0.5), base_url="https://testserver"
    ) as c:
        c.post("/login", json=ADA)
        assert c.get("/whoami").status_code == 200
        asyncio.run(asyncio.sleep(0.8))
        r = c.get("/whoami")
        assert r.status_code == 401 and "Max-Age=0" in r.headers["set-cookie"]


def test_middleware_in_a_plain_app_exposes_the_session_on_request_state(db_dsn: str):
    app = FastAPI(lifespan=unified_db_lifespan(dsn=db_dsn, max_size=2))
    app.add_middleware(SessionMiddleware, cookie_name="sid", persistent=True)

    @app.get("/state")
    async def state(request: Request) -> dict:
        s = request.state.session
        assert s is get_session(request)
        return {"user": None if s is None else s.user_id}

    @app.post("/make")
    async def make(request: Request) -> dict:
        from unified_db.integrations.fastapi import login

        s = await login(request, "grace", {"theme": "dark"})
        return {"data": s.data}

    @app.post("/elevate")
    async def elevate(request: Request) -> dict:
        from unified_db.integrations.fastapi import rotate

        s = await rotate(request)
        return {"same_session": s.id == request.state.session.id}

    @app.post("/relogin-after-revoke")
    async def relogin(request: Request) -> dict:
        from unified_db.integrations.fastapi import login

        old = request.state.session.id
        await request.app.state.unified_db.session_revoke_user("grace")  # e.g. by an admin
        s = await login(request, "grace")  # the rotation finds nothing: a new session
        return {"new_session": s.id != old and request.state.session.id == s.id}

    with TestClient(app, base_url="https://testserver") as c:
        assert c.get("/state").json() == {"user": None}
        with pytest.raises(NotFoundError):
            c.post("/elevate")  # no session to rotate
        r = c.post("/make")
        assert r.json() == {"data": {"theme": "dark"}}
        max_age = int(r.headers["set-cookie"].split("Max-Age=")[1].split(";")[0])
        assert 8 * 3600 - 60 < max_age <= 8 * 3600
        assert c.get("/state").json() == {"user": "grace"}
        before = c.cookies["sid"]
        assert c.post("/elevate").json() == {"same_session": True}
        assert c.cookies["sid"] != before
        assert c.get("/state").json() == {"user": "grace"}
        c.cookies.clear()
        assert c.get("/state", headers={"cookie": f"sid={before}"}).json() == {"user": None}
        c.cookies.clear()
        c.post("/make")
        assert c.post("/relogin-after-revoke").json() == {"new_session": True}
        assert c.get("/state").json() == {"user": "grace"}


def test_cookie_headers_are_built_strictly():
    h = set_cookie_header(
        "sid", "tok", secure=True, samesite="strict", path="/app", domain="ex.com", max_age=5
    )
    assert h == "sid=tok; Path=/app; HttpOnly; SameSite=Strict; Secure; Domain=ex.com; Max-Age=5"
    c = clear_cookie_header("sid", secure=False)
    assert c.startswith('sid=""; Path=/; HttpOnly; SameSite=Lax; Max-Age=0') and "Secure" not in c
    with pytest.raises(ValueError, match="samesite"):
        SessionMiddleware(FastAPI(), samesite="none", secure=False)
    with pytest.raises(ValueError, match="cookie_name"):
        SessionMiddleware(FastAPI(), cookie_name="bad name;")
    with pytest.raises(ValueError, match="path"):
        SessionMiddleware(FastAPI(), path="/a; Domain=evil")
    assert SessionMiddleware(FastAPI()).cookie_name == "__Host-session"
    assert SessionMiddleware(FastAPI(), domain="ex.com").cookie_name == "session"

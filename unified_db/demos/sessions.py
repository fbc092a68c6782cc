"""Demo section: sessions. Registered in ``unified_db.demo.SECTIONS``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import UnifiedDB
    from ..demo import DemoOutput


async def sessions_section(db: UnifiedDB, out: DemoOutput) -> None:
    import asyncio

    from ..errors import ConflictError

    out.title("Sessions")
    user = "demo-user"
    await db.session_revoke_user(user)  # a rerun starts clean
    with out.step("session_create (256-bit token; only its SHA-256 is stored)") as r:
        s = await db.session_create(user, {"cart": []}, ip="127.0.0.1", user_agent="unified-db demo")
        r["value"] = f"idle expiry {s.expires_at:%H:%M:%S}, absolute {s.absolute_expires_at:%H:%M:%S}"
    with out.step("session_get_by_token (validate + slide the idle expiry, one round trip)") as r:
        got = await db.session_get_by_token(s.token)
        r["value"] = f"user {got.user_id if got else None}"
    n = 200
    with out.step(f"{n} x session_get_by_token") as r:
        start = time.perf_counter()
        for _ in range(n):
            await db.session_get_by_token(s.token)
        r["value"] = f"{(time.perf_counter() - start) / n * 1000:.3f} ms each"
    with out.step("session_update with expected_version=1") as r:
        updated = await db.session_update(s.id, {"cart": ["book"]}, expected_version=1)
        r["value"] = f"version {updated.version}"
    with out.step("the same update again (stale version)") as r:
        try:
            await db.session_update(s.id, {"cart": []}, expected_version=1)
            r["value"] = "applied (unexpected)"
        except ConflictError:
            r["value"] = "ConflictError, nothing written"
    with out.step("session_rotate (on login or privilege change)") as r:
        rotated = await db.session_rotate(s.token)
        old = await db.session_get_by_token(s.token)
        new = await db.session_get_by_token(rotated.token)
        r["value"] = f"old token valid: {old is not None}; new token valid: {new is not None}"
    with out.step("idle timeout 0.3 s, then 0.5 s of silence") as r:
        short = await db.session_create(user, idle_timeout=0.3)
        await asyncio.sleep(0.5)
        r["value"] = f"still valid: {await db.session_get_by_token(short.token) is not None}"
    with out.step("session_analytics") as r:
        a = await db.session_analytics()
        r["value"] = f"active {a.active}, expired last hour {a.expired_last_hour}"
    with out.step("session_cleanup_inactive") as r:
        r["value"] = f"{await db.session_cleanup_inactive()} expired session(s) deleted"
    with out.step("session_revoke_user (log out everywhere)") as r:
        r["value"] = f"{await db.session_revoke_user(user)} session(s) revoked"

"""Sessions against a real PostgreSQL: tokens, expiry, rotation, conflicts, isolation."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unified_db import ConflictError, InvalidInputError, NotFoundError, UnifiedDB
from unified_db.extensions.sessions import Session, hash_token

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


async def table(db: UnifiedDB) -> list[tuple]:
    """Every session row of every namespace, to prove a failed call changed nothing."""
    rows = await db._fetch("SELECT * FROM __schema__.sessions ORDER BY namespace, id")
    return [tuple(r) for r in rows]


async def all_text(dsn: str) -> str:
    """Every row of every user table in the database, as text."""
    con = await asyncpg.connect(dsn)
    try:
        tables = await con.fetch(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t"
            " FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        parts = []
        for t in tables:
            parts += [r[0] for r in await con.fetch(f"SELECT x::text FROM {t['t']} x")]
            # bytea columns print as hex in x::text; also look at them as raw bytes.
            parts += [
                bytes(v).decode("latin-1")
                for r in await con.fetch(f"SELECT x.* FROM {t['t']} x")
                for v in r.values()
                if isinstance(v, bytes)
            ]
        return "\n".join(parts)
    finally:
        await con.close()


# ---------------------------------------------------------------- create and read


async def test_create_then_get_by_token_returns_the_session_without_its_token(db: UnifiedDB):
    s = await db.session_create("alice", {"cart": [1, 2]}, ip="192.0.2.7", user_agent="pytest/1")
    assert s.token and len(s.token) == 43
    assert s.user_id == "alice" and s.data == {"cart": [1, 2]} and s.version == 1
    assert s.ip == "192.0.2.7" and s.user_agent == "pytest/1"
    assert (s.expires_at - s.created_at).total_seconds() == pytest.approx(1800, abs=1)
    assert (s.absolute_expires_at - s.created_at).total_seconds() == pytest.approx(8 * 3600, abs=1)
    got = await db.session_get_by_token(s.token)
    assert isinstance(got, Session) and got.token is None
    assert got.model_dump(exclude={"token", "last_accessed_at", "expires_at"}) == s.model_dump(
        exclude={"token", "last_accessed_at", "expires_at"}
    )
    assert (await db.session_get(s.id)).id == s.id
    assert (await db.session_get(str(s.id))).id == s.id
    assert await db.session_get(uuid.uuid4()) is None


async def test_the_token_is_in_no_table_and_no_log_line(db: UnifiedDB, db_dsn: str, caplog):
    caplog.set_level(logging.DEBUG)
    s = await db.session_create("bob", {"k": "v"})
    assert await db.session_get_by_token(s.token) is not None
    rotated = await db.session_rotate(s.token)
    assert await db.session_get_by_token(rotated.token, touch=True) is not None
    dump = await all_text(db_dsn)
    assert "bob" in dump  # the dump does see the session row
    for token in (s.token, rotated.token):
        assert token not in dump
        assert token not in caplog.text
        assert token not in repr(rotated) and token not in str(db.get_stats())
    stored = await db._fetchval("SELECT token_hash FROM __schema__.sessions WHERE id = $1", s.id)
    assert stored == hash_token(rotated.token)


async def test_idle_expiry_without_use(db: UnifiedDB):
    s = await db.session_create("u", idle_timeout=0.4)
    assert await db.session_get_by_token(s.token, touch=False) is not None
    await asyncio.sleep(0.7)
    assert await db.session_get_by_token(s.token) is None
    assert await db.session_get(s.id) is None
    assert await db.session_get_active_count() == 0
    assert await db.session_list() == []
    with pytest.raises(NotFoundError):
        await db.session_rotate(s.token)
    assert len(await table(db)) == 1  # still on record until cleanup: the reads hid it


async def test_sliding_expiry_keeps_an_active_session_alive(db: UnifiedDB):
    s = await db.session_create("u", idle_timeout=1.0)
    start = time.monotonic()
    while time.monotonic() - start < 2.2:  # more than twice the idle timeout
        assert await db.session_get_by_token(s.token) is not None
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.3)
    assert await db.session_get_by_token(s.token) is None


async def test_absolute_expiry_ends_even_a_busy_session(db: UnifiedDB):
    s = await db.session_create("u", idle_timeout=60, absolute_timeout=1.0)
    assert s.expires_at == s.absolute_expires_at  # the idle expiry never passes the absolute one
    extended = await db.session_extend(s.id, 3600)
    assert extended.expires_at == s.absolute_expires_at
    start = time.monotonic()
    while time.monotonic() - start < 0.8:
        got = await db.session_get_by_token(s.token)
        assert got is not None and got.expires_at <= got.absolute_expires_at
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert await db.session_get_by_token(s.token) is None
    assert await db.session_get(s.id) is None


async def test_touch_is_written_at_most_once_per_interval(db: UnifiedDB, db_dsn: str):
    s = await db.session_create("u", idle_timeout=600)

    async def xmin() -> str:
        return await db._fetchval("SELECT xmin::text FROM __schema__.sessions WHERE id = $1", s.id)

    before = await xmin()
    await asyncio.sleep(0.05)
    for _ in range(5):
        got = await db.session_get_by_token(s.token)
        assert got.last_accessed_at == s.last_accessed_at
    assert await xmin() == before  # no row version was written
    async with UnifiedDB(db_dsn, session_touch_interval=0, max_size=2) as eager:
        got = await eager.session_get_by_token(s.token)
        assert got.last_accessed_at > s.last_accessed_at and got.expires_at > s.expires_at
        assert await xmin() != before
        again = await eager.session_get_by_token(s.token, touch=False)
        assert again.last_accessed_at == got.last_accessed_at


async def test_a_short_idle_timeout_is_touched_sooner_than_the_interval(db_dsn: str):
    # With idle 1 s and an interval of 60 s, waiting for the interval would log out an
    # active user: the touch happens after a tenth of the idle timeout instead.
    async with UnifiedDB(db_dsn, session_touch_interval=60, max_size=2) as db:
        s = await db.session_create("u", idle_timeout=1.0)
        await asyncio.sleep(0.3)
        got = await db.session_get_by_token(s.token)
        assert got.last_accessed_at > s.last_accessed_at


async def test_table_is_built_for_hot_touches(db: UnifiedDB, db_dsn: str, admin_dsn: str):
    options = await db._fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = to_regclass('unified_db.sessions')"
    )
    fillfactor = int(next(o for o in options if o.startswith("fillfactor=")).split("=")[1])
    assert fillfactor < 100
    assert (
        await db._fetchval(
            "SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass('unified_db.sessions')"
        )
        == "p"
    )  # logged: sessions survive a crash
    indexed = await db._fetch(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = to_regclass('unified_db.sessions')"
    )
    names = {r["attname"] for r in indexed}
    assert "token_hash" in names and not names & {"last_accessed_at", "expires_at"}
    # Now watch the server count HOT updates for real touches.
    async with UnifiedDB(db_dsn, session_touch_interval=0, min_size=1, max_size=1) as eager:
        s = await eager.session_create("u", {"payload": "x" * 200})
        for _ in range(20):
            assert await eager.session_get_by_token(s.token) is not None
    # Closing the pool ended its backend, which flushes its statistics.
    con = await asyncpg.connect(db_dsn)
    try:
        hot = 0
        for _ in range(50):
            hot = await con.fetchval(
                "SELECT n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE schemaname = 'unified_db' AND relname = 'sessions'"
            )
            if hot >= 15:
                break
            await asyncio.sleep(0.1)
            await con.execute("SELECT pg_stat_clear_snapshot()")
        assert hot >= 15
    finally:
        await con.close()


# ---------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "token",
    [
        "",
        "' OR '1'='1",
        "x'; DROP TABLE unified_db.sessions; --",
        "\x00" * 43,
        "a" * 42 + "\x00",
        "%" * 43,
        "A" * 100_000,
        "\u00e9" * 43,
    ],
)
async def test_hostile_token_strings_return_none(db: UnifiedDB, token: str):
    await db.session_create("u")
    before = await table(db)
    assert await db.session_get_by_token(token) is None
    assert await db.session_get_by_token(token, touch=False) is None
    with pytest.raises(NotFoundError):
        await db.session_rotate(token)
    assert await table(db) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.one_of(st.text(max_size=300), st.text(alphabet=URLSAFE, min_size=43, max_size=43)))
async def test_generated_token_strings_never_match(db: UnifiedDB, token: str):
    assert await db.session_get_by_token(token) is None


async def test_the_stored_digest_is_not_a_token(db: UnifiedDB):
    s = await db.session_create("u")
    assert await db.session_get_by_token(hash_token(s.token).hex()) is None
    assert await db.session_get_by_token(s.token[:-1] + ("A" if s.token[-1] != "A" else "B")) is None


@pytest.mark.parametrize("bad", [None, 12, b"x" * 43, ["t"]])
async def test_a_token_of_the_wrong_type_is_invalid_input(db: UnifiedDB, bad):
    await db.session_create("u")
    before = await table(db)
    with pytest.raises(InvalidInputError, match="token must be a str"):
        await db.session_get_by_token(bad)
    with pytest.raises(InvalidInputError, match="token must be a str"):
        await db.session_rotate(bad)
    assert await table(db) == before


# ---------------------------------------------------------------- rotation and revocation


async def test_rotate_gives_a_new_token_for_the_same_session(db: UnifiedDB):
    s = await db.session_create("u", {"n": 1})
    r = await db.session_rotate(s.token)
    assert r.token and r.token != s.token and r.id == s.id and r.data == {"n": 1}
    assert r.absolute_expires_at == s.absolute_expires_at  # rotation never extends the session
    assert await db.session_get_by_token(s.token) is None
    assert (await db.session_get_by_token(r.token)).id == s.id
    with pytest.raises(NotFoundError):
        await db.session_rotate(s.token)


async def test_concurrent_rotations_of_one_token_succeed_once(db: UnifiedDB):
    s = await db.session_create("u")
    results = await asyncio.gather(*(db.session_rotate(s.token) for _ in range(8)), return_exceptions=True)
    wins = [r for r in results if isinstance(r, Session)]
    assert len(wins) == 1
    assert all(isinstance(r, NotFoundError) for r in results if not isinstance(r, Session))
    assert (await db.session_get_by_token(wins[0].token)).id == s.id


async def test_under_concurrent_rotation_an_older_token_never_works_after_a_newer_one(db: UnifiedDB):
    s = await db.session_create("u")
    tokens = [s.token]
    seen: list[tuple[int, float, float]] = []  # (generation, start, end) of each success
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            # Newest first: on a slow machine a pass over every old token can outlast a
            # generation's whole life, and the readers would see too few of them.
            known = list(enumerate(tokens))
            for gen, token in reversed(known):
                start = time.monotonic()
                if await db.session_get_by_token(token) is not None:
                    seen.append((gen, start, time.monotonic()))

    async def rotator() -> None:
        for _ in range(15):
            tokens.append((await db.session_rotate(tokens[-1])).token)
            await asyncio.sleep(0.01)
        done.set()

    await asyncio.gather(rotator(), *(reader() for _ in range(4)))
    assert len({g for g, _, _ in seen}) > 3  # the readers did see several generations
    for gen, start, _ in seen:
        for newer, _, newer_end in seen:
            if newer > gen:
                assert newer_end > start, f"token {gen} worked after token {newer} had"
    assert [await db.session_get_by_token(t) is not None for t in tokens] == [False] * 15 + [True]


async def test_revoke_user_ends_every_session_of_that_user_only(db: UnifiedDB):
    mine = [await db.session_create("carol") for _ in range(3)]
    other = await db.session_create("dave")
    assert await db.session_revoke_user("carol") == 3
    assert [await db.session_get_by_token(s.token) for s in mine] == [None] * 3
    assert await db.session_get_by_token(other.token) is not None
    assert await db.session_revoke_user("carol") == 0
    keep, drop = await db.session_create("erin"), await db.session_create("erin")
    assert await db.session_revoke_user("erin", except_session_id=keep.id) == 1
    assert await db.session_get_by_token(keep.token) is not None
    assert await db.session_get_by_token(drop.token) is None


async def test_delete_and_bulk_delete(db: UnifiedDB):
    a, b, c = [await db.session_create("u") for _ in range(3)]
    assert await db.session_delete(a.id) is True
    assert await db.session_delete(a.id) is False
    assert await db.session_get_by_token(a.token) is None
    assert await db.session_bulk_delete([b.id, str(c.id), uuid.uuid4(), a.id]) == 2
    assert await db.session_bulk_delete([]) == 0
    assert await table(db) == []


# ---------------------------------------------------------------- updates


async def test_update_bumps_the_version_and_a_stale_version_conflicts(db: UnifiedDB):
    s = await db.session_create("u", {"n": 0})
    u1 = await db.session_update(s.id, {"n": 1}, expected_version=1)
    assert u1.version == 2 and u1.data == {"n": 1}
    before = await table(db)
    with pytest.raises(ConflictError, match="version 2"):
        await db.session_update(s.id, {"n": 99}, expected_version=1)
    assert await table(db) == before
    u2 = await db.session_update(s.id, {"n": 2})  # unconditional
    assert u2.version == 3
    assert (await db.session_get_by_token(s.token)).data == {"n": 2}
    with pytest.raises(NotFoundError):
        await db.session_update(uuid.uuid4(), {}, expected_version=1)
    with pytest.raises(NotFoundError):
        await db.session_update(uuid.uuid4(), {})


async def test_concurrent_optimistic_updates_let_exactly_one_win(db: UnifiedDB):
    s = await db.session_create("u", {"n": 0})
    results = await asyncio.gather(
        *(db.session_update(s.id, {"n": i}, expected_version=1) for i in range(1, 9)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Session)]
    assert len(wins) == 1 and all(isinstance(r, ConflictError) for r in results if r not in wins)
    final = await db.session_get(s.id)
    assert final.version == 2 and final.data == wins[0].data


async def test_extend_and_touch(db: UnifiedDB):
    s = await db.session_create("u", idle_timeout=60, absolute_timeout=3600)
    e = await db.session_extend(s.id, 120)
    assert (e.expires_at - s.expires_at).total_seconds() == pytest.approx(120, abs=0.01)
    t = await db.session_touch(s.id)
    assert t.last_accessed_at > s.last_accessed_at
    assert t.expires_at == e.expires_at  # a touch never shortens an extended expiry
    with pytest.raises(NotFoundError):
        await db.session_extend(uuid.uuid4(), 10)
    with pytest.raises(NotFoundError):
        await db.session_touch(uuid.uuid4())


# ---------------------------------------------------------------- listing, counts, cleanup


async def test_list_pages_newest_first_with_a_cursor(db: UnifiedDB):
    made = [await db.session_create("p" if i % 2 else "q") for i in range(7)]
    expired = await db.session_create("p", idle_timeout=0.2)
    await asyncio.sleep(0.4)
    newest_first = [s.id for s in reversed(made)]
    pages, cursor = [], None
    while True:
        page = await db.session_list(limit=3, cursor=cursor)
        if not page:
            break
        pages.append([s.id for s in page])
        cursor = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == newest_first
    assert all(s.token is None for s in await db.session_list())
    every = await db.session_list(active_only=False, limit=1000)
    assert [s.id for s in every] == [expired.id, *newest_first]
    assert [s.id for s in await db.session_list(user_id="p")] == [
        s.id for s in reversed(made) if s.user_id == "p"
    ]
    assert await db.session_get_active_count() == 7
    assert await db.session_get_active_count("p") == 3
    assert await db.session_get_active_count("nobody") == 0


async def test_cleanup_deletes_only_expired_sessions_in_batches(db: UnifiedDB):
    live = await db.session_create("u")
    for _ in range(7):
        await db.session_create("u", idle_timeout=0.2)
    await db.session_create("v", idle_timeout=60, absolute_timeout=0.2)
    await asyncio.sleep(0.4)
    assert await db._cleanup_sessions(dry_run=True, batch_size=2) == 8
    assert len(await table(db)) == 9  # the dry run deleted nothing
    assert await db.session_cleanup_inactive(batch_size=3) == 8
    assert [r[1] for r in await table(db)] == [live.id]
    assert await db.session_cleanup_inactive() == 0


async def test_concurrent_cleanups_never_delete_a_row_twice(db: UnifiedDB, db_dsn: str):
    await db._execute(
        "INSERT INTO __schema__.sessions (namespace, id, token_hash, user_id, expires_at,"
        " absolute_expires_at, idle_timeout)"
        " SELECT 'default', gen_random_uuid(), sha256(i::text::bytea), 'u', now() - interval '1 s',"
        " now() + interval '1 h', interval '1 s' FROM generate_series(1, 3000) i"
    )
    async with UnifiedDB(db_dsn, max_size=2) as second:
        counts = await asyncio.gather(
            db._cleanup_sessions(dry_run=False, batch_size=100),
            second._cleanup_sessions(dry_run=False, batch_size=100),
            db._cleanup_sessions(dry_run=False, batch_size=100),
        )
    assert sum(counts) == 3000
    assert await table(db) == []


async def test_analytics(db: UnifiedDB):
    empty = await db.session_analytics()
    assert empty.active == 0 and empty.max_sessions_per_user == 0 and empty.median_session_seconds is None
    for user in ["a", "a", "a", "b"]:
        await db.session_create(user)
    await db.session_create("c", idle_timeout=0.2)
    await asyncio.sleep(0.4)
    got = await db.session_analytics()
    assert got.active == 4 and got.active_users == 2
    assert got.created_last_hour == got.created_last_day == 5
    assert got.expired_last_hour == got.expired_last_day == 1
    assert got.max_sessions_per_user == 3
    assert got.median_session_seconds is not None and got.median_session_seconds >= 0


# ---------------------------------------------------------------- bad input


def _sid() -> uuid.UUID:
    return uuid.uuid4()


BAD_CALLS = [
    ("session_create", ("",), {}),
    ("session_create", (42,), {}),
    ("session_create", ("u", [1, 2]), {}),
    ("session_create", ("u", {"x": object()}), {}),
    ("session_create", ("u", {"x": {1, 2}}), {}),
    ("session_create", ("u",), {"idle_timeout": 0}),
    ("session_create", ("u",), {"absolute_timeout": -5}),
    ("session_create", ("u",), {"absolute_timeout": float("nan")}),
    ("session_create", ("u",), {"ip": "not-an-ip"}),
    ("session_create", ("u",), {"user_agent": "x" * 5000}),
    ("session_get_by_token", (None,), {}),
    ("session_get_by_token", ("a" * 43,), {"touch": "yes"}),
    ("session_get", ("nope",), {}),
    ("session_update", ("nope", {}), {}),
    ("session_update", (_sid(), "text"), {}),
    ("session_update", (_sid(), {"x": object()}), {}),
    ("session_update", (_sid(), {}), {"expected_version": 0}),
    ("session_delete", (123,), {}),
    ("session_rotate", (b"token",), {}),
    ("session_revoke_user", ("",), {}),
    ("session_revoke_user", ("u",), {"except_session_id": "x"}),
    ("session_list", (), {"limit": 0}),
    ("session_list", (), {"limit": 1001}),
    ("session_list", (), {"cursor": "bad"}),
    ("session_list", (), {"user_id": 5}),
    ("session_list", (), {"active_only": None}),
    ("session_extend", (_sid(), 0), {}),
    ("session_extend", ("bad", 10), {}),
    ("session_touch", ("bad",), {}),
    ("session_bulk_delete", ("not-a-list",), {}),
    ("session_bulk_delete", ([_sid(), "bad"],), {}),
    ("session_get_active_count", ("",), {}),
    ("session_cleanup_inactive", (0,), {}),
    ("session_cleanup_inactive", ("10",), {}),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs"), BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)]
)
async def test_bad_input_raises_and_changes_nothing(db: UnifiedDB, method, args, kwargs):
    await db.session_create("u", {"keep": True}, idle_timeout=0.2)
    await db.session_create("w")
    await asyncio.sleep(0.3)  # one expired row, which a wrongly run cleanup would delete
    before = await table(db)
    with pytest.raises(InvalidInputError):
        await getattr(db, method)(*args, **kwargs)
    assert await table(db) == before


async def test_bad_input_to_bulk_delete_deletes_none_of_the_good_ids(db: UnifiedDB):
    s = await db.session_create("u")
    with pytest.raises(InvalidInputError):
        await db.session_bulk_delete([s.id, "bad"])
    assert await db.session_get(s.id) is not None


# ---------------------------------------------------------------- namespaces


async def test_namespaces_never_see_each_other(db: UnifiedDB, other_ns: UnifiedDB):
    s = await db.session_create("shared-user", {"ns": "default"})
    old = await db.session_create("shared-user", idle_timeout=0.2)
    await asyncio.sleep(0.3)
    before = await table(db)
    o = other_ns
    assert await o.session_get_by_token(s.token) is None
    assert await o.session_get_by_token(s.token, touch=False) is None
    assert await o.session_get(s.id) is None
    with pytest.raises(NotFoundError):
        await o.session_update(s.id, {"ns": "other"})
    with pytest.raises(NotFoundError):
        await o.session_update(s.id, {"ns": "other"}, expected_version=1)
    with pytest.raises(NotFoundError):
        await o.session_rotate(s.token)
    with pytest.raises(NotFoundError):
        await o.session_extend(s.id, 100)
    with pytest.raises(NotFoundError):
        await o.session_touch(s.id)
    assert await o.session_delete(s.id) is False
    assert await o.session_bulk_delete([s.id, old.id]) == 0
    assert await o.session_revoke_user("shared-user") == 0
    assert await o.session_list(active_only=False) == []
    assert await o.session_list(user_id="shared-user", active_only=False) == []
    assert await o.session_get_active_count() == 0
    assert await o.session_get_active_count("shared-user") == 0
    assert await o._cleanup_sessions(dry_run=True, batch_size=10) == 0
    assert await o.session_cleanup_inactive() == 0
    a = await o.session_analytics()
    assert a.active == a.created_last_day == a.expired_last_day == 0
    assert await table(db) == before
    mine = await o.session_create("shared-user")
    assert await db.session_get_by_token(mine.token) is None
    assert await db.session_revoke_user("shared-user") == 1
    assert await o.session_get_by_token(mine.token) is not None

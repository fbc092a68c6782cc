"""The cache against a real PostgreSQL: semantics, bad input, namespaces, concurrency, expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest

from unified_db import InvalidInputError, NotFoundError, UnifiedDB

SNAPSHOT = """SELECT namespace, key, value, is_bytes, tags, expires_at, size_bytes
  FROM __schema__.cache_entries ORDER BY namespace, key"""


async def snapshot(db: UnifiedDB) -> list[tuple]:
    return [tuple(r) for r in await db._fetch(SNAPSHOT)]


async def seed(db: UnifiedDB) -> None:
    await db.cache_set("k", {"v": 1}, ttl=60, tags=("t",))
    await db.cache_set("n", 5)
    await db.cache_set("b", b"raw")


# ------------------------------------------------------------------ basic semantics


async def test_set_get_delete_exists(db: UnifiedDB):
    assert await db.cache_get("missing") is None
    assert await db.cache_get("missing", default="d") == "d"
    await db.cache_set("a", {"x": [1, 2]})
    assert await db.cache_get("a") == {"x": [1, 2]}
    await db.cache_set("none", None)
    assert await db.cache_get("none", default="d") is None  # a stored None is a hit
    assert await db.cache_exists("a") and not await db.cache_exists("missing")
    assert await db.cache_delete("a") is True
    assert await db.cache_delete("a") is False
    assert not await db.cache_exists("a")


async def test_values_round_trip(db: UnifiedDB):
    when = dt.datetime(2025, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    values = {
        "dict": {"a": {"b": [1, 2.5, None, True, "s"]}},
        "list": [1, "two"],
        "str": "ünïcødé",
        "int": -(2**63),
        "float": 0.1,
        "bool": False,
        "datetime": when,
        "uuid": uuid.UUID(int=7),
        "bytes": b"\x00\xffbinary",
    }
    await db.cache_set_many(values)
    got = await db.cache_get_many(list(values))
    assert got["datetime"] == when.isoformat()
    assert got["uuid"] == str(uuid.UUID(int=7))
    for name in ("dict", "list", "str", "int", "float", "bool", "bytes"):
        assert got[name] == values[name] and type(got[name]) is type(values[name])


async def test_five_mib_values_round_trip(db: UnifiedDB):
    blob = bytes(range(256)) * (5 * 1024 * 4)  # 5 MiB
    text = "x" * (5 * 1024 * 1024)
    await db.cache_set("blob", blob)
    await db.cache_set("text", text)
    assert await db.cache_get("blob") == blob
    assert await db.cache_get("text") == text
    assert (await db.cache_info()).bytes >= 10 * 1024 * 1024


async def test_set_replaces_value_ttl_and_tags(db: UnifiedDB):
    await db.cache_set("a", 1, ttl=60, tags=("old",))
    await db.cache_set("a", 2)
    assert await db.cache_get("a") == 2
    assert await db.cache_ttl("a") is None  # SET clears the TTL, as in Redis
    assert await db.cache_get_by_tags(["old"]) == {}


async def test_default_ttl_applies_when_ttl_is_none(db_dsn: str):
    async with UnifiedDB(db_dsn, cache_default_ttl=30, max_size=2) as db:
        await db.cache_set("a", 1)
        assert 29 < await db.cache_ttl("a") <= 30
        await db.cache_set("b", 1, ttl=dt.timedelta(seconds=5))
        assert 4 < await db.cache_ttl("b") <= 5


# ------------------------------------------------------------------ TTL


async def test_expiry_is_exact_without_any_sweep(db: UnifiedDB):
    await db.cache_set("short", "v", ttl=0.4)
    await db.cache_set_many({"m1": 1, "m2": 2}, ttl=0.4, tags=("tg",))
    await db.cache_set("long", "v", ttl=30)
    assert await db.cache_get("short") == "v"
    await asyncio.sleep(0.5)
    assert await db.cache_get("short", default="gone") == "gone"
    assert not await db.cache_exists("short")
    assert await db.cache_get_many(["short", "m1", "m2", "long"]) == {"long": "v"}
    assert await db.cache_get_by_tags(["tg"]) == {}
    assert await db.cache_touch("short", 10) is False
    assert await db.cache_persist("short") is False
    assert await db.cache_delete("short") is False  # expired: not counted as removed
    with pytest.raises(NotFoundError):
        await db.cache_ttl("m1")
    info = await db.cache_info()
    assert info.entries == 1 and info.expired_pending == 2  # still in the table, never served


async def test_touch_ttl_persist(db: UnifiedDB):
    await db.cache_set("a", {"big": "value"}, ttl=0.3)
    assert await db.cache_touch("a", 30) is True
    assert 29 < await db.cache_ttl("a") <= 30
    await asyncio.sleep(0.4)
    assert await db.cache_get("a") == {"big": "value"}  # the touch extended it
    assert await db.cache_touch("a", dt.timedelta(seconds=0.3)) is True
    await asyncio.sleep(0.4)
    assert not await db.cache_exists("a")  # a touch can shorten it too
    await db.cache_set("p", 1, ttl=0.3)
    assert await db.cache_persist("p") is True
    assert await db.cache_persist("p") is False  # no TTL left to remove
    await asyncio.sleep(0.4)
    assert await db.cache_get("p") == 1 and await db.cache_ttl("p") is None
    assert await db.cache_touch("missing", 10) is False
    with pytest.raises(NotFoundError, match="missing"):
        await db.cache_ttl("missing")


# ------------------------------------------------------------------ counters


async def test_incr_creates_adds_and_keeps_the_ttl(db: UnifiedDB):
    assert await db.cache_incr("c") == 1
    assert await db.cache_incr("c", 10) == 11
    assert await db.cache_incr("c", -20) == -9
    assert await db.cache_get("c") == -9
    assert await db.cache_ttl("c") is None
    assert await db.cache_incr("t", 5, ttl=30) == 5
    assert 29 < await db.cache_ttl("t") <= 30
    assert await db.cache_incr("t", ttl=1000) == 6  # an existing key keeps its TTL
    assert await db.cache_ttl("t") <= 30
    await db.cache_set("e", 100, ttl=0.2)
    await asyncio.sleep(0.3)
    assert await db.cache_incr("e", 2) == 2  # expired counts as missing


async def test_incr_refuses_non_integers_and_overflow_without_change(db: UnifiedDB):
    await db.cache_set("s", "text")
    await db.cache_set("f", 1.5)
    await db.cache_set("b", b"12")
    await db.cache_set("big", 2**63 - 1)
    before = await snapshot(db)
    for key in ("s", "f", "b"):
        with pytest.raises(InvalidInputError, match="not an integer"):
            await db.cache_incr(key)
    with pytest.raises(InvalidInputError, match="64-bit"):
        await db.cache_incr("big")
    assert await snapshot(db) == before


async def test_incr_is_atomic_under_concurrency(db: UnifiedDB):
    async def worker() -> None:
        for _ in range(50):
            await db.cache_incr("hits")

    await asyncio.gather(*(worker() for _ in range(40)))
    assert await db.cache_get("hits") == 2000


# ------------------------------------------------------------------ batches and tags


async def test_many_operations(db: UnifiedDB):
    assert await db.cache_set_many({f"k{i}": i for i in range(300)}, ttl=60) == 300
    got = await db.cache_get_many([f"k{i}" for i in range(0, 400, 2)] + ["k0"])
    assert got == {f"k{i}": i for i in range(0, 300, 2)}
    assert await db.cache_get_many([]) == {}
    assert await db.cache_delete_many([f"k{i}" for i in range(100)] + ["nope"]) == 100
    assert await db.cache_delete_many([]) == 0
    assert (await db.cache_info()).entries == 200
    assert await db.cache_set_many({}) == 0


async def test_many_operations_take_one_round_trip(db: UnifiedDB):
    before = db.get_stats().get("requests_num", 0)
    await db.cache_set_many({f"k{i}": i for i in range(1000)})
    await db.cache_get_many([f"k{i}" for i in range(1000)])
    await db.cache_delete_many([f"k{i}" for i in range(1000)])
    assert db.get_stats()["requests_num"] - before == 3


async def test_tags(db: UnifiedDB):
    await db.cache_set("u1", "alice", tags=("user", "team:a"))
    await db.cache_set("u2", "bob", tags=("user", "team:b"))
    await db.cache_set_many({"p1": 1, "p2": 2}, tags=("post", "team:a"))
    await db.cache_set("plain", 0)
    assert await db.cache_get_by_tags(["user"]) == {"u1": "alice", "u2": "bob"}
    assert await db.cache_get_by_tags(["team:a"]) == {"u1": "alice", "p1": 1, "p2": 2}
    assert await db.cache_get_by_tags(["user", "team:a"], match_all=True) == {"u1": "alice"}
    assert await db.cache_get_by_tags(["nobody"]) == {}
    assert await db.cache_invalidate_tags(["team:a"]) == 3
    assert await db.cache_get_many(["u1", "u2", "p1", "plain"]) == {"u2": "bob", "plain": 0}
    assert await db.cache_invalidate_tags(["team:a"]) == 0


async def test_tag_queries_use_the_gin_index(db: UnifiedDB):
    await db.cache_set_many({f"k{i}": i for i in range(2000)}, tags=("bulk",))
    await db.cache_set("needle", 1, tags=("rare",))
    from unified_db.extensions.cache import TAGS_ANY_SQL
    from unified_db.monitoring.maintenance import vacuum

    await vacuum(db, analyze_only=True)  # ANALYZE through maintain_analyze(): the app role's too
    async with db._acquire() as con:
        await con.execute("SET LOCAL enable_seqscan = off")  # tiny tables: make the choice visible
        plan = "\n".join(r[0] for r in await con.fetch("EXPLAIN " + TAGS_ANY_SQL, "default", ["rare"]))
    assert "cache_entries_tags" in plan


# ------------------------------------------------------------------ get_or_set


async def test_get_or_set_runs_the_loader_once_for_50_callers(db: UnifiedDB):
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"loaded": True}

    results = await asyncio.gather(*(db.cache_get_or_set("hot", loader, ttl=30) for _ in range(50)))
    assert calls == 1
    assert all(r == {"loaded": True} for r in results)
    assert await db.cache_get_or_set("hot", loader) == {"loaded": True}
    assert calls == 1
    assert 29 < await db.cache_ttl("hot") <= 30


async def test_get_or_set_across_two_instances_runs_the_loader_once(db_dsn: str):
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return "v"

    async with UnifiedDB(db_dsn, max_size=4) as a, UnifiedDB(db_dsn, max_size=4) as b:
        results = await asyncio.gather(
            *(inst.cache_get_or_set("shared", loader, tags=("x",)) for inst in (a, b) for _ in range(10))
        )
        assert results == ["v"] * 20
        assert calls == 1
        assert await b.cache_get_by_tags(["x"]) == {"shared": "v"}


async def test_get_or_set_sync_loader_errors_and_values(db: UnifiedDB):
    assert await db.cache_get_or_set("s", lambda: [1, 2]) == [1, 2]
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert await db.cache_get_or_set("d", lambda: when) == when.isoformat()  # what get returns

    def failing():
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError, match="backend down"):
        await db.cache_get_or_set("f", failing)
    assert not await db.cache_exists("f")
    with pytest.raises(InvalidInputError, match="loader result"):
        await db.cache_get_or_set("u", lambda: object())
    assert not await db.cache_exists("u")

    async def boom():
        await asyncio.sleep(0.05)
        raise KeyError("x")

    outcomes = await asyncio.gather(
        *(db.cache_get_or_set("g", boom) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, KeyError) for o in outcomes)
    assert await db.cache_get_or_set("g", lambda: "second try") == "second try"


# ------------------------------------------------------------------ bad input


BAD_CALLS = [
    ("cache_set", ("", 1), {}),
    ("cache_set", (1, 1), {}),
    ("cache_set", ("a\x00", 1), {}),
    ("cache_set", ("x" * 1025, 1), {}),
    ("cache_set", ("k", object()), {}),
    ("cache_set", ("k", 1, 0), {}),
    ("cache_set", ("k", 1, -1), {}),
    ("cache_set", ("k", 1, "10"), {}),
    ("cache_set", ("k", 1), {"tags": "t"}),
    ("cache_set", ("k", 1), {"tags": ("",)}),
    ("cache_get", (None,), {}),
    ("cache_delete", (b"k",), {}),
    ("cache_exists", ("",), {}),
    ("cache_get_many", ("k",), {}),
    ("cache_get_many", (["k", 3],), {}),
    ("cache_set_many", ({"ok": 1, "": 2},), {}),
    ("cache_set_many", ({"ok": 1, "bad": object()},), {}),
    ("cache_set_many", ([("a", 1)],), {}),
    ("cache_set_many", ({"a": 1}, 0), {}),
    ("cache_set_many", ({"a": 1},), {"tags": [None]}),
    ("cache_delete_many", ("k",), {}),
    ("cache_delete_many", (["k", ""],), {}),
    ("cache_touch", ("k", 0), {}),
    ("cache_touch", ("k", None), {}),
    ("cache_touch", ("", 5), {}),
    ("cache_ttl", (5,), {}),
    ("cache_persist", ("",), {}),
    ("cache_incr", ("k", 1.5), {}),
    ("cache_incr", ("k",), {"ttl": -5}),
    ("cache_incr", ("",), {}),
    ("cache_get_by_tags", ([],), {}),
    ("cache_get_by_tags", ("t",), {}),
    ("cache_invalidate_tags", ([""],), {}),
    ("cache_invalidate_tags", ([],), {}),
    ("cache_get_or_set", ("k", "not callable"), {}),
    ("cache_get_or_set", ("", lambda: 1), {}),
    ("cache_get_or_set", ("k", lambda: 1, 0), {}),
    ("cache_cleanup_expired", (0,), {}),
    ("cache_set_durable", ("yes",), {}),
]


@pytest.mark.parametrize(
    "method, args, kwargs", BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)]
)
async def test_bad_input_raises_and_changes_nothing(db: UnifiedDB, method, args, kwargs):
    await seed(db)
    before = await snapshot(db)
    with pytest.raises(InvalidInputError) as err:
        await getattr(db, method)(*args, **kwargs)
    assert isinstance(err.value, ValueError)
    assert await snapshot(db) == before


async def test_value_over_the_size_limit_is_refused(db_dsn: str):
    async with UnifiedDB(db_dsn, cache_max_value_bytes=1000, max_size=2) as db:
        await seed(db)
        before = await snapshot(db)
        with pytest.raises(InvalidInputError, match="cache_max_value_bytes"):
            await db.cache_set("big", "x" * 1000)
        with pytest.raises(InvalidInputError, match="cache_max_value_bytes"):
            await db.cache_set_many({"ok": 1, "big": b"x" * 1001})
        assert await snapshot(db) == before


# ------------------------------------------------------------------ namespaces


async def test_namespaces_never_see_each_other(db: UnifiedDB, other_ns: UnifiedDB):
    await db.cache_set("same", "mine", ttl=60, tags=("t",))
    await db.cache_set("count", 10)
    await db.cache_set("exp", 1, ttl=0.2)
    await other_ns.cache_set("same", "theirs", tags=("t",))
    assert await other_ns.cache_get("same") == "theirs"
    assert await db.cache_get("same") == "mine"
    assert not await other_ns.cache_exists("count")
    assert await other_ns.cache_get_many(["same", "count"]) == {"same": "theirs"}
    assert await other_ns.cache_get_by_tags(["t"]) == {"same": "theirs"}
    assert await other_ns.cache_incr("count") == 1
    assert await db.cache_get("count") == 10
    assert await other_ns.cache_touch("exp", 100) is False
    assert await other_ns.cache_persist("same") is False
    assert await other_ns.cache_delete("count") is True
    assert await db.cache_get("count") == 10
    with pytest.raises(NotFoundError):
        await other_ns.cache_ttl("exp")
    assert await other_ns.cache_get_or_set("same", lambda: "never") == "theirs"
    await asyncio.sleep(0.3)
    assert await other_ns.cache_cleanup_expired() == 0
    assert (await db.cache_info()).expired_pending == 1
    assert (await other_ns.cache_info()).entries == 1
    assert await other_ns.cache_invalidate_tags(["t"]) == 1
    assert await other_ns.cache_delete_many(["same", "count"]) == 0
    await other_ns.cache_set_many({"a": 1, "b": 2})
    assert await other_ns.cache_clear() == 2
    assert await db.cache_get_many(["same", "count"]) == {"same": "mine", "count": 10}
    assert await db.cache_cleanup_expired() == 1
    assert (await db.cache_info()).entries == 2


# ------------------------------------------------------------------ expiry and bounds


async def test_cleanup_deletes_expired_rows_in_batches(db: UnifiedDB):
    await db.cache_set_many({f"e{i}": i for i in range(250)}, ttl=0.2)
    await db.cache_set_many({f"l{i}": i for i in range(10)}, ttl=60)
    await db.cache_set("forever", 1)
    await asyncio.sleep(0.3)
    assert await db._cleanup_cache(dry_run=True, batch_size=100) == 250
    assert (await db.cache_info()).expired_pending == 250  # dry run deleted nothing
    assert await db.cache_cleanup_expired(batch_size=100) == 250
    assert await db.cache_cleanup_expired() == 0
    info = await db.cache_info()
    assert info.entries == 11 and info.expired_pending == 0


async def test_two_concurrent_sweepers_share_the_work(db_dsn: str):
    async with UnifiedDB(db_dsn, max_size=4) as a, UnifiedDB(db_dsn, max_size=4) as b:
        await a._execute(
            "INSERT INTO __schema__.cache_entries (namespace, key, value, expires_at)"
            " SELECT 'default', 'k' || g, '1', now() - interval '1 second' FROM generate_series(1, 20000) g"
        )
        start = time.monotonic()
        got = await asyncio.gather(
            a.cache_cleanup_expired(batch_size=500), b.cache_cleanup_expired(batch_size=500)
        )
        assert sum(got) == 20000  # every row deleted exactly once
        assert (await a.cache_info()).expired_pending == 0
        assert time.monotonic() - start < 30


async def test_a_locked_row_does_not_block_the_sweeper(db: UnifiedDB):
    await db.cache_set_many({"x": 1, "y": 2}, ttl=0.1)
    await asyncio.sleep(0.2)
    async with db._transaction() as con:
        await con.execute("SELECT 1 FROM __schema__.cache_entries WHERE key = 'x' FOR UPDATE")
        assert await asyncio.wait_for(db.cache_cleanup_expired(), 5) == 1  # skips x, does not wait
    assert await db.cache_cleanup_expired() == 1


async def test_size_bounds_evict_least_recently_written_first(db_dsn: str):
    async with UnifiedDB(db_dsn, cache_max_entries=5, max_size=2) as db:
        for i in range(8):
            await db.cache_set(f"k{i}", i)
        await db.cache_set("k0", "rewritten")  # now the most recent write
        assert await db._cleanup_cache(dry_run=True, batch_size=2) == 3
        assert await db._cleanup_cache(dry_run=False, batch_size=2) == 3
        assert sorted(await db.cache_get_many([f"k{i}" for i in range(8)])) == ["k0", "k4", "k5", "k6", "k7"]
    async with UnifiedDB(db_dsn, cache_max_bytes=1000, max_size=2) as db:
        await db.cache_clear()
        for i in range(10):
            await db.cache_set(f"b{i}", "x" * 198)  # 200 bytes value + 2 bytes key each
        assert await db._cleanup_cache(dry_run=False, batch_size=100) == 6
        info = await db.cache_info()
        assert info.bytes <= 1000 and info.entries == 4
        assert sorted(await db.cache_get_many([f"b{i}" for i in range(10)])) == ["b6", "b7", "b8", "b9"]


async def test_in_process_sweeper(db_dsn: str):
    async with UnifiedDB(db_dsn, cache_sweep_interval=0.2, max_size=2) as db:
        await db.cache_set_many({f"k{i}": i for i in range(20)}, ttl=0.1)
        await asyncio.sleep(0.8)
        assert (await db.cache_info()).expired_pending == 0
        assert db._component("cache").sweeps >= 1


# ------------------------------------------------------------------ durability and info


async def test_table_is_unlogged_by_default_and_durability_can_be_switched(db_dsn: str):
    async with UnifiedDB(db_dsn, max_size=2) as db:
        await db.cache_set("a", 1)
        assert (await db.cache_info()).durable is False
        assert await db.cache_set_durable(True) is True
        assert (await db.cache_info()).durable is True
        assert await db.cache_get("a") == 1
        await db.cache_set_durable(False)
        assert (await db.cache_info()).durable is False
    async with UnifiedDB(db_dsn, cache_durable=True, max_size=2) as db:
        assert (await db.cache_info()).durable is True  # converted on open
        assert await db.cache_get("a") == 1


async def test_info_counts_hits_and_misses(db: UnifiedDB):
    await db.cache_set("a", 1)
    await db.cache_get("a")
    await db.cache_get("b")
    await db.cache_get_many(["a", "b", "c"])
    info = await db.cache_info()
    assert (info.hits, info.misses) == (2, 3)
    assert info.hit_ratio == pytest.approx(0.4)
    assert info.local_enabled is False and info.entries == 1 and info.bytes == 2
    assert db.get_stats()["operations"]["cache_get"]["count"] == 2


# ------------------------------------------------------------------ demo and CLI


@pytest.mark.needs_session("the demo shows the near-cache, which LISTENs on the test DSN")
async def test_demo_section_runs_twice(db: UnifiedDB):
    import io

    from rich.console import Console

    from unified_db.demo import DemoOutput
    from unified_db.demos.cache import cache_section

    buf = io.StringIO()
    out = DemoOutput(Console(file=buf, width=200))
    await db.cache_set("user-data", "kept")
    await cache_section(db, out)
    await cache_section(db, out)
    text = buf.getvalue()
    assert text.count("loader ran 1 time(s)") == 2
    assert "<expired>" in text and "-> Grace" in text
    assert await db.cache_get("user-data") == "kept"  # the demo touches only its own keys


def test_cli_cache_commands(db_dsn: str):
    from typer.testing import CliRunner

    from unified_db.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["cache", "durable", "on", "--dsn", db_dsn])
    assert result.exit_code == 0, result.output
    assert "logged (durable)" in result.output
    result = runner.invoke(app, ["cache", "info", "--dsn", db_dsn])
    assert result.exit_code == 0 and "durable" in result.output and "True" in result.output
    result = runner.invoke(app, ["cache", "durable", "off", "--dsn", db_dsn])
    assert "UNLOGGED" in result.output
    result = runner.invoke(app, ["cache", "cleanup", "--dsn", db_dsn])
    assert result.exit_code == 0 and "deleted 0 expired entries" in result.output
    result = runner.invoke(app, ["cache", "durable", "maybe", "--dsn", db_dsn])
    assert result.exit_code == 2


async def test_the_docs_example_runs(db_dsn: str):
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parents[2] / "docs" / "cache.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    code = code.replace("UnifiedDB()", f"UnifiedDB({db_dsn!r})").replace("asyncio.run(main())", "")
    namespace: dict = {}
    exec(compile(code, "docs/cache.md", "exec"), namespace)  # noqa: S102 - our own docs
    await namespace["main"]()


async def test_writes_trigger_eviction_without_counting_every_write(db_dsn: str):
    async with UnifiedDB(db_dsn, cache_max_entries=100, max_size=3) as db:
        runtime = db._component("cache")
        for i in range(99):
            await db.cache_set(f"k{i}", i)
        assert runtime.evictions == 0  # below the check interval: no pass, no count
        await db.cache_set_many({f"m{i}": i for i in range(150)})
        await runtime.idle()
        assert runtime.evictions == 1
        info = await db.cache_info()
        assert info.entries == 100
        assert await db.cache_get("k0") is None and await db.cache_get("m149") == 149


async def test_a_full_pool_times_out_with_pool_timeout_error(db_dsn: str):
    from unified_db import PoolTimeoutError

    async with UnifiedDB(db_dsn, min_size=1, max_size=1, acquire_timeout=0.3) as db:
        await db.cache_set("k", 1)
        async with db._acquire():
            start = time.monotonic()
            with pytest.raises(PoolTimeoutError, match="acquire_timeout"):
                await db.cache_get("k")
            assert 0.25 < time.monotonic() - start < 3
        assert await db.cache_get("k") == 1  # the pool is intact afterwards
        assert db.get_stats()["acquire_timeouts"] == 1


async def test_eviction_counts_and_evicts_only_its_namespace(db_dsn: str):
    async with (
        UnifiedDB(db_dsn, cache_max_entries=3, max_size=2) as bounded,
        UnifiedDB(db_dsn, namespace="other", max_size=2) as other,
    ):
        await other.cache_set_many({f"o{i}": i for i in range(10)})
        await bounded.cache_set_many({f"b{i}": i for i in range(3)})
        assert await bounded._cleanup_cache(dry_run=False, batch_size=100) == 0  # 3 <= 3
        await bounded.cache_set("b3", 3)
        assert await bounded._cleanup_cache(dry_run=False, batch_size=100) == 1
        assert (await other.cache_info()).entries == 10
        assert (await bounded.cache_info()).entries == 3

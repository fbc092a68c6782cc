"""Memory snapshots against a real PostgreSQL: versions, history, search, diff, retention."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from unified_db import InvalidInputError, NotFoundError, UnifiedDB
from unified_db.extensions.memory import MemorySnapshot, SnapshotHit
from unified_db.monitoring.maintenance import cleanup_steps

COUNT = "SELECT count(*) FROM __schema__.memory_snapshots"


async def rows(db: UnifiedDB) -> int:
    return await db._fetchval(COUNT)


async def backdate(db: UnifiedDB, snapshot_id: int, days: float) -> None:
    """Tests only: pretend a snapshot was taken *days* ago."""
    await db._execute(
        "UPDATE __schema__.memory_snapshots SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
        snapshot_id,
        days * 86400.0,
    )


# ---------------------------------------------------------------------------- create / get


async def test_create_then_get_latest_and_version(db: UnifiedDB):
    s1 = await db.memory_snapshot_create(
        "agent-1", {"goal": "book a flight", "steps": [1, 2]}, label="start", tags=["b", "a", "b"]
    )
    assert isinstance(s1, MemorySnapshot)
    assert (s1.agent_id, s1.version, s1.label, s1.tags) == ("agent-1", 1, "start", ["a", "b"])
    assert (
        s1.metadata == {}
        and s1.restored_from is None
        and s1.size_bytes == len(orjson.dumps({"goal": "book a flight", "steps": [1, 2]}))
    )
    assert s1.created_at.tzinfo is not None
    s2 = await db.memory_snapshot_create("agent-1", {"goal": "done"}, metadata={"by": "test"})
    assert s2.version == 2 and s2.id > s1.id

    got = await db.memory_snapshot_get(s1.id)
    assert got is not None and got.state == {"goal": "book a flight", "steps": [1, 2]}
    assert got.model_dump(exclude={"state"}) == s1.model_dump(exclude={"state"})
    latest = await db.memory_snapshot_latest("agent-1")
    assert latest is not None and latest.id == s2.id and latest.metadata == {"by": "test"}
    v1 = await db.memory_snapshot_get_version("agent-1", 1)
    assert v1 is not None and v1.id == s1.id

    assert await db.memory_snapshot_get(s2.id + 100) is None
    assert await db.memory_snapshot_latest("nobody") is None
    assert await db.memory_snapshot_get_version("agent-1", 3) is None


async def test_versions_are_gap_free_with_20_concurrent_writers(db: UnifiedDB):
    async def write(i: int) -> MemorySnapshot:
        agent = "busy" if i % 4 else "other-agent"
        return await db.memory_snapshot_create(agent, {"i": i, "text": f"step {i}"})

    made = await asyncio.gather(*(write(i) for i in range(40)))
    busy = sorted(s.version for s in made if s.agent_id == "busy")
    other = sorted(s.version for s in made if s.agent_id == "other-agent")
    assert busy == list(range(1, 31)) and other == list(range(1, 11))
    stored = await db._fetch(
        "SELECT version FROM __schema__.memory_snapshots WHERE agent_id = 'busy' ORDER BY version"
    )
    assert [r["version"] for r in stored] == list(range(1, 31))
    # Each writer's state is under its own version.
    for s in made[:5]:
        again = await db.memory_snapshot_get_version(s.agent_id, s.version)
        assert again is not None and again.state == {"i": made.index(s), "text": f"step {made.index(s)}"}


async def test_a_deleted_version_is_never_reused(db: UnifiedDB):
    await db.memory_snapshot_create("a", {"v": 1})
    s2 = await db.memory_snapshot_create("a", {"v": 2})
    assert await db.memory_snapshot_delete(s2.id) is True
    assert await db.memory_snapshot_delete(s2.id) is False
    s3 = await db.memory_snapshot_create("a", {"v": 3})
    assert s3.version == 3
    assert await db.memory_snapshot_get_version("a", 2) is None


async def test_large_state_round_trips_and_oversize_writes_nothing(db: UnifiedDB):
    big = {"blob": "y" * (8 * 1024 * 1024), "tail": "needle at the end"}
    s = await db.memory_snapshot_create("big", big)
    assert s.size_bytes > 8 * 1024 * 1024
    got = await db.memory_snapshot_latest("big")
    assert got is not None and got.state == big
    # The default limit is 50 MiB: one byte more is refused before any I/O.
    too_big = {"blob": "z" * (50 * 1024 * 1024)}
    with pytest.raises(InvalidInputError, match="memory_max_state_bytes"):
        await db.memory_snapshot_create("big", too_big)
    assert await rows(db) == 1
    assert (await db.memory_snapshot_latest("big")).version == 1  # the failed write took no version


async def test_a_50_mib_state_is_accepted(db_dsn: str):
    async with UnifiedDB(db_dsn, min_size=1, max_size=2, command_timeout=120) as db:
        words = " ".join(f"w{i}" for i in range(1000))
        per_entry = len(words) + len('"k0000":"",')
        state = {f"k{i:05d}": words for i in range((50 * 1024 * 1024 - 1024) // (per_entry + 1))}
        s = await db.memory_snapshot_create("huge", state, label="huge one")
        assert 49 * 1024 * 1024 < s.size_bytes <= 50 * 1024 * 1024
        hits = await db.memory_snapshot_search("huge")
        assert [h.snapshot.id for h in hits] == [s.id]
        got = await db.memory_snapshot_get(s.id)
        assert got is not None and len(got.state) == len(state)


async def test_nul_in_state_is_invalid_input_and_nothing_is_written(db: UnifiedDB):
    with pytest.raises(InvalidInputError):
        await db.memory_snapshot_create("a", {"x": "nul \x00 inside"})
    assert await rows(db) == 0
    s = await db.memory_snapshot_create("a", {"x": "fine"})
    assert s.version == 1  # the refused write took no version


async def test_create_bad_input_writes_nothing(db: UnifiedDB):
    await db.memory_snapshot_create("a", {"x": 1})
    bad_calls = [
        dict(agent_id="", state={}),
        dict(agent_id="  ", state={}),
        dict(agent_id=None, state={}),
        dict(agent_id="x" * 300, state={}),
        dict(agent_id="a", state=[1, 2]),
        dict(agent_id="a", state="{}"),
        dict(agent_id="a", state={"s": {1, 2}}),
        dict(agent_id="a", state={"o": object()}),
        dict(agent_id="a", state={}, label=""),
        dict(agent_id="a", state={}, label=5),
        dict(agent_id="a", state={}, tags="one"),
        dict(agent_id="a", state={}, tags=["ok", 3]),
        dict(agent_id="a", state={}, metadata=[1]),
    ]
    for kwargs in bad_calls:
        agent, state = kwargs.pop("agent_id"), kwargs.pop("state")
        with pytest.raises(InvalidInputError):
            await db.memory_snapshot_create(agent, state, **kwargs)
    assert await rows(db) == 1
    assert (await db.memory_snapshot_create("a", {"x": 2})).version == 2


async def test_read_methods_refuse_bad_ids(db: UnifiedDB):
    await db.memory_snapshot_create("a", {"x": 1})
    for bad in (0, -1, "1", 1.0, True, None):
        with pytest.raises(InvalidInputError, match="snapshot_id"):
            await db.memory_snapshot_get(bad)
        with pytest.raises(InvalidInputError, match="snapshot_id"):
            await db.memory_snapshot_delete(bad)
        with pytest.raises(InvalidInputError, match="snapshot_id"):
            await db.memory_snapshot_restore(bad)
        with pytest.raises(InvalidInputError, match="a_id"):
            await db.memory_snapshot_diff(bad, 1)
    for bad in ("", None, 1):
        with pytest.raises(InvalidInputError, match="agent_id"):
            await db.memory_snapshot_latest(bad)
    for bad in (0, -1, "1", True):
        with pytest.raises(InvalidInputError, match="version"):
            await db.memory_snapshot_get_version("a", bad)
    with pytest.raises(InvalidInputError, match="agent_id"):
        await db.memory_snapshot_stats(agent_id="")
    assert await rows(db) == 1


# ---------------------------------------------------------------------------- restore / diff


async def test_restore_appends_a_copy_and_keeps_history(db: UnifiedDB):
    s1 = await db.memory_snapshot_create("r", {"mood": "calm", "n": [1]}, label="good", tags=["t"])
    s2 = await db.memory_snapshot_create("r", {"mood": "broken"})
    restored = await db.memory_snapshot_restore(s1.id)
    assert restored.version == 3 and restored.restored_from == s1.id
    assert restored.state == {"mood": "calm", "n": [1]}
    assert (restored.label, restored.tags, restored.size_bytes) == ("good", ["t"], s1.size_bytes)
    history = await db.memory_snapshot_list("r")
    assert [s.id for s in history] == [restored.id, s2.id, s1.id]
    assert (await db.memory_snapshot_latest("r")).state == {"mood": "calm", "n": [1]}
    diff = await db.memory_snapshot_diff(s1.id, restored.id)
    assert diff.is_empty
    with pytest.raises(NotFoundError):
        await db.memory_snapshot_restore(restored.id + 50)
    assert await rows(db) == 3


async def test_diff_reports_paths(db: UnifiedDB):
    a = await db.memory_snapshot_create("d", {"keep": 1, "gone": "x", "plan": {"steps": ["a", "b"], "n": 1}})
    b = await db.memory_snapshot_create(
        "d", {"keep": 1, "new": True, "plan": {"steps": ["a", "c", "d"], "n": 1}}
    )
    diff = await db.memory_snapshot_diff(a.id, b.id)
    assert (diff.a_id, diff.b_id) == (a.id, b.id)
    assert diff.added == ["/new", "/plan/steps/2"]
    assert diff.removed == ["/gone"]
    assert diff.changed == ["/plan/steps/1"]
    with pytest.raises(NotFoundError, match=str(b.id + 9)):
        await db.memory_snapshot_diff(a.id, b.id + 9)


# ---------------------------------------------------------------------------- list


async def test_list_pages_with_cursor_newest_first(db: UnifiedDB):
    made = [
        await db.memory_snapshot_create("p", {"i": i}, tags=["even"] if i % 2 == 0 else []) for i in range(7)
    ]
    await db.memory_snapshot_create("q", {"i": 99})
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = await db.memory_snapshot_list("p", limit=3, cursor=cursor)
        if not page:
            break
        pages += 1
        assert all(s.state is None for s in page)
        seen += [s.id for s in page]
        cursor = page[-1].id
    assert seen == [s.id for s in reversed(made)] and pages == 3
    everything = await db.memory_snapshot_list(limit=100)
    assert len(everything) == 8 and everything[0].agent_id == "q"
    even = await db.memory_snapshot_list("p", tags=["even"], include_state=True)
    assert [s.state["i"] for s in even] == [6, 4, 2, 0]
    assert await db.memory_snapshot_list("p", tags=["even", "missing"]) == []


async def test_list_cursor_of_a_deleted_snapshot_still_pages(db: UnifiedDB):
    made = [await db.memory_snapshot_create("p", {"i": i}) for i in range(4)]
    await db.memory_snapshot_delete(made[2].id)
    page = await db.memory_snapshot_list("p", cursor=made[2].id)
    assert [s.id for s in page] == [made[1].id, made[0].id]


async def test_list_since_until(db: UnifiedDB):
    old = await db.memory_snapshot_create("t", {"i": 0})
    new = await db.memory_snapshot_create("t", {"i": 1})
    await backdate(db, old.id, 2)
    cut = datetime.now(UTC) - timedelta(days=1)
    assert [s.id for s in await db.memory_snapshot_list("t", since=cut)] == [new.id]
    assert [s.id for s in await db.memory_snapshot_list("t", until=cut)] == [old.id]


async def test_list_bad_arguments_and_bad_cursors(db: UnifiedDB):
    await db.memory_snapshot_create("p", {"i": 1})
    bad = [
        dict(cursor=-1),
        dict(cursor=0),
        dict(cursor="abc"),
        dict(cursor="12"),
        dict(cursor=True),
        dict(cursor=1.5),
        dict(cursor=2**64),
        dict(limit=0),
        dict(limit=1001),
        dict(tags="one"),
        dict(since=datetime(2024, 1, 1)),
        dict(until="yesterday"),
        dict(include_state="yes"),
    ]
    for kwargs in bad:
        with pytest.raises(InvalidInputError):
            await db.memory_snapshot_list("p", **kwargs)
    with pytest.raises(InvalidInputError, match="agent_id"):
        await db.memory_snapshot_list("")
    assert await rows(db) == 1


# ---------------------------------------------------------------------------- search


async def _corpus(db: UnifiedDB) -> dict[str, MemorySnapshot]:
    return {
        "flight": await db.memory_snapshot_create(
            "travel", {"notes": ["booked a flight to Paris", "hotel near the station"]}, tags=["trip"]
        ),
        "label": await db.memory_snapshot_create("travel", {"notes": "nothing here"}, label="Paris planning"),
        "train": await db.memory_snapshot_create("travel", {"plan": {"leg": "train from Paris to Berlin"}}),
        "cook": await db.memory_snapshot_create(
            "chef", {"recipe": "bread with flour and water"}, tags=["food"]
        ),
        "keys": await db.memory_snapshot_create("chef", {"paris": 1, "count": 42}),
    }


async def test_search_ranks_label_above_state_and_highlights(db: UnifiedDB):
    c = await _corpus(db)
    hits = await db.memory_snapshot_search("paris")
    assert all(isinstance(h, SnapshotHit) for h in hits)
    ids = [h.snapshot.id for h in hits]
    # Object keys and numbers are not text: "keys" does not match.
    assert set(ids) == {c["flight"].id, c["label"].id, c["train"].id}
    assert ids[0] == c["label"].id  # a label (weight A) outranks state text
    assert hits[0].rank >= hits[1].rank >= hits[2].rank > 0
    assert all("<b>Paris</b>" in h.excerpt for h in hits)
    assert hits[0].snapshot.state is None
    with_state = await db.memory_snapshot_search("bread", include_state=True)
    assert with_state[0].snapshot.state == {"recipe": "bread with flour and water"}


async def test_search_web_syntax_stemming_and_filters(db: UnifiedDB):
    c = await _corpus(db)

    async def ids(q: str, **kw) -> set[int]:
        return {h.snapshot.id for h in await db.memory_snapshot_search(q, **kw)}

    assert await ids('"flight to Paris"') == {c["flight"].id}
    assert await ids('"Paris to flight"') == set()
    assert await ids("paris -train") == {c["flight"].id, c["label"].id}
    assert await ids("bread or train") == {c["cook"].id, c["train"].id}
    assert await ids("booking flights") == {c["flight"].id}  # English stemming
    assert await ids("trip") == {c["flight"].id}  # tags are searchable
    assert await ids("paris", agent_id="chef") == set()
    assert await ids("paris", tags=["trip"]) == {c["flight"].id}
    assert await ids("the and of") == set()  # stop words only: nothing, not an error
    assert len(await db.memory_snapshot_search("paris", limit=1)) == 1


async def test_search_indexes_a_bounded_prefix_of_huge_states(db: UnifiedDB):
    filler = " ".join(["lorem"] * 70_000)  # ~420 KB of text: above the 256 KiB bound
    s = await db.memory_snapshot_create("big", {"a_head": "zebra", "b_body": filler, "c_tail": "walrus"})
    assert [h.snapshot.id for h in await db.memory_snapshot_search("zebra")] == [s.id]
    assert await db.memory_snapshot_search("walrus") == []  # beyond the indexed prefix
    small = await db.memory_snapshot_create("small", {"a": "lorem " * 10, "z": "walrus"})
    assert [h.snapshot.id for h in await db.memory_snapshot_search("walrus")] == [small.id]


async def test_huge_multibyte_state_stays_under_the_tsvector_limit(db: UnifiedDB):
    # 700 distinct 500-character words of 4-byte letters: 1.4 MB of lexemes if indexed
    # whole, past the 1 MB tsvector limit; the byte-bounded prefix keeps it indexable.
    rnd = random.Random(1)
    words = ["".join(chr(rnd.randrange(0x20000, 0x2A6DF)) for _ in range(500)) for _ in range(700)]
    s = await db.memory_snapshot_create("cjk", {"text": " ".join(words)}, label="ideographs")
    assert [h.snapshot.id for h in await db.memory_snapshot_search("ideographs")] == [s.id]
    assert (await db.memory_snapshot_get(s.id)).state["text"].startswith(words[0])


async def test_search_bad_input(db: UnifiedDB):
    await _corpus(db)
    for q in ("", "   ", None, 5, "x" * 1025, "a\x00"):
        with pytest.raises(InvalidInputError, match="query"):
            await db.memory_snapshot_search(q)
    for kwargs in (
        dict(limit=0),
        dict(limit=201),
        dict(tags="trip"),
        dict(agent_id=""),
        dict(include_state=1),
    ):
        with pytest.raises(InvalidInputError):
            await db.memory_snapshot_search("paris", **kwargs)
    # Characters that are tsquery syntax are only text to websearch_to_tsquery.
    assert await db.memory_snapshot_search("paris & | ! ( ) : * <->") != []
    assert await rows(db) == 5


# ---------------------------------------------------------------------------- stats


async def test_stats_per_agent(db: UnifiedDB):
    assert (await db.memory_snapshot_stats()).count == 0
    a1 = await db.memory_snapshot_create("a", {"x": 1})
    a2 = await db.memory_snapshot_create("a", {"x": 22})
    b1 = await db.memory_snapshot_create("b", {"y": "z"})
    stats = await db.memory_snapshot_stats()
    assert stats.count == 3 and stats.bytes == a1.size_bytes + a2.size_bytes + b1.size_bytes
    assert stats.oldest == a1.created_at and stats.newest == b1.created_at
    assert [(s.agent_id, s.count, s.latest_version) for s in stats.agents] == [("a", 2, 2), ("b", 1, 1)]
    only_b = await db.memory_snapshot_stats("b")
    assert only_b.count == 1 and [s.agent_id for s in only_b.agents] == ["b"]


# ---------------------------------------------------------------------------- retention


async def test_cleanup_keep_last_never_deletes_the_latest(db: UnifiedDB):
    made = [await db.memory_snapshot_create("k", {"i": i}) for i in range(5)]
    lone = await db.memory_snapshot_create("lone", {"i": 0})
    assert await db.memory_snapshot_cleanup(keep_last=2, dry_run=True) == 3
    assert await rows(db) == 6
    assert await db.memory_snapshot_cleanup(keep_last=2) == 3
    assert [s.id for s in await db.memory_snapshot_list("k")] == [made[4].id, made[3].id]
    assert await db.memory_snapshot_latest("lone") == await db.memory_snapshot_get(lone.id)
    assert await db.memory_snapshot_cleanup(keep_last=1, agent_id="lone") == 0


async def test_cleanup_older_than_keeps_latest_and_recent(db: UnifiedDB):
    old = [await db.memory_snapshot_create("o", {"i": i}) for i in range(3)]
    recent = await db.memory_snapshot_create("o", {"i": 3})
    only_old = await db.memory_snapshot_create("stale", {"i": 0})
    for s in [*old, only_old]:
        await backdate(db, s.id, 10)
    assert await db.memory_snapshot_cleanup(older_than=timedelta(days=5), dry_run=True) == 3
    assert await db.memory_snapshot_cleanup(older_than=timedelta(days=5)) == 3
    assert [s.id for s in await db.memory_snapshot_list()] == [only_old.id, recent.id]
    # Both rules: a snapshot is kept when either rule keeps it.
    more = [await db.memory_snapshot_create("o", {"i": i}) for i in range(4, 7)]
    for s in (more[0], more[1], more[2]):
        await backdate(db, s.id, 10)
    # more[0] is old and not among the 2 newest; recent is not among them but is recent;
    # more[1] and more[2] are old but among the 2 newest.
    assert await db.memory_snapshot_cleanup(keep_last=2, older_than=timedelta(days=5)) == 1
    await backdate(db, recent.id, 10)
    assert await db.memory_snapshot_cleanup(keep_last=2, older_than=86400 * 5) == 1
    assert [s.id for s in await db.memory_snapshot_list("o")] == [more[2].id, more[1].id]


async def test_cleanup_in_batches_and_concurrently_deletes_each_row_once(db: UnifiedDB):
    await db._execute(
        "INSERT INTO __schema__.memory_snapshots (namespace, agent_id, version, state, size_bytes)"
        " SELECT 'default', 'bulk', g, '{}', 2 FROM generate_series(1, 500) g"
    )
    counts = await asyncio.gather(
        *(db.memory_snapshot_cleanup(keep_last=10, batch_size=37) for _ in range(4))
    )
    assert sum(counts) == 490
    versions = [s.version for s in await db.memory_snapshot_list("bulk", limit=100)]
    assert versions == list(range(500, 490, -1))


async def test_cleanup_racing_writers_always_leaves_the_latest(db: UnifiedDB):
    async def writer() -> None:
        for i in range(15):
            await db.memory_snapshot_create("race", {"i": i})

    async def cleaner() -> int:
        total = 0
        for _ in range(15):
            total += await db.memory_snapshot_cleanup(keep_last=1, batch_size=3)
        return total

    results = await asyncio.gather(writer(), writer(), cleaner(), cleaner())
    latest = await db.memory_snapshot_latest("race")
    assert latest is not None and latest.version == 30
    remaining = await rows(db)
    assert remaining + results[2] + results[3] == 30  # each row deleted at most once


async def test_cleanup_bad_input_deletes_nothing(db: UnifiedDB):
    for i in range(3):
        await db.memory_snapshot_create("k", {"i": i})
    bad = [
        dict(),
        dict(keep_last=0),
        dict(keep_last=True),
        dict(keep_last="2"),
        dict(older_than=-1),
        dict(older_than="1d"),
        dict(keep_last=1, agent_id=""),
        dict(keep_last=1, batch_size=0),
    ]
    for kwargs in bad:
        with pytest.raises(InvalidInputError):
            await db.memory_snapshot_cleanup(**kwargs)
    assert await rows(db) == 3


async def test_cleanup_step_uses_the_retention_settings(db_dsn: str):
    async with UnifiedDB(db_dsn, max_size=2) as off:
        assert "snapshots" in cleanup_steps(off)
        for i in range(4):
            await off.memory_snapshot_create("s", {"i": i})
        assert await off._cleanup_snapshots(dry_run=False, batch_size=10) == 0  # both settings off
    async with UnifiedDB(db_dsn, max_size=2, memory_retention_keep_last=2) as on:
        assert await on._cleanup_snapshots(dry_run=True, batch_size=10) == 2
        assert await on._cleanup_snapshots(dry_run=False, batch_size=1) == 2
        assert [s.version for s in await on.memory_snapshot_list("s")] == [4, 3]
    async with UnifiedDB(db_dsn, max_size=2, memory_retention_days=1) as by_age:
        assert await by_age._cleanup_snapshots(dry_run=False, batch_size=10) == 0  # nothing that old


# ---------------------------------------------------------------------------- namespaces


async def test_namespaces_are_isolated_for_every_method(db: UnifiedDB, other_ns: UnifiedDB):
    mine = await db.memory_snapshot_create("shared-name", {"secret": "alpha paris"}, label="mine")
    await db.memory_snapshot_create("shared-name", {"secret": "beta"})
    theirs = await other_ns.memory_snapshot_create("shared-name", {"secret": "gamma paris"})
    assert theirs.version == 1  # versions are counted per namespace

    assert await other_ns.memory_snapshot_get(mine.id) is None
    assert (await other_ns.memory_snapshot_latest("shared-name")).id == theirs.id
    assert (await other_ns.memory_snapshot_get_version("shared-name", 2)) is None
    assert [s.id for s in await other_ns.memory_snapshot_list()] == [theirs.id]
    assert [s.id for s in await other_ns.memory_snapshot_list(cursor=mine.id + 100)] == [theirs.id]
    assert [h.snapshot.id for h in await other_ns.memory_snapshot_search("paris")] == [theirs.id]
    assert (await other_ns.memory_snapshot_stats()).count == 1
    with pytest.raises(NotFoundError):
        await other_ns.memory_snapshot_restore(mine.id)
    with pytest.raises(NotFoundError):
        await other_ns.memory_snapshot_diff(mine.id, theirs.id)
    assert await other_ns.memory_snapshot_delete(mine.id) is False
    assert await other_ns.memory_snapshot_cleanup(keep_last=1) == 0
    assert await other_ns._cleanup_snapshots(dry_run=False, batch_size=10) == 0

    assert await db.memory_snapshot_get(mine.id) is not None
    assert (await db.memory_snapshot_stats()).count == 2
    assert await db.memory_snapshot_cleanup(keep_last=1) == 1
    assert (await other_ns.memory_snapshot_stats()).count == 1
    assert await other_ns.memory_snapshot_get(theirs.id) is not None


# ---------------------------------------------------------------------------- demo


async def test_demo_section_is_repeatable(db_dsn: str):
    import io

    from rich.console import Console

    from unified_db.demo import DemoOutput
    from unified_db.demos.memory import memory_section

    buffer = io.StringIO()
    out = DemoOutput(Console(file=buffer, width=200))
    async with UnifiedDB(db_dsn, namespace="demo", max_size=2) as demo:
        await memory_section(demo, out)
        await memory_section(demo, out)
        stats = await demo.memory_snapshot_stats()
    assert "restored_from=" in buffer.getvalue() and "<b>Sintra</b>" in buffer.getvalue()
    assert [a.latest_version for a in stats.agents] == [6, 2]

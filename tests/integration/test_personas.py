"""Personas against a real PostgreSQL: versions, soft delete, one default, preferences,
audit, import atomicity, cross-process visibility, bad input and namespace isolation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import pytest

from unified_db import ConflictError, InvalidInputError, NotFoundError, UnifiedDB, UnifiedDBError
from unified_db.extensions.personas import Persona

TABLES = ("personas", "persona_versions", "persona_audit", "persona_user_preferences", "persona_metrics")


async def snapshot(db: UnifiedDB) -> dict[str, str]:
    """A digest of every persona table, to prove an operation wrote nothing."""
    out = {}
    for table in TABLES:
        # table names come from the constant tuple above, not from input
        out[table] = await db._fetchval(
            f"SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM __schema__.{table} t"
        )
    return out


def spec(name: str, **kw) -> dict:
    return {"name": name, "system_prompt": f"You are {name}.", **kw}


# ---------------------------------------------------------------------------- create and read


async def test_create_get_and_duplicate(db: UnifiedDB):
    p = await db.persona_create(
        spec("code-reviewer", expertise=["python", "sql"], personality_traits={"tone": "direct"}),
        actor="alice",
    )
    assert p.version == 1 and p.created_by == "alice" and p.display_name == "code-reviewer"
    got = await db.persona_get("code-reviewer")
    assert got == p
    assert got.expertise == ["python", "sql"] and got.personality_traits == {"tone": "direct"}
    assert await db.persona_get("nobody") is None
    # a model is accepted as well as a dict
    model = Persona(name="writer", display_name="Writer", system_prompt="Write.")
    assert (await db.persona_create(model)).display_name == "Writer"
    before = await snapshot(db)
    with pytest.raises(ConflictError, match="already exists"):
        await db.persona_create(spec("code-reviewer"))
    assert await snapshot(db) == before


async def test_list_pages_by_name_filters_by_type_and_search(db: UnifiedDB):
    await db.persona_import(
        [spec(f"dev-{i:02d}", persona_type="enhanced-development") for i in range(7)]
        + [spec(f"std-{i:02d}", description="50% off_sale" if i == 1 else "") for i in range(3)]
    )
    await db.persona_delete("dev-03")
    pages, cursor = [], None
    while True:
        page = await db.persona_list(persona_type="enhanced-development", limit=2, cursor=cursor)
        if not page:
            break
        pages.append([p.name for p in page])
        cursor = page[-1].name
    assert pages == [["dev-00", "dev-01"], ["dev-02", "dev-04"], ["dev-05", "dev-06"]]
    every = await db.persona_list(persona_type="enhanced-development", include_inactive=True)
    assert len(every) == 7
    assert [p.name for p in await db.persona_list()] == [
        "dev-00", "dev-01", "dev-02", "dev-04", "dev-05", "dev-06", "std-00", "std-01", "std-02"
    ]  # fmt: skip
    # search is a literal substring: % and _ are not wildcards
    assert [p.name for p in await db.persona_list(search="0% OFF_")] == ["std-01"]
    assert [p.name for p in await db.persona_list(search="%")] == ["std-01"]
    assert [p.name for p in await db.persona_list(search="_")] == ["std-01"]
    assert [p.name for p in await db.persona_list(search="STD-0", limit=1, cursor="std-00")] == ["std-01"]


# ---------------------------------------------------------------------------- versions


async def test_update_versions_history_and_rollback(db: UnifiedDB):
    await db.persona_create(spec("tutor", role="teacher"), actor="a")
    v2 = await db.persona_update("tutor", {"role": "mentor"}, actor="b", expected_version=1)
    v3 = await db.persona_update(
        "tutor", {"system_prompt": "Teach kindly.", "expertise": ["math"]}, actor="c"
    )
    assert (v2.version, v2.role, v2.updated_by) == (2, "mentor", "b")
    assert (v3.version, v3.system_prompt, v3.expertise) == (3, "Teach kindly.", ["math"])
    history = await db.persona_history("tutor")
    assert [h.version for h in history] == [3, 2, 1]
    assert [h.actor for h in history] == ["c", "b", "a"]
    old = await db.persona_get_version("tutor", 1)
    assert old is not None and old.role == "teacher" and old.system_prompt == "You are tutor."
    assert await db.persona_get_version("tutor", 9) is None

    back = await db.persona_rollback("tutor", 1, actor="d")
    assert back.version == 4 and back.content() == old.content()
    assert (await db.persona_get("tutor")).content() == old.content()
    assert [h.version for h in await db.persona_history("tutor")] == [4, 3, 2, 1]  # nothing rewritten

    # a stale expected_version is a conflict and writes nothing
    before = await snapshot(db)
    with pytest.raises(ConflictError, match="version 4, not 2"):
        await db.persona_update("tutor", {"role": "x"}, expected_version=2)
    assert await snapshot(db) == before
    # an update that changes nothing is not a version
    same = await db.persona_update("tutor", {"role": "teacher"})
    assert same.version == 4 and await snapshot(db) == before


async def test_missing_persona_or_version_is_not_found(db: UnifiedDB):
    await db.persona_create(spec("x"))
    before = await snapshot(db)
    for call in (
        db.persona_update("nope", {"role": "r"}),
        db.persona_history("nope"),
        db.persona_rollback("nope", 1),
        db.persona_rollback("x", 5),
        db.persona_delete("nope"),
        db.persona_restore("nope"),
        db.persona_purge("nope"),
        db.persona_set_default("nope"),
        db.persona_set_user_preference("u", "nope"),
        db.persona_record_metric("nope", "m", 1),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert await snapshot(db) == before


async def test_concurrent_updates_with_expected_version_one_wins(db: UnifiedDB):
    await db.persona_create(spec("race"))
    results = await asyncio.gather(
        *(db.persona_update("race", {"role": f"r{i}"}, expected_version=1) for i in range(5)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Persona)]
    assert len(wins) == 1 and all(isinstance(r, ConflictError) for r in results if r not in wins)
    assert (await db.persona_get("race")).version == 2


# ---------------------------------------------------------------------------- soft delete


async def test_soft_delete_hides_restore_shows_purge_removes(db: UnifiedDB):
    await db.persona_initialize_default()
    await db.persona_create(spec("ghost", persona_type="meta-orchestration"))
    await db.persona_set_user_preference("u1", "ghost")
    await db.persona_record_metric("ghost", "rating", 4)
    deleted = await db.persona_delete("ghost", actor="ops")
    assert deleted.is_active is False
    assert await db.persona_get("ghost") is None
    assert (await db.persona_get("ghost", include_inactive=True)).is_active is False
    assert "ghost" not in [p.name for p in await db.persona_list()]
    assert "ghost" in [p.name for p in await db.persona_list(include_inactive=True)]
    assert await db.persona_list(persona_type="meta-orchestration") == []
    assert (await db.persona_get_for_user("u1")).name == "assistant"
    assert (await db.persona_delete("ghost")).is_active is False  # idempotent
    with pytest.raises(ConflictError, match="exists"):
        await db.persona_create(spec("ghost"))  # the name is still taken
    with pytest.raises(NotFoundError):
        await db.persona_set_user_preference("u2", "ghost")  # cannot choose a deleted one

    restored = await db.persona_restore("ghost")
    assert restored.is_active and (await db.persona_get("ghost")) is not None
    assert (await db.persona_get_for_user("u1")).name == "ghost"  # the choice survived

    await db.persona_purge("ghost", actor="ops")
    assert await db.persona_get("ghost", include_inactive=True) is None
    assert await db._fetchval("SELECT count(*) FROM __schema__.persona_versions WHERE name = 'ghost'") == 0
    assert await db._fetchval("SELECT count(*) FROM __schema__.persona_metrics WHERE name = 'ghost'") == 0
    assert await db._fetchval("SELECT count(*) FROM __schema__.persona_user_preferences") == 0
    actions = [e.action for e in await db.persona_audit_log("ghost")]
    assert actions == ["purge", "restore", "delete", "create"]
    assert (await db.persona_get_for_user("u1")).name == "assistant"
    # the name can be used again
    assert (await db.persona_create(spec("ghost"))).version == 1


async def test_the_default_cannot_be_deleted_or_purged(db: UnifiedDB):
    await db.persona_initialize_default()
    before = await snapshot(db)
    with pytest.raises(ConflictError, match="default"):
        await db.persona_delete("assistant")
    with pytest.raises(ConflictError, match="default"):
        await db.persona_purge("assistant")
    assert await snapshot(db) == before
    await db.persona_create(spec("other"))
    await db.persona_delete("other")
    with pytest.raises(ConflictError, match="restore"):
        await db.persona_set_default("other")


# ---------------------------------------------------------------------------- the default


async def test_one_default_under_ten_concurrent_set_default_calls(db: UnifiedDB):
    await db.persona_import([spec(f"p{i}") for i in range(10)])
    results = await asyncio.gather(
        *(db.persona_set_default(f"p{i}", actor=f"caller-{i}") for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, Persona) and r.is_default for r in results), results
    defaults = await db._fetch(
        "SELECT name FROM __schema__.personas WHERE namespace = 'default' AND is_default"
    )
    assert len(defaults) == 1
    assert (await db.persona_get_default()).name == defaults[0]["name"]
    # the first call found no previous default; each later one cleared exactly one
    changes = [e for e in await db.persona_audit_log(limit=100) if e.action == "default_changed"]
    assert len([e for e in changes if e.diff["is_default"]["new"] is True]) == 10
    assert len([e for e in changes if e.diff["is_default"]["new"] is False]) == 9


async def test_the_database_refuses_a_second_default(db: UnifiedDB):
    await db.persona_import([spec("a", is_default=True), spec("b")])
    with pytest.raises(ConflictError):
        await db._execute("UPDATE __schema__.personas SET is_default = true WHERE name = 'b'")
    with pytest.raises(UnifiedDBError):  # and a deleted persona cannot be the default
        await db._execute("UPDATE __schema__.personas SET is_active = false WHERE name = 'a'")


async def test_initialize_default_is_idempotent_and_concurrency_safe(db: UnifiedDB):
    assert await db.persona_get_default() is None
    results = await asyncio.gather(*(db.persona_initialize_default() for _ in range(5)))
    assert {r.name for r in results} == {"assistant"} and all(r.is_default for r in results)
    assert await db._fetchval("SELECT count(*) FROM __schema__.personas") == 1
    await db.persona_create(spec("boss"), actor="x")
    await db.persona_set_default("boss")
    assert (await db.persona_initialize_default()).name == "boss"  # an existing default wins


async def test_initialize_default_with_a_given_or_existing_persona(db: UnifiedDB):
    await db.persona_create(spec("helper"))
    got = await db.persona_initialize_default(persona=spec("helper", role="ignored"))
    assert got.name == "helper" and got.is_default and got.role == ""  # made default, not replaced


async def test_create_and_import_can_move_the_default(db: UnifiedDB):
    await db.persona_initialize_default()
    made = await db.persona_create(spec("new-default", is_default=True))
    assert made.is_default and (await db.persona_get_default()).name == "new-default"
    assert not (await db.persona_get("assistant")).is_default
    report = await db.persona_import([spec("z", is_default=True)])
    assert report.created == ["z"] and (await db.persona_get_default()).name == "z"
    # an import that only moves the default to an existing persona reports it as updated
    report = await db.persona_import(
        [(await db.persona_get("assistant")).model_dump() | {"is_default": True}]
    )
    assert report.updated == ["assistant"] and (await db.persona_get_default()).name == "assistant"


# ---------------------------------------------------------------------------- users


async def test_preference_fallback_after_the_choice_is_deleted(db: UnifiedDB):
    assert await db.persona_get_for_user("u1") is None  # no choice, no default
    await db.persona_initialize_default()
    await db.persona_create(spec("pirate"))
    assert (await db.persona_get_for_user("u1")).name == "assistant"
    await db.persona_set_user_preference("u1", "pirate")
    assert (await db.persona_get_for_user("u1")).name == "pirate"
    assert (await db.persona_get_for_user("u2")).name == "assistant"
    await db.persona_delete("pirate")
    assert (await db.persona_get_for_user("u1")).name == "assistant"
    await db.persona_restore("pirate")
    await db.persona_set_user_preference("u1", None)  # clear the choice
    assert (await db.persona_get_for_user("u1")).name == "assistant"


# ---------------------------------------------------------------------------- audit and metrics


async def test_every_change_is_audited_with_who_and_what(db: UnifiedDB):
    await db.persona_create(spec("audited"), actor="ann")
    await db.persona_update("audited", {"role": "r"}, actor="bob")
    await db.persona_rollback("audited", 1, actor="cid")
    await db.persona_delete("audited", actor="dan")
    await db.persona_restore("audited", actor="eve")
    await db.persona_set_default("audited", actor="fay")
    log = await db.persona_audit_log("audited")
    assert [(e.action, e.actor) for e in log] == [
        ("default_changed", "fay"),
        ("restore", "eve"),
        ("delete", "dan"),
        ("rollback", "cid"),
        ("update", "bob"),
        ("create", "ann"),
    ]
    by_action = {e.action: e for e in log}
    assert by_action["update"].diff == {"role": {"old": "", "new": "r"}} and by_action["update"].version == 2
    assert by_action["rollback"].diff == {"role": {"old": "r", "new": ""}}
    assert by_action["rollback"].info == {"rolled_back_to": 1, "previous_version": 2}
    assert by_action["delete"].diff == {"is_active": {"old": True, "new": False}}
    assert by_action["create"].diff["system_prompt"] == {"old": None, "new": "You are audited."}
    assert all(e.at <= datetime.now(UTC) for e in log)
    assert len(await db.persona_audit_log(limit=2)) == 2


async def test_metrics_summary_and_since(db: UnifiedDB):
    await db.persona_create(spec("measured"))
    for v in range(1, 101):
        await db._execute(
            "INSERT INTO __schema__.persona_metrics (namespace, name, metric, value, recorded_at)"
            " VALUES ('default', 'measured', 'latency_ms', $1, now() - interval '2 hours')",
            float(v),
        )
    await db.persona_record_metric("measured", "rating", 5, tags={"model": "m1"})
    await db.persona_record_metric("measured", "rating", 3)
    summary = {m.metric: m for m in await db.persona_metrics("measured")}
    lat = summary["latency_ms"]
    assert (lat.count, lat.mean, lat.min, lat.max) == (100, 50.5, 1.0, 100.0)
    assert lat.p50 == pytest.approx(50.5) and lat.p95 == pytest.approx(95.05)
    assert summary["rating"].count == 2 and summary["rating"].mean == 4.0
    recent = await db.persona_metrics("measured", since=timedelta(hours=1))
    assert [m.metric for m in recent] == ["rating"]
    assert await db.persona_metrics("unknown") == []


# ---------------------------------------------------------------------------- import and export


async def test_import_reports_and_is_idempotent(db: UnifiedDB):
    items = [spec(f"imp-{i}", expertise=[f"e{i}"]) for i in range(50)]
    first = await db.persona_import(items, actor="loader")
    assert (len(first.created), first.updated, first.unchanged) == (50, [], [])
    again = await db.persona_import(items)
    assert (again.created, again.updated, len(again.unchanged)) == ([], [], 50)
    items[3] = items[3] | {"role": "changed"}
    third = await db.persona_import(items)
    assert third.updated == ["imp-3"] and len(third.unchanged) == 49
    p = await db.persona_get("imp-3")
    assert p.version == 2 and p.role == "changed" and p.expertise == ["e3"] and p.created_by == "loader"
    assert [h.version for h in await db.persona_history("imp-3")] == [2, 1]
    assert len(await db.persona_audit_log(limit=1000)) == 51


async def test_import_is_all_or_nothing(db: UnifiedDB):
    await db.persona_create(spec("existing"))
    before = await snapshot(db)
    bad = [spec(f"ok-{i}") for i in range(20)] + [spec("broken", system_prompt="")] + [spec("late")]
    with pytest.raises(InvalidInputError, match=r"item 20 'broken'.*system_prompt"):
        await db.persona_import(bad)
    assert await snapshot(db) == before
    with pytest.raises(ConflictError, match="existing"):
        await db.persona_import([spec("fresh"), spec("existing", role="new")], upsert=False)
    assert await snapshot(db) == before
    # a failure inside the transaction (after the first statements ran) also leaves nothing:
    # the import that deactivates the default is caught only once the rows are read
    await db.persona_set_default("existing")
    before = await snapshot(db)
    with pytest.raises(ConflictError, match="default"):
        await db.persona_import([spec("fresh"), spec("existing", is_active=False)])
    assert await snapshot(db) == before


async def test_export_then_import_elsewhere_round_trips(db: UnifiedDB, other_ns: UnifiedDB):
    await db.persona_initialize_default()
    await db.persona_create(spec("x", capabilities={"tools": ["search"]}, expertise=["a", "b"]))
    await db.persona_create(spec("hidden"))
    await db.persona_delete("hidden")
    exported = await db.persona_export()
    assert [p.name for p in exported] == ["assistant", "hidden", "x"]
    report = await other_ns.persona_import(exported)
    assert sorted(report.created) == ["assistant", "hidden", "x"]
    mirrored = await other_ns.persona_export()
    assert [p.content() for p in mirrored] == [p.content() for p in exported]
    assert [(p.is_default, p.is_active) for p in mirrored] == [(p.is_default, p.is_active) for p in exported]
    assert (await other_ns.persona_import([p.model_dump(mode="json") for p in exported])).total == 3


async def test_import_of_a_thousand_is_fast(db: UnifiedDB):
    items = [spec(f"bulk-{i:04d}", description="d" * 200, expertise=["x", "y"]) for i in range(1000)]
    start = time.perf_counter()
    report = await db.persona_import(items)
    assert len(report.created) == 1000
    assert time.perf_counter() - start < 10  # generous: ~0.2 s on an idle machine
    assert await db._fetchval("SELECT count(*) FROM __schema__.persona_versions") == 1000


# ---------------------------------------------------------------------------- visibility


async def test_a_change_is_visible_to_another_process_within_100_ms(db: UnifiedDB, db_dsn: str):
    await db.persona_create(spec("live"))
    code = textwrap.dedent(f"""
        import asyncio, sys, time
        from unified_db import UnifiedDB
        async def main():
            async with UnifiedDB({db_dsn!r}, min_size=1, max_size=1) as db:
                await db.persona_get("live")
                print("ready", flush=True)
                deadline = time.time() + 20
                while time.time() < deadline:
                    p = await db.persona_get("live")
                    if p.version == 2:
                        print(time.time(), flush=True)
                        return
                    await asyncio.sleep(0.002)
        asyncio.run(main())
    """)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"ready", (line, await proc.stderr.read())
        await db.persona_update("live", {"role": "changed"})
        committed = time.time()
        seen = float((await asyncio.wait_for(proc.stdout.readline(), 30)).strip())
    finally:
        await proc.wait()
    assert seen - committed < 0.1


# ---------------------------------------------------------------------------- bad input


async def test_bad_input_for_every_method_raises_and_writes_nothing(db: UnifiedDB):
    await db.persona_create(spec("target"))
    before = await snapshot(db)
    calls = [
        ("name", db.persona_create({"name": "Bad Name", "system_prompt": "p"})),
        ("system_prompt", db.persona_create({"name": "ok"})),
        ("expertise", db.persona_create(spec("ok", expertise="python"))),
        ("dict", db.persona_create("not a persona")),
        ("actor", db.persona_create(spec("ok"), actor="")),
        ("name", db.persona_get("UPPER")),
        ("name", db.persona_get(None)),
        ("persona_type", db.persona_list(persona_type="")),
        ("search", db.persona_list(search="")),
        ("limit", db.persona_list(limit=0)),
        ("limit", db.persona_list(limit=100_000)),
        ("cursor", db.persona_list(cursor="Not A Name")),
        ("name", db.persona_update("Bad", {"role": "r"})),
        ("changes", db.persona_update("target", {})),
        ("role", db.persona_update("target", {"role": 3})),
        ("is_active", db.persona_update("target", {"is_active": False})),
        ("unknown field", db.persona_update("target", {"rolee": "x"})),
        ("expected_version", db.persona_update("target", {"role": "r"}, expected_version=0)),
        ("name", db.persona_history("")),
        ("limit", db.persona_history("target", limit=-1)),
        ("version", db.persona_get_version("target", "1")),
        ("version", db.persona_rollback("target", 0)),
        ("actor", db.persona_rollback("target", 1, actor=5)),
        ("name", db.persona_delete("x y")),
        ("name", db.persona_restore("x/y")),
        ("name", db.persona_purge("x" * 101)),
        ("name", db.persona_set_default(1)),
        ("persona", db.persona_initialize_default(persona={"name": "x"})),
        ("is_active", db.persona_initialize_default(persona=spec("x", is_active=False))),
        ("user_id", db.persona_set_user_preference("", "target")),
        ("name", db.persona_set_user_preference("u", "BAD")),
        ("user_id", db.persona_get_for_user(None)),
        ("name", db.persona_audit_log("BAD")),
        ("limit", db.persona_audit_log(limit=0)),
        ("metric", db.persona_record_metric("target", "", 1)),
        ("value", db.persona_record_metric("target", "m", float("nan"))),
        ("tags", db.persona_record_metric("target", "m", 1, tags=[1])),
        ("since", db.persona_metrics("target", since="yesterday")),
        ("item 1", db.persona_import([spec("fine"), spec("bad", personality_traits=[])])),
        ("list", db.persona_import("a string")),
    ]
    for word, call in calls:
        with pytest.raises(InvalidInputError, match=word):
            await call
    assert await snapshot(db) == before


# ---------------------------------------------------------------------------- namespaces


async def test_namespaces_never_see_each_other(db: UnifiedDB, other_ns: UnifiedDB):
    await db.persona_import([spec("shared", role="mine", is_default=True), spec("only-mine")])
    await other_ns.persona_import([spec("shared", role="theirs", is_default=True)])
    await db.persona_set_user_preference("u", "only-mine")
    await db.persona_record_metric("shared", "m", 1)
    other_before = await other_ns.persona_export()
    other_audit = await other_ns.persona_audit_log()

    assert (await other_ns.persona_get("shared")).role == "theirs"
    assert await other_ns.persona_get("only-mine") is None
    assert [p.name for p in await other_ns.persona_list()] == ["shared"]
    assert (await other_ns.persona_get_for_user("u")).role == "theirs"
    assert await other_ns.persona_metrics("shared") == []
    with pytest.raises(NotFoundError):
        await other_ns.persona_update("only-mine", {"role": "x"})
    with pytest.raises(NotFoundError):
        await other_ns.persona_purge("only-mine")
    with pytest.raises(NotFoundError):
        await other_ns.persona_set_user_preference("u", "only-mine")

    # changes in one namespace leave the other exactly as it was
    await db.persona_update("shared", {"role": "mine-2"})
    await db.persona_create(spec("second"))
    await db.persona_set_default("second")
    await db.persona_delete("shared")
    await db.persona_purge("only-mine")
    assert await other_ns.persona_export() == other_before
    assert await other_ns.persona_audit_log() == other_audit
    assert (await other_ns.persona_get_default()).name == "shared"
    assert len(await db.persona_audit_log()) > len(other_audit)


# ---------------------------------------------------------------------------- demo


async def test_demo_section_runs_twice_on_an_empty_namespace(db_dsn: str):
    import io

    from rich.console import Console

    from unified_db.demo import DemoOutput
    from unified_db.demos.personas import personas_section

    buf = io.StringIO()
    out = DemoOutput(Console(file=buf, width=200))
    async with UnifiedDB(db_dsn, namespace="demo", min_size=1, max_size=2) as demo_db:
        await personas_section(demo_db, out)
        await personas_section(demo_db, out)
        assert (await demo_db.persona_get("code-reviewer")).version == 5
    text = buf.getvalue()
    assert "2 created, 0 unchanged" in text and "0 created, 2 unchanged" in text
    assert "demo-user -> metrics-analyst, others -> assistant" in text


# ---------------------------------------------------------------------------- seams and atomicity


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_a_failure_after_some_import_statements_ran_rolls_everything_back(db: UnifiedDB):
    await db.persona_create(spec("kept", role="before"))
    # A trigger that fails on the audit insert of one record: the personas and versions
    # statements of the import have already run when it fires.
    await db._execute(
        "CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.name = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$"
    )
    await db._execute(
        "CREATE TRIGGER poison BEFORE INSERT ON __schema__.persona_audit"
        " FOR EACH ROW EXECUTE FUNCTION public.poison()"
    )
    before = await snapshot(db)
    with pytest.raises(UnifiedDBError, match="poisoned"):
        await db.persona_import([spec("kept", role="after"), spec("fresh"), spec("poison")])
    assert await snapshot(db) == before
    assert (await db.persona_get("kept")).role == "before"


class RecordingDB(UnifiedDB):
    """Records every call of the write seam, and whether it ran inside the transaction."""

    calls: list

    async def _persona_changed(self, con, names, *, user_ids=()):
        self.calls.append((sorted(names), list(user_ids), con.raw.is_in_transaction()))


async def test_every_write_calls_the_change_hook_inside_its_transaction(db_dsn: str):
    async with RecordingDB(db_dsn, min_size=1, max_size=2) as rdb:
        rdb.calls = []
        await rdb.persona_initialize_default()
        await rdb.persona_create(spec("a"))
        await rdb.persona_update("a", {"role": "r"})
        await rdb.persona_update("a", {"role": "r"})  # no change: no write, no call
        await rdb.persona_rollback("a", 1)
        await rdb.persona_set_default("a")
        await rdb.persona_set_user_preference("u1", "assistant")
        await rdb.persona_set_default("assistant")
        await rdb.persona_delete("a")
        await rdb.persona_restore("a")
        await rdb.persona_import([spec("b"), spec("a")])  # "a" is unchanged (rolled back to it)
        await rdb.persona_purge("b")
        await rdb.persona_record_metric("a", "m", 1)  # not a persona change
        assert rdb.calls == [
            (["assistant"], [], True),
            (["a"], [], True),
            (["a"], [], True),
            (["a"], [], True),
            (["a", "assistant"], [], True),
            ([], ["u1"], True),
            (["a", "assistant"], [], True),
            (["a"], [], True),
            (["a"], [], True),
            (["b"], [], True),
            (["b"], [], True),
        ]
        # reads go through the read seams
        seen = []
        original = rdb._persona_read

        async def spy(name, **kw):
            seen.append(name)
            return await original(name, **kw)

        rdb._persona_read = spy
        await rdb.persona_get("a")
        assert seen == ["a"]

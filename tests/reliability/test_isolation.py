"""Namespace isolation, method by method: every public method of ``UnifiedDB`` is walked.

Every public method must be listed once: in ``CASES`` with one or more calls, or in
``NOT_NAMESPACED`` with the reason it holds no namespaced data. A feature that adds a
method without classifying it fails ``test_every_public_method_is_classified``.

Each case runs on a fresh database where namespace "default" (``db``) holds data of every
feature, each value carrying ``SECRET``, and namespace "other" (``other_ns``) holds
nothing. The case calls the method *as "other"* with default's keys, ids and names, then:

1. what "other" got shows nothing of default's: the outcome is what the case expects
   (by default nothing: ``None``, ``False``, ``0``, empty, or ``NotFoundError``) and its
   ``repr`` does not contain ``SECRET``;
2. default's rows are exactly as before, in every table with a ``namespace`` column
   (found in the catalog, so a new table is covered without touching this file);
3. the same call *as "default"* does see or change something (the control: it proves
   the call in 1 was aimed at real data and was not vacuously empty). Writers, which
   see nothing by design, set ``mine=None``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from unified_db import NotFoundError, UnifiedDB

SECRET = "s3cret-of-default"
EMBEDDING = [1.0, 0.0, 0.0]

NOT_NAMESPACED: dict[str, str] = {
    "open": "lifecycle of this instance",
    "close": "lifecycle of this instance",
    "health": "server, schema and pool figures; no namespaced rows",
    "migrate": "schema-wide DDL, shared by every namespace by design",
    "migrate_down": "schema-wide DDL, shared by every namespace by design",
    "migration_status": "schema-wide ledger",
    "get_stats": "this instance's in-memory counters",
    "pop_stats": "this instance's in-memory counters",
    "connect_direct": "a new connection, no data",
    "cache_set_durable": "the cache table's persistence (LOGGED or UNLOGGED): one table for every "
    "namespace, documented as such; it changes no row",
    "get_pool_stats": "this process's pool figures, held in memory",
    "get_extended_pool_stats": "this process's pool and operation counters and the server's backends "
    "of this application_name: connections, not namespaced rows",
    "get_connection_diagnostics": "the server's backends of this application_name: connections, not "
    "namespaced rows",
    "adjust_pool_size": "resizes this process's pool",
    "terminate_idle_connections": "ends idle backends of this application_name: connections, not "
    "namespaced rows (namespaces sharing an application_name share the connections' fate by design)",
}


# ---------------------------------------------------------------------------- the data


@dataclass
class World:
    """What namespace "default" wrote; the cases aim at these."""

    ids: dict[str, Any] = field(default_factory=dict)
    vectors: bool = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self.ids[name]
        except KeyError:
            raise AttributeError(name) from None


async def seed(db: UnifiedDB, *, vectors: bool) -> World:
    w = World(vectors=vectors)
    secret = {"secret": SECRET, "text": "paris"}
    # cache: a live entry with a tag, a counter, one that expires during the sleep below
    await db.cache_set("k", secret, ttl=3600, tags=("t",))
    await db.cache_set("n", 5)
    await db.cache_set("gone", SECRET, ttl=0.05)
    # sessions: a live one and one that goes idle past its timeout
    session = await db.session_create("u-shared", secret)
    w.ids.update(session_id=session.id, token=session.token)
    stale = await db.session_create("u-shared", {"secret": SECRET})
    w.ids["stale_session_id"] = stale.id
    # agents and workflow runs: a pending run and a running one whose heartbeat goes stale
    await db.agent_create("agent", agent_id="a1", config=secret)
    running = await db.workflow_create("job-running", agent_id="a1", input=secret, priority=10)
    claimed = await db.workflow_claim_next(worker="w1")
    assert claimed is not None and claimed.id == running.id
    pending = await db.workflow_create("job", agent_id="a1", input=secret)
    w.ids.update(run_id=pending.id, running_id=running.id)
    # memory snapshots: two versions of one agent
    s1 = await db.memory_snapshot_create("a1", secret, label="l1", tags=["t"], metadata=secret)
    s2 = await db.memory_snapshot_create("a1", {**secret, "step": 2}, label="l2", tags=["t"])
    w.ids.update(snap1=s1.id, snap2=s2.id)
    # personas: a default with two versions, another one, a deleted one, a preference, a metric
    await db.persona_import(
        [
            {"name": "shared", "system_prompt": SECRET, "is_default": True},
            {"name": "only-mine", "system_prompt": SECRET},
            {"name": "deleted-mine", "system_prompt": SECRET},
        ]
    )
    await db.persona_update("shared", {"role": SECRET})
    await db.persona_delete("deleted-mine")
    await db.persona_set_user_preference("u-shared", "only-mine")
    await db.persona_record_metric("shared", "m", 1.0, tags={"secret": SECRET})
    if vectors:
        await db.vector_collection_create("docs", 3, build_index=False)  # built by a case
        await db.vector_upsert(
            "docs", [{"id": "d1", "embedding": EMBEDDING, "content": SECRET + " paris", "metadata": secret}]
        )
    # "gone", the idle session and the running run's heartbeat are past due (no sleep).
    await db._execute(
        "UPDATE __schema__.cache_entries SET expires_at = now() - interval '1 minute'"
        " WHERE namespace = $1 AND key = 'gone'",
        db.namespace,
    )
    await db._execute(
        "UPDATE __schema__.sessions SET expires_at = now() - interval '1 minute'"
        " WHERE namespace = $1 AND id = $2",
        db.namespace,
        stale.id,
    )
    await db._execute(
        "UPDATE __schema__.workflow_runs SET heartbeat_at = now() - interval '1 minute'"
        " WHERE namespace = $1 AND id = $2",
        db.namespace,
        running.id,
    )
    return w


async def namespaced_tables(db: UnifiedDB) -> tuple[list[str], list[str]]:
    """(tables with a namespace column, tables without one) of the library's schema."""
    rows = await db._fetch(
        "SELECT c.relname AS name,"
        " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'namespace'"
        "         AND NOT a.attisdropped) AS namespaced"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
        db.schema,
    )
    return [r["name"] for r in rows if r["namespaced"]], [r["name"] for r in rows if not r["namespaced"]]


#: Tables that hold no namespaced rows (everything else must have a namespace column).
SHARED_TABLES = {"schema_migrations": "the migration ledger"}
#: Namespaced tables left out of the before/after comparison, with the reason.
NOT_COMPARED = {"instance_stats": "each instance's own counters, flushed in the background"}


async def dump(db: UnifiedDB, namespace: str = "default") -> dict[str, list[str]]:
    """Every row of *namespace*, table by table, as sorted JSON text."""
    tables, _ = await namespaced_tables(db)
    out: dict[str, list[str]] = {}
    async with db._acquire() as con:
        for table in tables:
            if table in NOT_COMPARED:
                continue
            # The name comes from the catalog; quote_ident on the server quotes it.
            sql = await con.fetchval(
                "SELECT format('SELECT to_jsonb(t)::text FROM %I.%I t WHERE namespace = $1',"
                " $1::text, $2::text)",
                db.schema,
                table,
            )
            out[table] = sorted(r[0] for r in await con.raw.fetch(sql, namespace))
    return out


# ---------------------------------------------------------------------------- the cases

Call = Callable[[UnifiedDB, World], Awaitable[Any]]


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        return f"raised {self.exc!r}"


def nothing(outcome: Any) -> bool:
    """Saw nothing: None, False, 0, empty, or NotFoundError."""
    if isinstance(outcome, _Raised):
        return isinstance(outcome.exc, NotFoundError)
    return outcome is None or outcome is False or outcome == 0 or outcome in ([], {}, ())


def something(outcome: Any) -> bool:
    return not isinstance(outcome, _Raised) and not nothing(outcome)


def succeeded(outcome: Any) -> bool:
    return not isinstance(outcome, _Raised)


def equals(value: Any) -> Callable[[Any], bool]:
    return lambda outcome: not isinstance(outcome, _Raised) and outcome == value


def attr(name: str, test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda outcome: not isinstance(outcome, _Raised) and test(getattr(outcome, name))


@dataclass(frozen=True)
class Case:
    call: Call
    other: Callable[[Any], bool] = nothing
    #: what the same call as "default" gives (the control); None for a plain writer
    mine: Callable[[Any], bool] | None = something
    needs_vectors: bool = False


def vec(call: Call, **kw: Any) -> Case:
    return Case(call, needs_vectors=True, **kw)


POSITIVE = lambda n: n > 0  # noqa: E731
ZERO = lambda n: n == 0  # noqa: E731

CASES: dict[str, list[Case]] = {
    # ---------------------------------------------------------------- cache
    "cache_get": [Case(lambda d, w: d.cache_get("k"))],
    "cache_exists": [Case(lambda d, w: d.cache_exists("k"))],
    "cache_get_many": [Case(lambda d, w: d.cache_get_many(["k", "n"]))],
    "cache_get_by_tags": [
        Case(lambda d, w: d.cache_get_by_tags(["t"])),
        Case(lambda d, w: d.cache_get_by_tags(["t"], match_all=True)),
    ],
    "cache_get_or_set": [
        Case(lambda d, w: d.cache_get_or_set("k", lambda: "theirs"), other=equals("theirs"))
    ],
    "cache_incr": [Case(lambda d, w: d.cache_incr("n"), other=equals(1), mine=equals(6))],
    "cache_ttl": [Case(lambda d, w: d.cache_ttl("k"))],
    "cache_touch": [Case(lambda d, w: d.cache_touch("k", 100))],
    "cache_persist": [Case(lambda d, w: d.cache_persist("k"))],
    "cache_delete": [Case(lambda d, w: d.cache_delete("k"))],
    "cache_delete_many": [Case(lambda d, w: d.cache_delete_many(["k", "n"]))],
    "cache_invalidate_tags": [Case(lambda d, w: d.cache_invalidate_tags(["t"]))],
    "cache_clear": [Case(lambda d, w: d.cache_clear())],
    "cache_cleanup_expired": [Case(lambda d, w: d.cache_cleanup_expired())],
    "cache_info": [
        Case(
            lambda d, w: d.cache_info(),
            other=attr("entries", ZERO),
            mine=attr("entries", POSITIVE),
        )
    ],
    "cache_set": [Case(lambda d, w: d.cache_set("k", "theirs", tags=("t",)), other=succeeded, mine=None)],
    "cache_set_many": [
        Case(lambda d, w: d.cache_set_many({"k": "theirs", "n": 0}, tags=("t",)), other=succeeded, mine=None)
    ],
    # ---------------------------------------------------------------- sessions
    "session_get": [Case(lambda d, w: d.session_get(w.session_id))],
    "session_get_by_token": [
        Case(lambda d, w: d.session_get_by_token(w.token)),
        Case(lambda d, w: d.session_get_by_token(w.token, touch=False)),
    ],
    "session_update": [
        Case(lambda d, w: d.session_update(w.session_id, {"ns": "other"})),
        Case(lambda d, w: d.session_update(w.session_id, {"ns": "other"}, expected_version=1)),
    ],
    "session_rotate": [Case(lambda d, w: d.session_rotate(w.token))],
    "session_extend": [Case(lambda d, w: d.session_extend(w.session_id, 100))],
    "session_touch": [Case(lambda d, w: d.session_touch(w.session_id))],
    "session_delete": [Case(lambda d, w: d.session_delete(w.session_id))],
    "session_bulk_delete": [Case(lambda d, w: d.session_bulk_delete([w.session_id, w.stale_session_id]))],
    "session_revoke_user": [Case(lambda d, w: d.session_revoke_user("u-shared"))],
    "session_list": [
        Case(lambda d, w: d.session_list(active_only=False)),
        Case(lambda d, w: d.session_list(user_id="u-shared")),
    ],
    "session_get_active_count": [
        Case(lambda d, w: d.session_get_active_count()),
        Case(lambda d, w: d.session_get_active_count("u-shared")),
    ],
    "session_cleanup_inactive": [Case(lambda d, w: d.session_cleanup_inactive())],
    "session_analytics": [
        Case(
            lambda d, w: d.session_analytics(),
            other=lambda a: a.active == a.created_last_day == a.expired_last_day == 0,
            mine=attr("created_last_day", POSITIVE),
        )
    ],
    "session_create": [
        Case(lambda d, w: d.session_create("u-shared", {"ns": "other"}), other=succeeded, mine=None)
    ],
    # ---------------------------------------------------------------- memory snapshots
    "memory_snapshot_get": [Case(lambda d, w: d.memory_snapshot_get(w.snap1))],
    "memory_snapshot_get_version": [Case(lambda d, w: d.memory_snapshot_get_version("a1", 1))],
    "memory_snapshot_latest": [Case(lambda d, w: d.memory_snapshot_latest("a1"))],
    "memory_snapshot_list": [
        Case(lambda d, w: d.memory_snapshot_list()),
        Case(lambda d, w: d.memory_snapshot_list("a1", tags=["t"], include_state=True)),
        Case(lambda d, w: d.memory_snapshot_list(cursor=w.snap2 + 1)),
    ],
    "memory_snapshot_search": [Case(lambda d, w: d.memory_snapshot_search("paris", include_state=True))],
    "memory_snapshot_stats": [
        Case(
            lambda d, w: d.memory_snapshot_stats(),
            other=attr("count", ZERO),
            mine=attr("count", POSITIVE),
        ),
        Case(
            lambda d, w: d.memory_snapshot_stats("a1"),
            other=attr("count", ZERO),
            mine=attr("count", POSITIVE),
        ),
    ],
    "memory_snapshot_restore": [Case(lambda d, w: d.memory_snapshot_restore(w.snap1))],
    "memory_snapshot_diff": [Case(lambda d, w: d.memory_snapshot_diff(w.snap1, w.snap2))],
    "memory_snapshot_delete": [Case(lambda d, w: d.memory_snapshot_delete(w.snap1))],
    "memory_snapshot_cleanup": [
        Case(lambda d, w: d.memory_snapshot_cleanup(keep_last=1)),
        Case(lambda d, w: d.memory_snapshot_cleanup(keep_last=1, agent_id="a1", dry_run=True)),
    ],
    "memory_snapshot_create": [
        # Versions are counted per namespace: "other" starts at 1 for the same agent id.
        Case(
            lambda d, w: d.memory_snapshot_create("a1", {"x": 1}), other=attr("version", equals(1)), mine=None
        )
    ],
    # ---------------------------------------------------------------- agents and workflows
    "agent_get": [Case(lambda d, w: d.agent_get("a1"))],
    "agent_list": [
        Case(lambda d, w: d.agent_list()),
        Case(lambda d, w: d.agent_list(persona_name=None, limit=10)),
    ],
    "agent_update": [Case(lambda d, w: d.agent_update("a1", name="stolen"))],
    "agent_delete": [Case(lambda d, w: d.agent_delete("a1", force=True))],
    "agent_create": [Case(lambda d, w: d.agent_create("theirs", agent_id="a1"), other=succeeded, mine=None)],
    "workflow_get": [Case(lambda d, w: d.workflow_get(w.run_id))],
    "workflow_list": [
        Case(lambda d, w: d.workflow_list()),
        Case(lambda d, w: d.workflow_list(agent_id="a1", status=["pending", "running"])),
    ],
    "workflow_claim_next": [
        Case(lambda d, w: d.workflow_claim_next()),
        Case(lambda d, w: d.workflow_claim_next("a1", worker="thief")),
    ],
    "workflow_transition": [
        Case(lambda d, w: d.workflow_transition(w.run_id, "cancelled", expected_status="pending"))
    ],
    "workflow_update": [Case(lambda d, w: d.workflow_update(w.run_id, name="stolen"))],
    "workflow_delete": [Case(lambda d, w: d.workflow_delete(w.run_id))],
    "workflow_heartbeat": [Case(lambda d, w: d.workflow_heartbeat(w.running_id, worker="w1"))],
    "workflow_list_stale": [Case(lambda d, w: d.workflow_list_stale(0.05))],
    "workflow_requeue_stale": [Case(lambda d, w: d.workflow_requeue_stale(0.05))],
    "workflow_create": [
        # default's agent does not exist in "other": nothing to attach the run to
        Case(lambda d, w: d.workflow_create("job", agent_id="a1")),
        Case(lambda d, w: d.workflow_create("job"), other=succeeded, mine=None),
    ],
    # ---------------------------------------------------------------- personas
    "persona_get": [
        Case(lambda d, w: d.persona_get("shared")),
        Case(lambda d, w: d.persona_get("deleted-mine", include_inactive=True)),
    ],
    "persona_get_default": [Case(lambda d, w: d.persona_get_default())],
    "persona_get_for_user": [Case(lambda d, w: d.persona_get_for_user("u-shared"))],
    "persona_get_version": [Case(lambda d, w: d.persona_get_version("shared", 1))],
    "persona_history": [Case(lambda d, w: d.persona_history("shared"))],
    "persona_list": [
        Case(lambda d, w: d.persona_list(include_inactive=True)),
        Case(lambda d, w: d.persona_list(search="shared")),
    ],
    "persona_export": [Case(lambda d, w: d.persona_export())],
    "persona_audit_log": [
        Case(lambda d, w: d.persona_audit_log()),
        Case(lambda d, w: d.persona_audit_log("shared")),
    ],
    "persona_metrics": [Case(lambda d, w: d.persona_metrics("shared"))],
    "persona_update": [Case(lambda d, w: d.persona_update("shared", {"role": "stolen"}))],
    "persona_rollback": [Case(lambda d, w: d.persona_rollback("shared", 1))],
    "persona_delete": [Case(lambda d, w: d.persona_delete("only-mine"))],
    "persona_restore": [Case(lambda d, w: d.persona_restore("deleted-mine"))],
    "persona_purge": [Case(lambda d, w: d.persona_purge("only-mine"), mine=succeeded)],
    "persona_set_default": [Case(lambda d, w: d.persona_set_default("only-mine"))],
    "persona_set_user_preference": [
        Case(lambda d, w: d.persona_set_user_preference("u-shared", "only-mine"), mine=succeeded),
        # clearing "other"'s preference for the same user id leaves default's
        Case(lambda d, w: d.persona_set_user_preference("u-shared", None), other=succeeded, mine=None),
    ],
    "persona_record_metric": [Case(lambda d, w: d.persona_record_metric("shared", "m", 2.0), mine=succeeded)],
    "persona_create": [
        Case(
            lambda d, w: d.persona_create({"name": "shared", "system_prompt": "theirs"}),
            other=succeeded,
            mine=None,
        )
    ],
    "persona_import": [
        Case(
            lambda d, w: d.persona_import(
                [{"name": "shared", "system_prompt": "theirs", "is_default": True}]
            ),
            other=attr("total", POSITIVE),
            mine=None,
        )
    ],
    "persona_initialize_default": [
        # default has a default persona; "other" has none, so it gets its own
        Case(lambda d, w: d.persona_initialize_default(), other=succeeded, mine=None)
    ],
    # ---------------------------------------------------------------- vectors (pgvector)
    "vector_collections": [vec(lambda d, w: d.vector_collections())],
    "vector_count": [vec(lambda d, w: d.vector_count("docs"))],
    "vector_get": [vec(lambda d, w: d.vector_get("docs", "d1"))],
    "vector_search": [vec(lambda d, w: d.vector_search("docs", EMBEDDING, exact=True))],
    "vector_hybrid_search": [vec(lambda d, w: d.vector_hybrid_search("docs", "paris", EMBEDDING))],
    "vector_delete": [vec(lambda d, w: d.vector_delete("docs", ["d1"]))],
    "vector_upsert": [
        vec(
            lambda d, w: d.vector_upsert("docs", [{"id": "d1", "embedding": [0.0, 1.0, 0.0], "content": "x"}])
        )
    ],
    "vector_collection_build_index": [
        vec(lambda d, w: d.vector_collection_build_index("docs"), mine=equals(True))
    ],
    "vector_collection_drop": [vec(lambda d, w: d.vector_collection_drop("docs"), mine=succeeded)],
    "vector_collection_create": [
        vec(lambda d, w: d.vector_collection_create("docs", 5, index="none"), other=succeeded, mine=None)
    ],
    # ---------------------------------------------------------------- operations
    # Its namespaced input is the count of expired rows per table: checked in the case below.
    "get_pool_recommendations": [Case(lambda d, w: d.get_pool_recommendations(), other=succeeded, mine=None)],
}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (inspect.isfunction(member) or inspect.iscoroutinefunction(member))
    }


def test_every_public_method_is_classified():
    methods = public_methods(UnifiedDB)
    unclassified = methods - set(NOT_NAMESPACED) - set(CASES)
    assert not unclassified, f"add an isolation check (or a reason) for: {sorted(unclassified)}"
    stale = (set(NOT_NAMESPACED) | set(CASES)) - methods
    assert not stale, f"no such public method any more: {sorted(stale)}"
    assert not set(NOT_NAMESPACED) & set(CASES)
    assert all(CASES.values()), "a method listed without a case"


PARAMS = [pytest.param(name, i, id=f"{name}-{i}") for name in sorted(CASES) for i in range(len(CASES[name]))]


@pytest.fixture(scope="module")
def pgvector_here(admin_dsn: str) -> bool:
    async def probe() -> bool:
        con = await asyncpg.connect(admin_dsn)
        try:
            return bool(
                await con.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
            )
        finally:
            await con.close()

    return asyncio.run(probe())


async def outcome_of(call: Call, instance: UnifiedDB, world: World) -> Any:
    try:
        return await call(instance, world)
    except Exception as exc:  # the case decides whether this error is the expected one
        return _Raised(exc)


def shown(outcome: Any) -> str:
    if isinstance(outcome, BaseModel):
        return outcome.model_dump_json()
    if isinstance(outcome, list) and all(isinstance(o, BaseModel) for o in outcome):
        return json.dumps([o.model_dump(mode="json") for o in outcome])
    return repr(outcome)


async def walk(name: str, case: Case, db: UnifiedDB, other: UnifiedDB, world: World) -> None:
    """The three checks of the module docstring; AssertionError names the one that failed."""
    before = await dump(db)
    theirs = await outcome_of(case.call, other, world)
    assert case.other(theirs), f"{name} as 'other' gave {shown(theirs)}"
    assert SECRET not in shown(theirs), f"{name} as 'other' showed default's data: {shown(theirs)}"
    assert await dump(db) == before, f"{name} as 'other' changed default's rows"
    if case.mine is not None:
        mine = await outcome_of(case.call, db, world)
        assert case.mine(mine), f"control: {name} as 'default' gave {shown(mine)}; the case aims at nothing"


@pytest.mark.parametrize(("name", "index"), PARAMS)
async def test_namespace_isolation(
    name: str, index: int, db: UnifiedDB, other_ns: UnifiedDB, pgvector_here: bool
):
    case = CASES[name][index]
    if case.needs_vectors and not pgvector_here:
        pytest.skip("this server has no pgvector")
    assert db.namespace != other_ns.namespace
    world = await seed(db, vectors=pgvector_here)
    await walk(name, case, db, other_ns, world)


#: Cases that cannot see a leak on their own; each names the test that covers it.
BLIND = {("get_pool_recommendations", 0): "test_pool_recommendations_count_only_their_namespace"}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "index"), PARAMS)
async def test_the_walk_catches_a_method_that_ignores_the_namespace(
    name: str, index: int, db: UnifiedDB, db_dsn: str, pgvector_here: bool
):
    # As if the method ignored its namespace: "other" is in fact a second instance in
    # namespace "default". Every case must then fail one of its checks.
    case = CASES[name][index]
    if case.needs_vectors and not pgvector_here:
        pytest.skip("this server has no pgvector")
    if (name, index) in BLIND:
        pytest.skip(f"covered by {BLIND[name, index]}")
    world = await seed(db, vectors=pgvector_here)
    async with UnifiedDB(db_dsn, namespace=db.namespace, min_size=1, max_size=2) as leaky:
        with pytest.raises(AssertionError):
            await walk(name, case, db, leaky, world)


async def test_every_namespaced_table_is_compared(db: UnifiedDB, pgvector_here: bool):
    await seed(db, vectors=pgvector_here)
    namespaced, shared = await namespaced_tables(db)
    assert set(shared) == set(SHARED_TABLES), "a table without a namespace column: say why or add one"
    assert set(NOT_COMPARED) <= set(namespaced)
    rows = await dump(db)
    unseeded = {t for t in rows if t.startswith("lg_")}
    if not pgvector_here:
        unseeded |= {"vector_collections", "vector_items"}
    empty = [t for t, r in rows.items() if not r and t not in unseeded]
    # The seed reaches every feature table (LangGraph's checkpoints have their own test).
    assert not empty, f"the seed writes nothing to {empty}: extend seed()"


async def test_pool_recommendations_count_only_their_namespace(db: UnifiedDB, other_ns: UnifiedDB):
    # The one namespaced input of get_pool_recommendations: expired rows per table.
    await seed(db, vectors=False)
    mine = {t.name: t.expired for t in await db._pool_table_figures() if t.expired is not None}
    theirs = {t.name: t.expired for t in await other_ns._pool_table_figures() if t.expired is not None}
    assert mine and any(mine.values()), mine
    assert set(theirs.values()) == {0}, theirs

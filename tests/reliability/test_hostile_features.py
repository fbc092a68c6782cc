"""Hostile input through every feature's public methods that take strings, JSON, ids or TTLs.

For each call: either a correct result (the value comes back as stored, a lookup finds
nothing it should not), or ``InvalidInputError`` with the feature's tables unchanged
(a count and an md5 of their rows, before and after). ``NotFoundError`` and
``ConflictError`` are correct results for a missing or taken name. Anything else fails:
a raw driver error, a ``TypeError``, or a bare ``UnifiedDBError``.

The quick run draws a few dozen examples per feature; the deep run (``-m slow``) draws
ten times as many.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unified_db import (
    ConflictError,
    FeatureUnavailableError,
    InvalidInputError,
    NotFoundError,
    UnifiedDB,
    UnifiedDBError,
)

from .hostile import hostile_json, hostile_text, hostile_ttl
from .test_hostile_base import json_equal

QUICK = 40
DEEP = 400


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


TABLES = {
    "cache": ["cache_entries"],
    "sessions": ["sessions"],
    "memory": ["memory_snapshots", "memory_snapshot_heads", "vector_collections", "vector_items"],
    "agents": ["agents", "workflow_runs"],
    "personas": [
        "personas",
        "persona_versions",
        "persona_audit",
        "persona_user_preferences",
        "persona_metrics",
    ],
    "vectors": ["vector_collections", "vector_items"],
}

#: Ids a caller might pass: hostile text, numbers out of range, a well-formed unknown uuid.
hostile_id = st.one_of(
    hostile_text,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.uuids(),
    st.just(None),
    st.floats(allow_nan=True),
)
#: A point in time or how far back: timedeltas of any size, naive and aware datetimes.
hostile_since = st.one_of(
    hostile_ttl,
    st.timedeltas(),
    st.just(timedelta.max),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
hostile_embedding = st.one_of(
    st.lists(finite, min_size=3, max_size=3),
    st.lists(st.floats(), min_size=3, max_size=3),  # NaN, infinities, beyond float32
    st.lists(finite, max_size=5),  # wrong length, empty
    st.just([0.0, 0.0, 0.0]),
    hostile_text,
    st.none(),
)
small_text = hostile_text.filter(lambda s: len(s) < 300)
hostile_json_object = st.one_of(st.dictionaries(small_text, hostile_json, max_size=3), hostile_json)


async def fingerprint(db: UnifiedDB, tables: list[str]) -> list[tuple[int, str | None]]:
    """Row count and md5 of every row of *tables*, in a stable order."""
    out = []
    for table in tables:
        if not await db._fetchval("SELECT to_regclass($1) IS NOT NULL", f"{db.schema}.{table}"):
            out.append((0, None))  # vector_items before pgvector is there
            continue
        row = await db._fetchrow(
            f"SELECT count(*) AS n, md5(string_agg(t::text, ',' ORDER BY t::text)) AS h"  # noqa: S608
            f" FROM __schema__.{table} t"
        )
        out.append((row["n"], row["h"]))
    return out


async def attempt(
    db: UnifiedDB,
    feature: str,
    call: Callable[[], Awaitable[Any]],
    check: Callable[[Any], Awaitable[None]] | None = None,
) -> Any:
    """Run *call*; a rejection must be InvalidInputError (or a lookup miss) and change nothing."""
    tables = TABLES[feature]
    before = await fingerprint(db, tables)
    try:
        result = await call()
    except (InvalidInputError, NotFoundError, ConflictError, FeatureUnavailableError):
        assert await fingerprint(db, tables) == before, "a rejected call changed the database"
        return None
    except UnifiedDBError as exc:
        pytest.fail(f"{type(exc).__name__} for bad input, not InvalidInputError: {exc}")
    if check is not None:
        await check(result)
    return result


HAS_ITEMS = "SELECT to_regclass('__schema__.vector_items') IS NOT NULL"


def _eq(a: Any, b: Any) -> bool:
    return json_equal(a, b)


def _obj(value: Any) -> Any:
    """A JSON-object argument given as None is stored as {} (documented defaults)."""
    return {} if value is None else value


# ---------------------------------------------------------------------------- cache


async def _cache(db: UnifiedDB, data: st.DataObject) -> None:
    key = data.draw(st.one_of(hostile_text, st.sampled_from(["k", "a'b", "x;--"])), "key")
    value = data.draw(hostile_json, "value")
    ttl = data.draw(st.one_of(hostile_ttl, st.just(60)), "ttl")
    tags = data.draw(st.lists(small_text, max_size=3), "tags")
    which = data.draw(st.sampled_from(["set", "get", "many", "incr", "touch", "tags", "get_or_set"]))

    async def read_back(_: Any) -> None:
        got = await db.cache_get(key, default=KeyError)
        assert got is not KeyError and _eq(got, value), (got, value)

    if which == "set":
        await attempt(db, "cache", lambda: db.cache_set(key, value, ttl, tags=tags), read_back)
    elif which == "get":
        await attempt(db, "cache", lambda: db.cache_get(key))
        await attempt(db, "cache", lambda: db.cache_exists(key))
        await attempt(db, "cache", lambda: db.cache_ttl(key))
        await attempt(db, "cache", lambda: db.cache_get_many([key, "k"]))
    elif which == "many":
        mapping = {"k": 1, key: value}  # key may be "k" itself: then value is the one stored
        await attempt(db, "cache", lambda: db.cache_set_many(mapping, ttl, tags=tags), read_back)
        await attempt(db, "cache", lambda: db.cache_delete_many([key]))
    elif which == "incr":
        delta = data.draw(st.one_of(st.integers(), st.floats(), st.just("1")), "delta")
        await attempt(db, "cache", lambda: db.cache_incr(key, delta, ttl=ttl))
    elif which == "touch":
        await attempt(db, "cache", lambda: db.cache_touch(key, ttl))
        await attempt(db, "cache", lambda: db.cache_persist(key))
        await attempt(db, "cache", lambda: db.cache_delete(key))
    elif which == "tags":
        await attempt(db, "cache", lambda: db.cache_get_by_tags(tags or [key]))
        await attempt(db, "cache", lambda: db.cache_invalidate_tags(tags or [key]))
        batch = data.draw(hostile_id, "batch_size")
        await attempt(db, "cache", lambda: db.cache_cleanup_expired(batch_size=batch))
    else:

        async def make() -> Any:
            return value

        await attempt(db, "cache", lambda: db.cache_get_or_set(key, make, ttl=ttl))


# ------------------------------------------------------------------------- sessions


async def _sessions(db: UnifiedDB, data: st.DataObject) -> None:
    user = data.draw(st.one_of(hostile_text, st.just("u1")), "user_id")
    payload = data.draw(hostile_json_object, "data")
    ttl = data.draw(st.one_of(hostile_ttl, st.just(None)), "ttl")
    ident = data.draw(hostile_id, "id")
    which = data.draw(st.sampled_from(["create", "lookup", "update", "misc"]))

    if which == "create":

        async def check(s: Any) -> None:
            got = await db.session_get_by_token(s.token, touch=False)
            assert got is not None and got.user_id == user and _eq(got.data, _obj(payload)), (got, payload)

        ua = data.draw(st.one_of(st.none(), small_text), "user_agent")
        ip = data.draw(st.one_of(st.none(), small_text, st.ip_addresses().map(str)), "ip")
        await attempt(
            db,
            "sessions",
            lambda: db.session_create(user, payload, idle_timeout=ttl, ip=ip, user_agent=ua),
            check,
        )
    elif which == "lookup":
        await attempt(db, "sessions", lambda: db.session_get_by_token(ident))
        await attempt(db, "sessions", lambda: db.session_get(ident))
        await attempt(db, "sessions", lambda: db.session_delete(ident))
        await attempt(db, "sessions", lambda: db.session_rotate(ident))
        await attempt(db, "sessions", lambda: db.session_touch(ident))
        await attempt(db, "sessions", lambda: db.session_bulk_delete([ident]))
        await attempt(db, "sessions", lambda: db.session_list(user_id=user, cursor=ident))
    elif which == "update":
        s = await db.session_create("u1", {"a": 1})

        async def check(updated: Any) -> None:
            got = await db.session_get(s.id)
            assert got is not None and _eq(got.data, updated.data)

        await attempt(db, "sessions", lambda: db.session_update(s.id, payload), check)
        await attempt(db, "sessions", lambda: db.session_extend(s.id, ttl))
    else:
        await attempt(db, "sessions", lambda: db.session_revoke_user(user, except_session_id=ident))
        await attempt(db, "sessions", lambda: db.session_get_active_count(user))
        await attempt(db, "sessions", lambda: db.session_cleanup_inactive(batch_size=ident))


# -------------------------------------------------------------------------- memory


async def _memory(db: UnifiedDB, data: st.DataObject) -> None:
    agent = data.draw(st.one_of(hostile_text, st.just("a1")), "agent_id")
    state = data.draw(hostile_json_object, "state")
    ident = data.draw(hostile_id, "id")
    which = data.draw(st.sampled_from(["create", "lookup", "misc"]))
    if which == "create":
        label = data.draw(st.one_of(st.none(), small_text), "label")
        tags = data.draw(st.lists(small_text, max_size=3), "tags")
        metadata = data.draw(st.one_of(st.none(), hostile_json_object), "metadata")
        embedding = data.draw(st.one_of(st.none(), hostile_embedding), "embedding")

        async def check(snap: Any) -> None:
            got = await db.memory_snapshot_get(snap.id)
            assert got is not None and got.agent_id == agent and _eq(got.state, state), (got, state)

        await attempt(
            db,
            "memory",
            lambda: db.memory_snapshot_create(
                agent, state, label=label, tags=tags, metadata=metadata, embedding=embedding
            ),
            check,
        )
    elif which == "lookup":
        await attempt(db, "memory", lambda: db.memory_snapshot_get(ident))
        await attempt(db, "memory", lambda: db.memory_snapshot_latest(agent))
        await attempt(db, "memory", lambda: db.memory_snapshot_get_version(agent, ident))
        await attempt(db, "memory", lambda: db.memory_snapshot_delete(ident))
        await attempt(db, "memory", lambda: db.memory_snapshot_restore(ident))
        await attempt(db, "memory", lambda: db.memory_snapshot_diff(ident, ident))
    else:
        query = data.draw(st.one_of(st.none(), hostile_text), "query")
        since = data.draw(hostile_since, "since")
        await attempt(
            db,
            "memory",
            lambda: db.memory_snapshot_list(
                agent, tags=[query or "t"], cursor=ident, since=since, until=since
            ),
        )
        await attempt(db, "memory", lambda: db.memory_snapshot_search(query, agent_id=agent))
        emb = data.draw(hostile_embedding, "embedding")
        await attempt(db, "memory", lambda: db.memory_snapshot_search(embedding=emb, agent_id=agent))
        await attempt(db, "memory", lambda: db.memory_snapshot_stats(agent))
        ttl = data.draw(hostile_ttl, "older_than")
        await attempt(
            db, "memory", lambda: db.memory_snapshot_cleanup(older_than=ttl, agent_id=agent, dry_run=True)
        )


# -------------------------------------------------------------------------- agents


async def _agents(db: UnifiedDB, data: st.DataObject) -> None:
    name = data.draw(st.one_of(hostile_text, st.just("n")), "name")
    config = data.draw(hostile_json_object, "config")
    ident = data.draw(hostile_id, "id")
    which = data.draw(st.sampled_from(["agent", "workflow", "lookup"]))
    if which == "agent":

        async def check(agent: Any) -> None:
            got = await db.agent_get(agent.id)
            assert got is not None and got.name == name and _eq(got.config, _obj(config))

        agent_id = data.draw(st.one_of(st.none(), hostile_text), "agent_id")
        status = data.draw(st.one_of(st.just("active"), small_text), "status")
        await attempt(
            db,
            "agents",
            lambda: db.agent_create(name, agent_id=agent_id, config=config, status=status),
            check,
        )
    elif which == "workflow":

        async def check(run: Any) -> None:
            got = await db.workflow_get(run.id)
            assert got is not None and got.name == name and _eq(got.input, config)

        priority = data.draw(st.one_of(st.integers(), st.just(0)), "priority")
        await attempt(db, "agents", lambda: db.workflow_create(name, input=config, priority=priority), check)
        run = await db.workflow_create("ok")
        err = data.draw(st.one_of(st.none(), hostile_text), "error")
        await attempt(
            db,
            "agents",
            lambda: db.workflow_transition(run.id, "running", expected_status="pending", output=config),
        )
        await attempt(
            db,
            "agents",
            lambda: db.workflow_transition(run.id, "failed", expected_status="running", error=err),
        )
    else:
        await attempt(db, "agents", lambda: db.agent_get(ident))
        await attempt(db, "agents", lambda: db.agent_update(ident, name=name))
        await attempt(db, "agents", lambda: db.agent_delete(ident))
        await attempt(db, "agents", lambda: db.agent_list(status=name, cursor=ident))
        await attempt(db, "agents", lambda: db.workflow_get(ident))
        await attempt(db, "agents", lambda: db.workflow_delete(ident))
        await attempt(db, "agents", lambda: db.workflow_heartbeat(ident, worker=name))
        await attempt(db, "agents", lambda: db.workflow_list(status=name, name=name, cursor=ident))
        ttl = data.draw(hostile_ttl, "timeout")
        await attempt(db, "agents", lambda: db.workflow_list_stale(ttl))
        await attempt(db, "agents", lambda: db.workflow_claim_next(name, worker=name))


# ------------------------------------------------------------------------- personas


async def _personas(db: UnifiedDB, data: st.DataObject) -> None:
    name = data.draw(st.one_of(hostile_text, st.just("p")), "name")
    text = data.draw(small_text, "text")
    traits = data.draw(hostile_json_object, "traits")
    which = data.draw(st.sampled_from(["create", "lookup", "misc"]))
    if which == "create":
        spec = {
            "name": name,
            "display_name": text,
            "system_prompt": text or "x",
            "description": text,
            "expertise": [text],
            "personality_traits": traits,
        }

        async def check(p: Any) -> None:
            got = await db.persona_get(p.name)
            assert got is not None and got.name == name and got.system_prompt == spec["system_prompt"]
            assert _eq(got.personality_traits, _obj(traits))

        await attempt(db, "personas", lambda: db.persona_create(spec, actor=text), check)
        await attempt(db, "personas", lambda: db.persona_update("base", {"description": text}, actor=text))
    elif which == "lookup":
        version = data.draw(hostile_id, "version")
        await attempt(db, "personas", lambda: db.persona_get(name))
        await attempt(db, "personas", lambda: db.persona_history(name))
        await attempt(db, "personas", lambda: db.persona_get_version(name, version))
        await attempt(db, "personas", lambda: db.persona_rollback(name, version))
        await attempt(db, "personas", lambda: db.persona_delete(name))
        await attempt(db, "personas", lambda: db.persona_restore(name))
        await attempt(db, "personas", lambda: db.persona_set_default(name))
        await attempt(db, "personas", lambda: db.persona_audit_log(name))
        await attempt(db, "personas", lambda: db.persona_list(search=name, persona_type=text, cursor=name))
    else:
        value = data.draw(st.one_of(st.floats(), st.integers(), st.just("1")), "value")
        await attempt(db, "personas", lambda: db.persona_set_user_preference(name, "base"))
        await attempt(db, "personas", lambda: db.persona_get_for_user(name))
        await attempt(db, "personas", lambda: db.persona_record_metric("base", text, value, tags=traits))
        since = data.draw(hostile_since, "since")
        await attempt(db, "personas", lambda: db.persona_metrics(name, since=since))
        await attempt(db, "personas", lambda: db.persona_import([{"name": name, "system_prompt": text}]))


# -------------------------------------------------------------------------- vectors


async def _vectors(db: UnifiedDB, data: st.DataObject) -> None:
    coll = data.draw(st.one_of(st.just("hv"), hostile_text), "collection")
    ident = data.draw(st.one_of(hostile_text, st.just("i1")), "id")
    emb = data.draw(hostile_embedding, "embedding")
    which = data.draw(st.sampled_from(["upsert", "search", "lookup", "collection"]))
    if which == "upsert":
        content = data.draw(st.one_of(st.none(), hostile_text), "content")
        metadata = data.draw(st.one_of(st.none(), hostile_json_object), "metadata")
        item = {"id": ident, "embedding": emb, "content": content, "metadata": metadata}

        async def check(_: Any) -> None:
            got = await db.vector_get(coll, ident)
            assert got is not None and _eq(got.metadata, metadata or {}), (got, metadata)
            assert (got.content or None) == (content or None)

        await attempt(db, "vectors", lambda: db.vector_upsert(coll, [item]), check)
    elif which == "search":
        flt = data.draw(st.one_of(st.none(), hostile_json_object), "filter")
        text = data.draw(hostile_text, "text")
        k = data.draw(st.one_of(st.just(5), st.integers()), "k")
        await attempt(db, "vectors", lambda: db.vector_search(coll, emb, k=k, filter=flt))
        await attempt(db, "vectors", lambda: db.vector_hybrid_search(coll, text, emb, k=k, filter=flt))
    elif which == "lookup":
        await attempt(db, "vectors", lambda: db.vector_get(coll, ident))
        await attempt(db, "vectors", lambda: db.vector_delete(coll, [ident]))
        await attempt(db, "vectors", lambda: db.vector_count(coll))
    else:
        dims = data.draw(st.one_of(st.integers(), st.just(3)), "dimensions")
        distance = data.draw(st.one_of(st.just("cosine"), small_text), "distance")
        await attempt(db, "vectors", lambda: db.vector_collection_create(coll, dims, distance=distance))
        await attempt(db, "vectors", lambda: db.vector_collection_build_index(coll))
        if coll != "hv":
            await attempt(db, "vectors", lambda: db.vector_collection_drop(coll))


FEATURES: dict[str, Callable[[UnifiedDB, st.DataObject], Awaitable[None]]] = {
    "cache": _cache,
    "sessions": _sessions,
    "memory": _memory,
    "agents": _agents,
    "personas": _personas,
    "vectors": _vectors,
}


async def _seed(db: UnifiedDB) -> None:
    await db.persona_create({"name": "base", "display_name": "Base", "system_prompt": "hi"})
    try:
        await db.vector_collection_create("hv", 3)
    except FeatureUnavailableError:
        pass  # no pgvector: the vectors case skips


@pytest.fixture
async def hdb(db: UnifiedDB) -> UnifiedDB:
    await _seed(db)
    return db


def _make(feature: str, n: int, slow: bool):
    @_settings(n)
    @given(data=st.data())
    async def test(hdb: UnifiedDB, data: st.DataObject) -> None:
        if feature == "vectors" and not await hdb._fetchval(HAS_ITEMS):
            pytest.skip("the server has no pgvector")
        await FEATURES[feature](hdb, data)

    test.__name__ = f"test_hostile_{feature}{'_deep' if slow else ''}"
    return pytest.mark.slow(test) if slow else test


for _feature in FEATURES:
    for _n, _slow in ((QUICK, False), (DEEP, True)):
        _t = _make(_feature, _n, _slow)
        globals()[_t.__name__] = _t


def test_every_feature_method_taking_input_is_exercised():
    """A new public method of these features must be added above (or here, with a reason)."""
    import inspect

    src = inspect.getsource(inspect.getmodule(test_every_feature_method_taking_input_is_exercised))
    prefixes = ("cache_", "session_", "memory_snapshot_", "agent_", "workflow_", "persona_", "vector_")
    not_taking_input = {
        "cache_clear",
        "cache_info",
        "cache_set_durable",
        "session_analytics",
        "persona_get_default",
        "persona_export",
        "persona_initialize_default",
        "persona_purge",  # same checks as persona_delete; purging 'base' would break the seed
        "memory_snapshot_search",  # exercised with query text; embeddings are tests/test_vectors
        "agent_update",
        "workflow_update",
        "workflow_requeue_stale",
        "vector_collections",
    }
    public = {n for n in dir(UnifiedDB) if n.startswith(prefixes) and callable(getattr(UnifiedDB, n))}
    missing = {n for n in public - not_taking_input if f"db.{n}(" not in src}
    assert not missing, f"public methods with no hostile-input case: {sorted(missing)}"

"""Pool diagnostics logic without a database: checks, summaries, recommendations, merging."""

from __future__ import annotations

import math

import pytest

from unified_db import InvalidInputError, Settings
from unified_db.extensions import _pool_logic as logic
from unified_db.extensions._pool_logic import (
    BackendSummary,
    PoolStats,
    ServerFigures,
    TableFigures,
    check_pool_sizes,
    check_seconds,
    feature_of,
    pool_stats,
    recommend,
    summarize_backends,
)
from unified_db.monitoring.collect import merge, ratio
from unified_db.monitoring.dashboard import human_bytes
from unified_db.monitoring.maintenance import check_batch_size, cleanup_steps
from unified_db.stats import LATENCY_BUCKETS, Stats


def pool(**kw) -> PoolStats:
    base = dict(size=4, min_size=1, max_size=4, idle=2, in_use=2, waiting=0, acquire_p99_ms=1.0)
    base.update(kw)
    return PoolStats(**base)


QUIET = (BackendSummary(), ServerFigures(max_connections=100, connections=10))


# ---------------------------------------------------------------- argument checks


def test_check_pool_sizes_keeps_the_missing_bound():
    assert check_pool_sizes(None, 8, (1, 4)) == (1, 8)
    assert check_pool_sizes(3, None, (1, 4)) == (3, 4)
    assert check_pool_sizes(0, 1, (1, 4)) == (0, 1)


def test_check_pool_sizes_pulls_min_down_with_a_lower_max():
    assert check_pool_sizes(None, 2, (4, 10)) == (2, 2)


@pytest.mark.parametrize(
    "mn, mx, fragment",
    [
        (None, None, "needs min_size, max_size or both"),
        (-1, None, "min_size"),
        (None, 0, "max_size"),
        (None, 1001, "max_size"),
        (True, None, "min_size"),
        ("2", None, "min_size"),
        (2.5, None, "min_size"),
        (5, 2, "must not exceed"),
        (5, None, "must not exceed"),  # current max is 4
    ],
)
def test_check_pool_sizes_rejects(mn, mx, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        check_pool_sizes(mn, mx, (1, 4))


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf, "5", None, True])
def test_check_seconds_rejects(bad):
    with pytest.raises(InvalidInputError, match="idle_for"):
        check_seconds("idle_for", bad)


def test_check_seconds_accepts_ints_and_floats():
    assert check_seconds("x", 0) == 0.0 and check_seconds("x", 2.5) == 2.5


@pytest.mark.parametrize("bad", [0, -1, 100_001, 1.5, "10", True])
def test_check_batch_size_rejects(bad):
    with pytest.raises(InvalidInputError, match="batch_size"):
        check_batch_size(bad)


# ---------------------------------------------------------------- figures


def test_pool_stats_maps_the_stats_counters():
    p = pool_stats(
        {"size": 3, "min_size": 1, "max_size": 5, "idle": 1, "in_use": 2, "waiting": 4},
        {"requests_num": 10, "acquire_timeouts": 2, "connections_lost": 1, "acquire_p99_ms": 3.5},
    )
    assert (p.requests, p.acquire_timeouts, p.connections_lost, p.acquire_p99_ms) == (10, 2, 1, 3.5)
    assert p.waiting == 4 and p.in_use == 2


def test_summarize_backends_counts_states_waits_and_oldest_transactions():
    rows = [
        {"state": "active", "wait_event": "Lock:relation", "transaction_age_s": 2.0, "state_age_s": 1.0},
        {"state": "idle", "wait_event": "Client:ClientRead", "transaction_age_s": None, "state_age_s": 9.0},
        {"state": "idle in transaction", "wait_event": None, "transaction_age_s": 50.0, "state_age_s": 40.0},
        {"state": "idle in transaction (aborted)", "transaction_age_s": 7.0, "state_age_s": 5.0},
        {"state": None},
    ]
    s = summarize_backends(rows)
    assert s.total == 5 and s.idle_in_transaction == 2
    assert s.states["unknown"] == 1 and s.states["idle"] == 1
    assert s.wait_events == {"Client:ClientRead": 1, "Lock:relation": 1}
    assert s.oldest_transaction_s == 50.0 and s.oldest_idle_in_transaction_s == 40.0


def test_feature_of_groups_operations_by_prefix():
    assert feature_of("cache_get") == "cache"
    assert feature_of("session_get_by_token") == "sessions"
    assert feature_of("memory_snapshot_restore") == "memory"
    assert feature_of("persona_rollback") == "personas"
    assert feature_of("get_pool_recommendations") == "pool"
    assert feature_of("terminate_idle_connections") == "pool"
    assert feature_of("health") == "other"
    # every public operation the features register lands in its own feature
    assert feature_of("workflow_claim_next") == "agents"
    assert feature_of("langgraph_aput") == "agents"
    assert feature_of("vector_search") == "vectors"


def test_ratio_and_bytes():
    assert ratio(0, 0) is None and ratio(3, 1) == 0.75
    assert human_bytes(None) == "-" and human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"


# ---------------------------------------------------------------- recommendations


def test_quiet_figures_give_no_recommendation():
    assert recommend(pool(), *QUIET) == []


def test_waiters_with_slow_acquires_suggest_a_larger_pool():
    recs = recommend(pool(waiting=6, acquire_p99_ms=120.0, max_size=4), *QUIET)
    assert len(recs) == 1 and recs[0].severity == "warning"
    assert "6 task(s) wait" in recs[0].finding and "from 4 to 8" in recs[0].suggestion


def test_acquire_timeouts_are_critical_and_growth_is_capped_by_the_server():
    recs = recommend(
        pool(waiting=0, acquire_timeouts=3, max_size=20), BackendSummary(), ServerFigures(max_connections=40)
    )
    assert recs[0].severity == "critical"
    assert "cannot grow further" in recs[0].suggestion  # 40 // 4 = 10 < 20


def test_waiters_with_fast_acquires_are_fine():
    assert recommend(pool(waiting=3, acquire_p99_ms=2.0), *QUIET) == []


def test_a_mostly_idle_pool_suggests_a_lower_min_size():
    recs = recommend(pool(size=8, min_size=8, max_size=10, idle=7, in_use=1), *QUIET)
    assert [r.severity for r in recs] == ["info"]
    assert "7 of 8" in recs[0].finding and "from 8 to 4" in recs[0].suggestion


def test_small_min_size_is_never_called_idle():
    assert recommend(pool(size=2, min_size=2, idle=2, in_use=0), *QUIET) == []


def test_a_server_near_max_connections_is_flagged():
    recs = recommend(pool(), BackendSummary(), ServerFigures(max_connections=100, connections=85))
    assert recs[0].severity == "warning" and "85 of max_connections=100" in recs[0].finding
    recs = recommend(pool(), BackendSummary(), ServerFigures(max_connections=100, connections=100))
    assert recs[0].severity == "critical"


def test_a_pool_larger_than_half_the_server_is_flagged():
    recs = recommend(pool(max_size=60), BackendSummary(), ServerFigures(max_connections=100, connections=5))
    assert len(recs) == 1 and "lower max_size to 25" in recs[0].suggestion


def test_idle_in_transaction_is_flagged_after_the_threshold():
    young = BackendSummary(idle_in_transaction=1, oldest_idle_in_transaction_s=logic.IDLE_IN_TX_SECONDS - 1)
    old = BackendSummary(idle_in_transaction=2, oldest_idle_in_transaction_s=logic.IDLE_IN_TX_SECONDS + 5)
    assert recommend(pool(), young, QUIET[1]) == []
    recs = recommend(pool(), old, QUIET[1])
    assert "2 backend(s) idle in transaction" in recs[0].finding
    assert "idle_in_transaction_session_timeout" in recs[0].suggestion


def test_dead_rows_in_cache_or_session_tables_suggest_vacuum():
    tables = [
        TableFigures(name="cache_entries", live_rows=1000, dead_rows=5000),
        TableFigures(name="sessions", live_rows=100_000, dead_rows=5000),  # 5%: fine
        TableFigures(name="personas", live_rows=10, dead_rows=9000),  # not a churn table here
    ]
    recs = recommend(pool(), *QUIET, tables)
    assert len(recs) == 1 and "cache_entries has 5000 dead rows (83%" in recs[0].finding
    assert "maintain --vacuum" in recs[0].suggestion


def test_an_expired_backlog_suggests_more_frequent_cleanup():
    tables = [
        TableFigures(name="sessions", live_rows=10_000, expired=5000),
        TableFigures(name="cache_entries", live_rows=1_000_000, expired=5000),  # 0.5%: fine
        TableFigures(name="memory_snapshots", live_rows=10, expired=None),
    ]
    recs = recommend(pool(), *QUIET, tables)
    assert len(recs) == 1 and "sessions holds 5000 expired rows" in recs[0].finding
    assert "unified-db cleanup" in recs[0].suggestion


def test_recommendations_are_ordered_by_severity():
    recs = recommend(
        pool(size=8, min_size=8, max_size=60, idle=8, in_use=0, acquire_timeouts=1),
        BackendSummary(),
        ServerFigures(max_connections=100, connections=10),
    )
    assert [r.severity for r in recs] == ["critical", "warning", "info"]


# ---------------------------------------------------------------- settings and stats


def test_default_pool_size_is_capped_by_the_server():
    s = Settings.load(environ={})
    assert s.pool_sizes(cpu_count=8) == (1, 18)
    assert s.pool_sizes(cpu_count=8, server_max_connections=97) == (1, 18)
    assert s.pool_sizes(cpu_count=8, server_max_connections=40) == (1, 10)
    assert s.pool_sizes(cpu_count=8, server_max_connections=2) == (1, 1)


def test_explicit_pool_sizes_ignore_the_server_cap():
    s = Settings.load(environ={}, max_size=30)
    assert s.pool_sizes(cpu_count=8, server_max_connections=40) == (1, 30)


def test_serverless_profile_is_tiny():
    s = Settings.load(environ={"UNIFIED_DB_PROFILE": "serverless"})
    assert s.pool_sizes(cpu_count=64) == (0, 2) and s.inactive_lifetime == 10.0


def test_histograms_count_every_call_cumulatively():
    st = Stats()
    for seconds in (0.0001, 0.003, 0.003, 20.0):
        st.record("cache_get", seconds)
    h = st.histograms()["cache_get"]
    assert h["count"] == 4 and len(h["buckets"]) == len(LATENCY_BUCKETS) + 1
    assert h["buckets"][0] == 1 and h["buckets"][LATENCY_BUCKETS.index(0.005)] == 3
    assert h["buckets"][-2] == 3 and h["buckets"][-1] == 4  # 20 s lands in +Inf only
    st.pop_stats()
    assert st.histograms() == {}


def test_merge_adds_instances_up():
    def payload(count, rate, p50, p99, buckets, size):
        return {
            "stats": {
                "requests_num": count,
                "cache_hits": 3,
                "acquire_p50_ms": 1.0,
                "acquire_p99_ms": p99,
                "operations": {"cache_get": {"count": count, "errors": 1, "p50_ms": p50, "p99_ms": p99}},
            },
            "rates": {"cache_get": rate},
            "histograms": {"cache_get": {"buckets": buckets, "sum": 0.5, "count": count}},
            "pool": {"size": size, "idle": 1, "in_use": size - 1, "max_size": 5, "min_size": 1, "waiting": 0},
        }

    n = len(LATENCY_BUCKETS) + 1
    m = merge([payload(10, 5.0, 1.0, 4.0, [1] * n, 2), payload(30, 15.0, 3.0, 9.0, [2] * n, 3)])
    assert m["counters"] == {"requests_num": 40, "cache_hits": 6}
    (row,) = m["operations"]
    assert (row.count, row.errors, row.ops_per_s, row.p99_ms) == (40, 2, 20.0, 9.0)
    assert row.p50_ms == pytest.approx((10 * 1.0 + 30 * 3.0) / 40)
    assert m["features"] == {"cache": 20.0}
    assert m["histograms"]["cache_get"]["buckets"] == [3] * n
    assert m["histograms"]["cache_get"]["count"] == 40
    assert m["pool"]["size"] == 5 and m["pool"]["in_use"] == 3
    assert m["acquire_p99_ms"] == 9.0


def test_merge_skips_histograms_of_another_bucket_layout():
    m = merge([{"histograms": {"x": {"buckets": [1, 2], "sum": 1.0, "count": 2}}}])
    assert m["histograms"] == {}


def test_cleanup_steps_are_collected_from_the_mro_once():
    class A:
        cleanup_steps = ("cache_expired",)

    class B:
        cleanup_steps = ("sessions_expired", "cache_expired")

    class C(A, B):
        pass

    assert cleanup_steps(C()) == ["cache_expired", "sessions_expired"]
    assert cleanup_steps(C) == ["cache_expired", "sessions_expired"]
    assert cleanup_steps(object()) == []

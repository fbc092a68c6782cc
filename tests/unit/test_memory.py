"""Pure logic of memory snapshots: validation, encoding, retention rules and JSON diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unified_db.errors import InvalidInputError
from unified_db.extensions.memory import (
    MAX_TAGS,
    check_id,
    check_limit,
    check_seconds,
    check_tags,
    check_text,
    check_time,
    decode_state,
    diff_json,
    encode_metadata,
    encode_state,
    retention_rule,
)


@pytest.mark.parametrize("bad", ["", "   ", None, 5, b"x", "a\x00b", "a\x07b", "x" * 257])
def test_check_text_refuses_and_names_the_argument(bad):
    with pytest.raises(InvalidInputError, match="agent_id"):
        check_text("agent_id", bad, 256)


def test_check_text_accepts_unicode_and_optional_none():
    assert check_text("agent_id", "agent-ü/1", 256) == "agent-ü/1"
    assert check_text("label", None, 10, allow_none=True) is None


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, "1", None, 2**63])
def test_check_id_refuses_non_positive_or_non_int(bad):
    with pytest.raises(InvalidInputError, match="cursor"):
        check_id("cursor", bad)


def test_check_limit_bounds():
    assert check_limit("limit", 1, 10) == 1 and check_limit("limit", 10, 10) == 10
    for bad in (0, 11, True, 2.0):
        with pytest.raises(InvalidInputError, match="limit"):
            check_limit("limit", bad, 10)


def test_check_tags_sorts_dedupes_and_refuses_a_bare_string():
    assert check_tags(["b", "a", "b"]) == ["a", "b"]
    assert check_tags(()) == []
    with pytest.raises(InvalidInputError, match="not a single string"):
        check_tags("abc")
    with pytest.raises(InvalidInputError, match="tags"):
        check_tags(["ok", ""])
    with pytest.raises(InvalidInputError, match=f"at most {MAX_TAGS}"):
        check_tags([f"t{i}" for i in range(MAX_TAGS + 1)])
    with pytest.raises(InvalidInputError):
        check_tags(5)


def test_check_time_needs_timezone():
    now = datetime.now(UTC)
    assert check_time("since", now) is now and check_time("since", None) is None
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        check_time("since", datetime(2024, 1, 1))
    with pytest.raises(InvalidInputError, match="since"):
        check_time("since", "2024-01-01")


def test_check_seconds():
    assert check_seconds("older_than", timedelta(minutes=2)) == 120.0
    assert check_seconds("older_than", 0) == 0.0 and check_seconds("older_than", None) is None
    for bad in (-1, float("nan"), float("inf"), True, "10", timedelta(seconds=-1)):
        with pytest.raises(InvalidInputError, match="older_than"):
            check_seconds("older_than", bad)


def test_encode_state_refuses_non_objects_non_json_and_oversize():
    assert encode_state({"a": 1}, 100) == b'{"a":1}'
    for bad in ([1, 2], "x", None, 3):
        with pytest.raises(InvalidInputError, match="JSON object"):
            encode_state(bad, 100)
    with pytest.raises(InvalidInputError, match="state is not JSON"):
        encode_state({"a": {1, 2}}, 100)
    with pytest.raises(InvalidInputError, match="memory_max_state_bytes"):
        encode_state({"a": "x" * 100}, 100)


def test_encode_metadata():
    assert encode_metadata(None) == b"{}"
    assert encode_metadata({"k": [1]}) == b'{"k":[1]}'
    with pytest.raises(InvalidInputError, match="metadata"):
        encode_metadata([1])
    with pytest.raises(InvalidInputError, match="metadata"):
        encode_metadata({"x": object()})


def test_decode_state():
    assert decode_state(b'{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidInputError, match="valid JSON"):
        decode_state(b"{nope")
    with pytest.raises(InvalidInputError, match="JSON object"):
        decode_state(b"[1]")


def test_retention_rule():
    assert retention_rule(3, None) == (3, None)
    assert retention_rule(None, timedelta(days=1)) == (1, 86400.0)  # the latest is always kept
    assert retention_rule(2, 60) == (2, 60.0)
    with pytest.raises(InvalidInputError, match="keep_last, older_than"):
        retention_rule(None, None)
    for bad in (0, -2, True, 1.5, "3"):
        with pytest.raises(InvalidInputError, match="keep_last"):
            retention_rule(bad, None)
    with pytest.raises(InvalidInputError, match="older_than"):
        retention_rule(None, -5)


def test_diff_objects_arrays_and_type_changes():
    a = {"keep": 1, "gone": True, "n": {"x": 1, "y": [1, 2, 3]}, "t": [1], "f": 1}
    b = {"keep": 1, "new": None, "n": {"x": 2, "y": [1, 5]}, "t": {"0": 1}, "f": 1.0}
    added, removed, changed = diff_json(a, b)
    assert added == ["/new"]
    assert removed == ["/gone", "/n/y/2"]
    assert changed == ["/n/x", "/n/y/1", "/t"]  # 1 == 1.0 in JSON: not a change


def test_diff_distinguishes_true_from_one_and_escapes_pointers():
    added, removed, changed = diff_json({"a/b": True, "c~d": 0}, {"a/b": 1, "c~d": False})
    assert changed == ["/a~1b", "/c~0d"] and not added and not removed
    assert diff_json({}, {}) == ([], [], [])
    assert diff_json({"a": []}, {"a": [{"b": 1}]}) == (["/a/0"], [], [])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values, json_values)
def test_diff_is_empty_exactly_when_equal_and_antisymmetric(a, b):
    added, removed, changed = diff_json(a, b)
    back_added, back_removed, back_changed = diff_json(b, a)
    assert (added, removed, changed) == (back_removed, back_added, back_changed)
    same_json = orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    if same_json:
        assert (added, removed, changed) == ([], [], [])
    if not (added or removed or changed):
        assert a == b


def test_memory_settings_defaults_env_and_bounds():
    from unified_db.config import Settings

    s = Settings.load(environ={})
    assert s.memory_max_state_bytes == 50 * 1024 * 1024
    assert s.memory_retention_keep_last is None and s.memory_retention_days is None
    s = Settings.load(
        environ={"UNIFIED_DB_MEMORY_RETENTION_KEEP_LAST": "3", "UNIFIED_DB_MEMORY_RETENTION_DAYS": "0.5"}
    )
    assert (s.memory_retention_keep_last, s.memory_retention_days) == (3, 0.5)
    for bad in (
        dict(memory_max_state_bytes=0),
        dict(memory_max_state_bytes=2**30),
        dict(memory_retention_keep_last=0),
        dict(memory_retention_days=0),
    ):
        with pytest.raises(InvalidInputError, match=next(iter(bad))):
            Settings.load(environ={}, **bad)


def test_search_candidates_oversample_only_when_filtered_afterwards():
    from unified_db.extensions.memory import search_candidates

    assert search_candidates(20, False) == 20
    assert search_candidates(5, True) == 40
    assert search_candidates(200, True) == 800


def test_fuse_rankings_favours_ids_in_both_rankings():
    from unified_db.extensions.memory import fuse_rankings

    fused = fuse_rankings([3, 1, 2], [2, 9], 3)
    assert [i for i, _ in fused] == [2, 3, 1]  # 2 is in both; 1 ties with 9 and was seen first
    assert fused[0][1] == 1 / 63 + 1 / 61
    assert fuse_rankings([], [], 5) == []

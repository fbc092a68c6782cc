"""Pure logic of agents and workflow runs: validation and the transition table."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from unified_db.errors import InvalidInputError
from unified_db.extensions.agents import (
    FINISHED_STATUSES,
    RUN_STATUSES,
    TRANSITIONS,
    UNSET,
    check_agent_id,
    check_json,
    check_limit,
    check_run_id,
    check_seconds,
    check_statuses,
    check_transition,
)

ALLOWED = {
    ("pending", "running"),
    ("pending", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "pending"),
    ("failed", "pending"),
}


@pytest.mark.parametrize("src", RUN_STATUSES)
@pytest.mark.parametrize("dst", RUN_STATUSES)
def test_transition_table_allows_exactly_the_documented_moves(src: str, dst: str):
    if (src, dst) in ALLOWED:
        check_transition(src, dst)
    else:
        with pytest.raises(InvalidInputError, match=f"from {src} to {dst}"):
            check_transition(src, dst)


def test_final_states_have_no_way_out_and_say_so():
    for status in ("succeeded", "cancelled"):
        assert TRANSITIONS[status] == frozenset()
    with pytest.raises(InvalidInputError, match="it is final"):
        check_transition("succeeded", "pending")
    assert FINISHED_STATUSES == {"succeeded", "failed", "cancelled"}


def test_unknown_statuses_are_named_in_the_error():
    with pytest.raises(InvalidInputError, match="to_status must be one of"):
        check_transition("pending", "done")
    with pytest.raises(InvalidInputError, match="expected_status must be one of"):
        check_transition("queued", "running")


def test_run_ids_accept_uuid_and_its_string_only():
    u = uuid.uuid4()
    assert check_run_id(u) is u
    assert check_run_id(str(u)) == u
    for bad in ("nope", 12, None, b"x" * 16):
        with pytest.raises(InvalidInputError, match="run_id must be a UUID"):
            check_run_id(bad)


@pytest.mark.parametrize("bad", ["", "   ", "a\x00b", "x" * 201, 5, None])
def test_agent_ids_must_be_short_printable_text(bad):
    with pytest.raises(InvalidInputError, match="agent_id"):
        check_agent_id(bad)


def test_durations_accept_numbers_and_timedeltas():
    assert check_seconds(1.5, "timeout") == 1.5
    assert check_seconds(timedelta(minutes=2), "timeout") == 120.0
    for bad in (0, -1, float("nan"), float("inf"), True, "5", timedelta(0)):
        with pytest.raises(InvalidInputError, match="timeout must be a positive"):
            check_seconds(bad, "timeout")


def test_limits_are_bounded():
    assert check_limit(1) == 1
    for bad in (0, 1001, True, 2.0):
        with pytest.raises(InvalidInputError, match="limit must be an integer from 1 to 1000"):
            check_limit(bad)


def test_statuses_accept_one_or_several():
    assert check_statuses(None) is None
    assert check_statuses("running") == ["running"]
    assert check_statuses(("failed", "cancelled")) == ["failed", "cancelled"]
    with pytest.raises(InvalidInputError):
        check_statuses(["running", "bogus"])
    with pytest.raises(InvalidInputError, match="at least one"):
        check_statuses([])


def test_json_values_are_checked_before_io():
    assert check_json({"a": [1, 2]}, "config", object_only=True) == {"a": [1, 2]}
    with pytest.raises(InvalidInputError, match="config must be a JSON object"):
        check_json([1], "config", object_only=True)
    with pytest.raises(InvalidInputError, match="input is not JSON-encodable"):
        check_json({"a": object()}, "input")
    with pytest.raises(InvalidInputError, match="NUL"):
        check_json({"a": "x\x00y"}, "input")


def test_unset_is_a_falsy_singleton_distinct_from_none():
    assert UNSET is type(UNSET)()
    assert not UNSET and UNSET is not None and repr(UNSET) == "UNSET"

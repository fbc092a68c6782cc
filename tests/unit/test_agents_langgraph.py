"""Pure logic of the LangGraph checkpointer: versions, inline values, config parsing."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.base")

from unified_db.errors import InvalidInputError  # noqa: E402
from unified_db.integrations.langgraph import next_version, split_channel_values, thread_config  # noqa: E402


def test_versions_increase_and_sort_as_text():
    v1 = next_version(None)
    v2 = next_version(v1)
    v10 = next_version("9.5")
    assert v1.startswith("0" * 31 + "1.") and v2.split(".")[0].endswith("2")
    assert v1 < v2 < v10 and next_version(3).split(".")[0].endswith("4")
    assert next_version(v1) != next_version(v1)  # forks do not collide


def test_only_primitives_stay_inline():
    inline, blobs = split_channel_values(
        {"s": "x", "n": 1, "f": 1.5, "b": True, "z": None, "l": [1], "d": {}}
    )
    assert set(inline) == {"s", "n", "f", "b", "z"} and set(blobs) == {"l", "d"}


def test_thread_config_reads_thread_namespace_and_checkpoint():
    assert thread_config({"configurable": {"thread_id": 7}}) == ("7", "", None)
    cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": "child:1", "checkpoint_id": "c"}}
    assert thread_config(cfg) == ("t", "child:1", "c")
    for bad in (None, {}, {"configurable": {}}, {"configurable": {"thread_id": ""}}):
        with pytest.raises(InvalidInputError, match="thread_id"):
            thread_config(bad)

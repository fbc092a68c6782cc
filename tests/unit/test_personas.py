"""Pure persona logic: validation, diffs and import plans (no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from unified_db import ConflictError, InvalidInputError
from unified_db.extensions.persona_models import (
    CONTENT_FIELDS,
    DEFAULT_PERSONA,
    Persona,
    check_metric,
    check_name,
    check_since,
    diff_content,
    parse_changes,
    parse_import,
    parse_persona,
    plan_import,
    search_pattern,
)

GOOD = {"name": "code-reviewer", "system_prompt": "Review code.", "expertise": ["python"]}


def test_parse_persona_fills_defaults_and_keeps_fields():
    d = parse_persona(GOOD)
    assert d.name == "code-reviewer"
    assert d.content["display_name"] == "code-reviewer"  # defaults to the name
    assert d.content["persona_type"] == "standard"
    assert d.content["expertise"] == ["python"]
    assert set(d.content) == set(CONTENT_FIELDS)
    assert d.is_active and not d.is_default


def test_default_persona_is_valid():
    assert parse_persona(DEFAULT_PERSONA).name == "assistant"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Code Reviewer"),
        ("name", ""),
        ("name", "x" * 101),
        ("name", "ü-umlaut"),
        ("name", 7),
        ("system_prompt", ""),
        ("system_prompt", "   "),
        ("system_prompt", None),
        ("system_prompt", 3),
        ("system_prompt", "a\x00b"),
        ("display_name", ""),
        ("display_name", "x" * 201),
        ("role", ["a"]),
        ("description", 1.5),
        ("context", b"bytes"),
        ("expertise", "python"),
        ("expertise", ["ok", ""]),
        ("expertise", ["x"] * 101),
        ("expertise", [1]),
        ("personality_traits", ["not", "an", "object"]),
        ("personality_traits", {"n": math.nan + 0j}),
        ("capabilities", "yes"),
        ("capabilities", {1: "int key"}),
        ("response_format", {"a": 1}),
        ("persona_type", ""),
        ("persona_type", "t" * 101),
        ("is_default", "yes"),
        ("is_active", 1),
        ("sytem_prompt", "typo"),
    ],
)
def test_every_bad_field_is_named(field, value):
    data = dict(GOOD) | {field: value}
    with pytest.raises(InvalidInputError, match=field):
        parse_persona(data)


def test_missing_system_prompt_is_named():
    with pytest.raises(InvalidInputError, match="system_prompt"):
        parse_persona({"name": "x"})


def test_not_a_mapping_is_rejected():
    with pytest.raises(InvalidInputError, match="dict or a Persona"):
        parse_persona(["name", "x"])


def test_inactive_default_is_rejected():
    with pytest.raises(InvalidInputError, match="is_default"):
        parse_persona(GOOD | {"is_default": True, "is_active": False})


def test_read_only_fields_are_ignored_so_exports_reimport():
    exported = Persona(name="a", display_name="A", system_prompt="p", version=9, created_by="bob")
    d = parse_persona(exported)
    assert d.name == "a" and d.content["display_name"] == "A"


def test_parse_changes_accepts_content_only():
    assert parse_changes({"role": "r", "expertise": ["x"]}) == {"role": "r", "expertise": ["x"]}
    for key, hint in [("name", "renamed"), ("is_default", "set_default"), ("is_active", "restore")]:
        with pytest.raises(InvalidInputError, match=hint):
            parse_changes({key: "x"})
    with pytest.raises(InvalidInputError, match="version"):
        parse_changes({"version": 3})
    with pytest.raises(InvalidInputError, match="empty"):
        parse_changes({})
    with pytest.raises(InvalidInputError, match="system_prompt"):
        parse_changes({"system_prompt": ""})
    with pytest.raises(InvalidInputError, match="role"):
        parse_changes({"role": None})
    with pytest.raises(InvalidInputError, match="dict"):
        parse_changes("role=x")


def test_check_name_and_search_pattern():
    assert check_name("a-1") == "a-1"
    with pytest.raises(InvalidInputError, match="cursor"):
        check_name("A", "cursor")
    assert search_pattern("50%_off\\") == "%50\\%\\_off\\\\%"
    assert search_pattern(None) is None
    with pytest.raises(InvalidInputError, match="search"):
        search_pattern("")


def test_check_metric():
    assert check_metric("latency_ms", 3, None) == ("latency_ms", 3.0, {})
    for metric, value, tags, word in [
        ("", 1, None, "metric"),
        ("m", math.inf, None, "value"),
        ("m", True, None, "value"),
        ("m", "1", None, "value"),
        ("m", 1, ["t"], "tags"),
        ("m", 1, {"x": object()}, "tags"),
    ]:
        with pytest.raises(InvalidInputError, match=word):
            check_metric(metric, value, tags)


def test_check_since():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert check_since(timedelta(hours=1), now) == now - timedelta(hours=1)
    assert check_since(now) == now
    assert check_since(None) is None
    for bad in (datetime(2026, 1, 1), timedelta(0), "yesterday"):
        with pytest.raises(InvalidInputError, match="since"):
            check_since(bad)


def test_diff_content():
    assert diff_content({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": {"old": 2, "new": 3}}
    assert diff_content(None, {"a": 1}) == {"a": {"old": None, "new": 1}}
    assert diff_content({"a": [1]}, {"a": [1]}) == {}


def _stored(name: str, **kw) -> Persona:
    d = parse_persona({"name": name, "system_prompt": "p"})
    return Persona(name=name, **(d.content | kw))


def test_plan_import_splits_created_updated_unchanged():
    drafts = parse_import(
        [
            {"name": "new", "system_prompt": "p"},
            {"name": "same", "system_prompt": "p"},
            {"name": "changed", "system_prompt": "q"},
            {"name": "revived", "system_prompt": "p"},
        ]
    )
    existing = {
        "same": _stored("same", version=4),
        "changed": _stored("changed", version=2),
        "revived": _stored("revived", version=3, is_active=False),
    }
    plan = plan_import(drafts, existing)
    assert [d.name for d in plan.creates] == ["new"]
    assert plan.unchanged == ["same"]
    updates = {d.name: (version, changed, diff) for d, version, changed, diff in plan.updates}
    assert updates["changed"][:2] == (3, True)
    assert updates["changed"][2] == {"system_prompt": {"old": "p", "new": "q"}}
    assert updates["revived"][:2] == (3, False)  # a state change keeps the version
    assert updates["revived"][2] == {"is_active": {"old": False, "new": True}}
    assert plan.default is None


def test_plan_import_default_moves_and_cannot_deactivate_the_default():
    drafts = parse_import([{"name": "a", "system_prompt": "p", "is_default": True}])
    assert plan_import(drafts, {}).default == "a"
    assert plan_import(drafts, {"a": _stored("a", is_default=True)}).default is None
    drafts = parse_import([{"name": "a", "system_prompt": "p", "is_active": False}])
    with pytest.raises(ConflictError, match="default"):
        plan_import(drafts, {"a": _stored("a", is_default=True)})


def test_parse_import_names_the_bad_record():
    items = [{"name": "ok", "system_prompt": "p"}, {"name": "bad", "system_prompt": ""}]
    with pytest.raises(InvalidInputError, match=r"item 1 'bad'.*system_prompt"):
        parse_import(items)
    with pytest.raises(InvalidInputError, match="item 1 'ok'.*also item 0"):
        parse_import([items[0], items[0]])
    with pytest.raises(InvalidInputError, match="only one"):
        parse_import(
            [
                {"name": "a", "system_prompt": "p", "is_default": True},
                {"name": "b", "system_prompt": "p", "is_default": True},
            ]
        )
    for bad in ("text", {"name": "a"}, 3):
        with pytest.raises(InvalidInputError, match="list"):
            parse_import(bad)


def test_cli_file_parsing_and_dumping():
    from unified_db.cli_personas import dump_personas, parse_personas_text

    records = [{"name": "a", "system_prompt": "p"}]
    assert (
        parse_personas_text('{"personas": [{"name": "a", "system_prompt": "p"}]}', yaml_format=False)
        == records
    )
    assert parse_personas_text("- name: a\n  system_prompt: p\n", yaml_format=True) == records
    for text, as_yaml, word in [("{", False, "JSON"), ("a: [", True, "YAML"), ('"x"', False, "list")]:
        with pytest.raises(InvalidInputError, match=word):
            parse_personas_text(text, yaml_format=as_yaml)
    p = Persona(name="a", display_name="A", system_prompt="p", expertise=["x"])
    for as_yaml in (False, True):
        back = parse_personas_text(dump_personas([p], yaml_format=as_yaml), yaml_format=as_yaml)
        assert parse_persona(back[0]).content == parse_persona(p).content


def test_check_since_further_back_than_year_1_means_all_time():
    # Found by the hostile-input tests: a raw OverflowError reached the caller.
    assert check_since(timedelta(days=10**8)) is None
    assert check_since(timedelta.max) is None

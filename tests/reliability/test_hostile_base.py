"""Hostile input through the base helpers: text and JSON parameters.

Every feature method funnels caller strings and JSON into these helpers, so what they
do with NUL, lone surrogates, huge or deeply nested values is what every feature does.
Each value is stored and read back unchanged, or rejected with InvalidInputError
leaving the table unchanged; no raw driver error, no other error class.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from unified_db import InvalidInputError, UnifiedDB
from unified_db.codecs import dumps, loads

from .hostile import hostile_json, hostile_text

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
CREATE = "CREATE TABLE __schema__.rel_h (id serial PRIMARY KEY, t text, j jsonb)"
COUNT = "SELECT count(*) FROM __schema__.rel_h"


@pytest.fixture
async def hdb(db: UnifiedDB) -> UnifiedDB:
    await db._execute(CREATE)
    return db


@SETTINGS
@given(value=hostile_text)
@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_hostile_text_is_stored_exactly_or_rejected_cleanly(hdb: UnifiedDB, value: str):
    before = await hdb._fetchval(COUNT)
    try:
        new_id = await hdb._fetchval(
            "INSERT INTO __schema__.rel_h (t) VALUES ($1) RETURNING id", value, write=True
        )
    except InvalidInputError:
        assert any(c in value for c in ("\x00",)) or _has_surrogate(value), repr(value[:50])
        assert await hdb._fetchval(COUNT) == before
        return
    assert await hdb._fetchval("SELECT t FROM __schema__.rel_h WHERE id = $1", new_id) == value
    # The same value as a lookup key: found, and the metacharacters did nothing.
    assert await hdb._fetchval("SELECT count(*) FROM __schema__.rel_h WHERE t = $1", value) >= 1
    assert await hdb._fetchval(COUNT) == before + 1


@SETTINGS
@given(value=hostile_json)
@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_hostile_json_round_trips_or_is_rejected_cleanly(hdb: UnifiedDB, value):
    before = await hdb._fetchval(COUNT)
    try:
        expected = loads(dumps(value))
    except InvalidInputError:
        expected = None  # the codec refuses it: so must the insert
    try:
        new_id = await hdb._fetchval(
            "INSERT INTO __schema__.rel_h (j) VALUES ($1) RETURNING id", value, write=True
        )
    except InvalidInputError:
        assert await hdb._fetchval(COUNT) == before
        return
    assert expected is not None or value is None
    got = await hdb._fetchval("SELECT j FROM __schema__.rel_h WHERE id = $1", new_id)
    assert json_equal(got, expected), (got, expected)
    assert await hdb._fetchval(COUNT) == before + 1


def json_equal(a, b) -> bool:
    """Equal as JSON: jsonb keeps numbers as numeric, so a float with an integral value
    comes back as an int (3.835919746846065e16 -> 38359197468460650): same double."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


def _has_surrogate(value: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in value)


@pytest.mark.needs_owner("creates its own tables or functions for its setup")
async def test_a_large_integral_float_comes_back_as_the_same_double(hdb: UnifiedDB):
    value = 3.835919746846065e16
    got = await hdb._fetchval("INSERT INTO __schema__.rel_h (j) VALUES ($1) RETURNING j", value, write=True)
    assert got == 38359197468460650 and float(got) == value  # numeric in jsonb: an int now

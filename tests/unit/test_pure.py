import datetime as dt
import uuid

import asyncpg
import pytest

from unified_db import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidInputError,
    MigrationError,
    OperationTimeoutError,
    UnifiedDBError,
)
from unified_db.codecs import dumps, loads
from unified_db.errors import is_connection_lost, map_driver_error
from unified_db.migrate import load_migrations, parse_migration, render
from unified_db.stats import Stats, percentile


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    values = sorted(float(i) for i in range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_stats_pop_resets():
    s = Stats()
    s.incr("requests_num", 3)
    s.record("cache_get", 0.002)
    s.record("cache_get", 0.004, error=True)
    got = s.pop_stats()
    assert got["requests_num"] == 3
    assert got["operations"]["cache_get"]["count"] == 2
    assert got["operations"]["cache_get"]["errors"] == 1
    assert got["operations"]["cache_get"]["p99_ms"] == pytest.approx(4.0)
    assert s.get_stats()["operations"] == {}


def test_driver_errors_map_to_library_errors():
    cause = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert isinstance(map_driver_error(cause), DatabaseUnavailableError)
    assert is_connection_lost(ConnectionResetError())
    assert isinstance(map_driver_error(TimeoutError()), OperationTimeoutError)
    assert isinstance(map_driver_error(asyncpg.UniqueViolationError("dup")), ConflictError)
    assert isinstance(map_driver_error(asyncpg.DataError("bad")), InvalidInputError)
    other = map_driver_error(RuntimeError("boom"))
    assert type(other) is UnifiedDBError and "boom" in str(other)


def test_codecs_round_trip_and_reject():
    value = {"a": [1, 2.5, None, True], "u": uuid.UUID(int=1), "t": dt.datetime(2024, 1, 1)}
    assert loads(dumps(value))["a"] == [1, 2.5, None, True]
    with pytest.raises(InvalidInputError):
        dumps({"s": {1, 2}})
    with pytest.raises(InvalidInputError):
        dumps(object())


def test_parse_migration_sections_and_checksum():
    m = parse_migration("0007_thing.sql", "-- x\n-- migrate:up\nCREATE T;\n-- migrate:down\nDROP T;\n")
    assert (m.version, m.name, m.up, m.down) == (7, "thing", "CREATE T;", "DROP T;")
    assert m.checksum != parse_migration("0007_thing.sql", "-- migrate:up\nB\n-- migrate:down\nC").checksum
    with pytest.raises(MigrationError):
        parse_migration("7_thing.sql", "-- migrate:up\n-- migrate:down\n")
    with pytest.raises(MigrationError):
        parse_migration("0007_thing.sql", "CREATE T;")


def test_shipped_migrations_are_numbered_and_complete():
    ms = load_migrations()
    assert [m.version for m in ms] == sorted({m.version for m in ms})
    assert ms[0].version == 1
    for m in ms:
        assert m.up and m.down, m.name


def test_render_quotes_schema_once():
    assert render("SELECT * FROM __schema__.t", "app") == 'SELECT * FROM "app".t'
    with pytest.raises(InvalidInputError):
        render("x", "bad schema")


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        {"a": [1, {"b": float("nan")}]},
        [None, (1.0, float("-inf"))],
    ],
)
def test_json_refuses_nan_and_infinities_rather_than_storing_null(value):
    with pytest.raises(InvalidInputError, match="NaN"):
        dumps(value)


def test_json_keeps_null_and_finite_floats():
    value = {"a": None, "b": [None, 1e308, -0.0], "c": "null"}
    assert loads(dumps(value)) == value


def test_json_refuses_nan_in_a_numpy_array():
    np = pytest.importorskip("numpy")
    with pytest.raises(InvalidInputError):
        dumps({"v": np.array([1.0, np.nan])})
    assert loads(dumps({"v": np.array([1.0, 2.0])})) == {"v": [1.0, 2.0]}


def test_operation_percentiles_follow_new_samples_within_a_64th_of_the_window():
    s = Stats()
    s.record("op", 0.001)
    first = s.get_stats()["operations"]["op"]
    s.record("op", 0.003, error=True)
    again = s.get_stats()["operations"]["op"]
    assert (again["count"], again["errors"]) == (2, 1)  # counts are always exact
    assert again["p99_ms"] == pytest.approx(3.0) and first["p99_ms"] == pytest.approx(1.0)
    for _ in range(2046):  # a full window of 2,048 samples
        s.record("op", 0.001)
    assert s.get_stats()["operations"]["op"]["p99_ms"] == pytest.approx(1.0)
    for _ in range(31):  # fewer than 2,048 / 64 new samples: the percentiles may lag
        s.record("op", 0.5)
    assert s.get_stats()["operations"]["op"]["count"] == 2079
    s.record("op", 0.5)  # the 32nd: recomputed
    assert s.get_stats()["operations"]["op"]["p99_ms"] == pytest.approx(500.0)

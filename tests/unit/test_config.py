from datetime import timedelta

import pytest

from unified_db import InvalidInputError, Settings, UnifiedDB
from unified_db.config import quote_ident


def test_defaults():
    s = Settings.load(environ={})
    assert s.dsn is None and s.schema == "unified_db" and s.namespace == "default"
    assert s.auto_migrate is True and s.statement_cache_size == 100


def test_environment_is_read_and_arguments_win():
    env = {
        "UNIFIED_DB_DSN": "postgresql://env@h/db",
        "UNIFIED_DB_SCHEMA": "from_env",
        "UNIFIED_DB_MIN_SIZE": "2",
        "UNIFIED_DB_MAX_SIZE": "7",
        "UNIFIED_DB_COMMAND_TIMEOUT": "4.5",
        "UNIFIED_DB_ACQUIRE_TIMEOUT": "3",
        "UNIFIED_DB_STATEMENT_CACHE_SIZE": "0",
        "UNIFIED_DB_APPLICATION_NAME": "svc",
        "UNIFIED_DB_NAMESPACE": "tenant-a",
    }
    s = Settings.load(environ=env)
    assert (s.dsn, s.schema, s.min_size, s.max_size) == ("postgresql://env@h/db", "from_env", 2, 7)
    assert (s.command_timeout, s.acquire_timeout, s.statement_cache_size) == (4.5, 3.0, 0)
    assert (s.application_name, s.namespace) == ("svc", "tenant-a")
    s = Settings.load("postgresql://arg@h/db", environ=env, schema="from_arg", max_size=9)
    assert (s.dsn, s.schema, s.max_size, s.min_size) == ("postgresql://arg@h/db", "from_arg", 9, 2)


def test_empty_environment_value_is_ignored():
    assert Settings.load(environ={"UNIFIED_DB_SCHEMA": ""}).schema == "unified_db"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"schema": "Bad-Name"}, "schema"),
        ({"schema": "pg_catalog"}, "schema"),
        ({"schema": 'x"; drop table y; --'}, "schema"),
        ({"schema": "a" * 64}, "schema"),
        ({"min_size": 5, "max_size": 2}, "min_size"),
        ({"max_size": 0}, "max_size"),
        ({"min_size": -1}, "min_size"),
        ({"dsn": "mysql://x/y"}, "postgresql://"),
        ({"dsn": "postgresql://h:notaport/db"}, "port"),
        ({"dsn": "   "}, "dsn"),
        ({"command_timeout": 0}, "command_timeout"),
        ({"acquire_timeout": -1}, "acquire_timeout"),
        ({"statement_cache_size": -1}, "statement_cache_size"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "a\x00b"}, "namespace"),
        ({"profile": "huge"}, "profile"),
        ({"no_such_setting": 1}, "unknown setting"),
        ({"cache_default_ttl": 0}, "cache_default_ttl"),
    ],
)
def test_bad_settings_raise_before_connecting(kwargs, fragment):
    with pytest.raises(InvalidInputError) as err:
        UnifiedDB(**kwargs)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_bad_environment_value_names_the_setting():
    with pytest.raises(InvalidInputError, match="max_size"):
        Settings.load(environ={"UNIFIED_DB_MAX_SIZE": "lots"})


def test_ttl_accepts_timedelta():
    assert Settings.load(environ={}, cache_default_ttl=timedelta(minutes=2)).cache_default_ttl == 120


def test_quote_ident_only_accepts_plain_names():
    assert quote_ident("unified_db") == '"unified_db"'
    with pytest.raises(InvalidInputError):
        quote_ident("Robert'); DROP")


def test_pool_sizes_follow_cpu_and_profile():
    assert Settings.load(environ={}).pool_sizes(cpu_count=2) == (1, 6)
    assert Settings.load(environ={}).pool_sizes(cpu_count=64) == (1, 20)
    assert Settings.load(environ={}, profile="serverless").pool_sizes(cpu_count=8) == (0, 2)
    assert Settings.load(environ={}, min_size=3, max_size=3).pool_sizes() == (3, 3)
    assert Settings.load(environ={}, min_size=30).pool_sizes(cpu_count=2) == (30, 30)
    assert Settings.load(environ={}, profile="serverless").inactive_lifetime < 60


def test_every_setting_is_documented_and_no_documented_setting_is_stale():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \| `UNIFIED_DB_(\w+)`", doc, flags=re.M))
    fields = {(f.alias or n, (f.alias or n).upper()) for n, f in Settings.model_fields.items()}
    assert fields - documented == set(), "add these settings to docs/configuration.md"
    assert documented - fields == set(), "these documented settings no longer exist"

"""The cache's pure logic and the near-cache LRU: no database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid

import orjson
import pytest
from pydantic import BaseModel

from unified_db import InvalidInputError
from unified_db.extensions.cache_logic import (
    MAX_KEY_BYTES,
    check_batch_size,
    check_delta,
    check_key,
    check_keys,
    check_tags,
    decode_value,
    encode_mapping,
    encode_value,
    eviction_excess,
    hit_ratio,
    ttl_seconds,
)
from unified_db.nearcache import (
    MAX_PAYLOADS,
    PAYLOAD_LIMIT,
    NearCache,
    channel,
    invalidation_payloads,
    parse_payload,
)

# ------------------------------------------------------------------ keys and tags


@pytest.mark.parametrize("key", ["a", "ключ", "x" * MAX_KEY_BYTES, "with space", "é" * 512])
def test_good_keys_pass(key):
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key, fragment",
    [
        ("", "non-empty"),
        ("a\x00b", "NUL"),
        ("x" * (MAX_KEY_BYTES + 1), "at most 1024"),
        ("é" * 513, "1026 bytes"),
        (b"bytes", "must be a str"),
        (1, "must be a str"),
        (None, "must be a str"),
        ("\ud800", "UTF-8"),
    ],
)
def test_bad_keys_name_the_argument(key, fragment):
    with pytest.raises(InvalidInputError, match=fragment) as err:
        check_key(key)
    assert "key" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_keys_refuse_a_bare_string_and_deduplicate():
    with pytest.raises(InvalidInputError, match="iterable"):
        check_keys("abc")
    with pytest.raises(InvalidInputError, match=r"keys\[1\]"):
        check_keys(["a", 2])
    assert check_keys(["b", "a", "b"]) == ["b", "a"]
    assert check_keys(k for k in ("x",)) == ["x"]


def test_tags():
    assert check_tags(("b", "a", "b")) == ["a", "b"]
    assert check_tags(()) == []
    with pytest.raises(InvalidInputError, match="at least one"):
        check_tags((), required=True)
    for bad in ("tag", [""], ["a", None], ["a\x00"], 5):
        with pytest.raises(InvalidInputError, match="tags"):
            check_tags(bad)


# ------------------------------------------------------------------ TTL


def test_ttl_forms():
    assert ttl_seconds(None) is None
    assert ttl_seconds(None, 30.0) == 30.0
    assert ttl_seconds(5) == 5.0
    assert ttl_seconds(0.25) == 0.25
    assert ttl_seconds(dt.timedelta(minutes=2)) == 120.0


@pytest.mark.parametrize("ttl", [0, -1, 0.0, -0.5, dt.timedelta(0), math.nan, math.inf, 1e12, True, "5", [1]])
def test_bad_ttls(ttl):
    with pytest.raises(InvalidInputError, match="ttl"):
        ttl_seconds(ttl)


def test_other_small_checks():
    assert check_batch_size(10) == 10
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(InvalidInputError, match="batch_size"):
            check_batch_size(bad)
    assert check_delta(-3) == -3
    for bad in (1.5, True, 2**63, "1"):
        with pytest.raises(InvalidInputError, match="delta"):
            check_delta(bad)
    assert hit_ratio(0, 0) is None and hit_ratio(3, 1) == 0.75
    assert eviction_excess(10, 100, None, None) == (0, 0)
    assert eviction_excess(10, 100, 8, 60) == (2, 40)
    assert eviction_excess(5, 10, 8, 60) == (0, 0)


# ------------------------------------------------------------------ values


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model(BaseModel):
    name: str
    n: int


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"a": [1, 2.5, None, True]}, {"a": [1, 2.5, None, True]}),
        ("text", "text"),
        (0, 0),
        (-(2**63), -(2**63)),
        (1.5, 1.5),
        (None, None),
        (False, False),
        ([], []),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2024-01-02T03:04:05+00:00"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Point(1, 2), {"x": 1, "y": 2}),
        (Model(name="m", n=3), {"name": "m", "n": 3}),
    ],
)
def test_values_round_trip_as_json(value, expected):
    data, is_bytes = encode_value(value, 1 << 20)
    assert is_bytes is False
    got = decode_value(data, is_bytes)
    assert got == expected and type(got) is type(expected)


def test_bytes_round_trip_as_bytes():
    for raw in (b"", b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")):
        data, is_bytes = encode_value(raw, 100)
        assert is_bytes is True
        assert decode_value(data, is_bytes) == bytes(raw)
        assert type(decode_value(data, is_bytes)) is bytes


def test_unencodable_and_oversized_values():
    for bad in (object(), {1, 2}, 2**64, lambda: 1):
        with pytest.raises(InvalidInputError, match="value"):
            encode_value(bad, 1 << 20)
    with pytest.raises(InvalidInputError, match="cache_max_value_bytes"):
        encode_value("x" * 100, 50)
    with pytest.raises(InvalidInputError, match="cache_max_value_bytes"):
        encode_value(b"x" * 51, 50)


def test_encode_mapping_validates_everything():
    keys, values, flags = encode_mapping({"a": 1, "b": b"x"}, 100)
    assert keys == ["a", "b"] and flags == [False, True] and values == [b"1", b"x"]
    with pytest.raises(InvalidInputError, match="Mapping"):
        encode_mapping([("a", 1)], 100)
    with pytest.raises(InvalidInputError, match="mapping key"):
        encode_mapping({"": 1}, 100)
    with pytest.raises(InvalidInputError, match=r"mapping\['b'\]"):
        encode_mapping({"a": 1, "b": object()}, 100)


# ------------------------------------------------------------------ near-cache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(size: int = 3, max_ttl: float = 60.0) -> tuple[NearCache, Clock]:
    clock = Clock()
    nc = NearCache(size, max_ttl, clock=clock)
    nc.available = True
    return nc, clock


def test_near_cache_hit_miss_and_lru():
    nc, _ = make(size=2)
    assert nc.get("cache", "a") == (False, None)
    t = nc.token()
    assert nc.put("cache", "a", 1, None, t) and nc.put("cache", "b", 2, None, t)
    assert nc.get("cache", "a") == (True, 1)  # a is now most recent
    nc.put("cache", "c", 3, None, t)
    assert nc.get("cache", "b") == (False, None)  # least recently used went
    assert nc.get("cache", "a") == (True, 1) and len(nc) == 2
    assert nc.get("persona", "a") == (False, None)  # kinds are separate
    assert nc.hits == 2 and nc.misses == 3


def test_near_cache_entries_never_outlive_their_ttl():
    nc, clock = make(max_ttl=10.0)
    nc.put("cache", "short", "v", 0.5, nc.token())
    nc.put("cache", "long", "v", 1000.0, nc.token())
    clock.now += 0.6
    assert nc.get("cache", "short") == (False, None)
    assert nc.get("cache", "long") == (True, "v")
    clock.now += 10.0  # capped by max_ttl
    assert nc.get("cache", "long") == (False, None)
    assert nc.put("cache", "gone", "v", 0.0, nc.token()) is False


def test_a_put_after_an_invalidation_of_that_key_is_refused():
    nc, _ = make()
    token = nc.token()  # a read starts ...
    nc.invalidate("cache", ["a"])  # ... a write to a is announced ...
    assert nc.put("cache", "a", "old", None, token) is False  # ... the old read is not cached
    assert nc.put("cache", "b", "fine", None, token) is True  # other keys are unaffected
    assert nc.put("cache", "a", "new", None, nc.token()) is True


def test_kind_flush_full_flush_and_unavailable():
    nc, _ = make(size=10)
    t = nc.token()
    nc.put("cache", "a", 1, None, t)
    nc.put("persona", "a", 2, None, t)
    nc.invalidate_kind("cache")
    assert nc.get("cache", "a")[0] is False and nc.get("persona", "a") == (True, 2)
    assert nc.put("cache", "b", 1, None, t) is False  # token predates the kind flush
    nc.flush()
    assert len(nc) == 0 and nc.put("persona", "a", 2, None, t) is False
    nc.available = False
    assert nc.put("cache", "a", 1, None, nc.token()) is False
    assert nc.get("cache", "a") == (False, None)


def test_forgotten_invalidations_refuse_old_tokens():
    nc, _ = make(size=1)  # remembers max(1024, 4) recent invalidations
    token = nc.token()
    nc.invalidate("cache", [f"k{i}" for i in range(2000)])
    assert nc.put("cache", "k0", 1, None, token) is False  # forgotten, still refused
    assert nc.put("cache", "zzz", 1, None, token) is False  # conservative after forgetting


def test_payloads_batch_under_the_limit_and_parse_back():
    keys = [f"key-{i:05d}-" + "x" * 40 for i in range(500)]
    payloads = invalidation_payloads("ns", "cache", keys)
    assert 1 < len(payloads) <= MAX_PAYLOADS
    assert all(len(p.encode()) < PAYLOAD_LIMIT for p in payloads)
    got = []
    for p in payloads:
        ns, kind, ks = parse_payload(p)
        assert (ns, kind) == ("ns", "cache")
        got.extend(ks)
    assert got == keys


def test_payloads_fall_back_to_a_kind_flush():
    flush = ("ns", "cache", None)
    assert [parse_payload(p) for p in invalidation_payloads("ns", "cache", None)] == [flush]
    too_many = [f"{i:0>900}" for i in range(400)]
    assert [parse_payload(p) for p in invalidation_payloads("ns", "cache", too_many)] == [flush]
    assert invalidation_payloads("ns", "cache", []) == []
    # The worst key (1024 bytes of control characters, escaped 6x) still fits one payload.
    worst = "\x01" * 1024
    (p,) = invalidation_payloads("ns", "cache", [worst])
    assert parse_payload(p) == ("ns", "cache", [worst])


def test_parse_payload_ignores_foreign_messages():
    for junk in ("", "not json", "[]", '{"ns": 1}', orjson.dumps({"ns": "a", "kind": "c"}).decode()):
        assert parse_payload(junk) is None


def test_channel_fits_an_identifier():
    assert channel("unified_db") == "udb_nearcache_unified_db"
    assert len(channel("s" * 63)) == 63


def test_payloads_carry_the_origin_so_a_writer_can_skip_its_echo():
    from unified_db.nearcache import parse_message

    (p,) = invalidation_payloads("ns", "cache", ["a"], origin="me")
    assert parse_message(p) == ("ns", "cache", ["a"], "me")
    (f,) = invalidation_payloads("ns", "persona", None, origin="me")
    assert parse_message(f) == ("ns", "persona", None, "me")
    assert parse_message(invalidation_payloads("ns", "cache", ["a"])[0])[3] is None


def test_eviction_check_interval():
    from unified_db.extensions.cache import eviction_check_every

    assert eviction_check_every(None, None) is None
    assert eviction_check_every(None, 10_000) == 1000
    assert eviction_check_every(50, None) == 100
    assert eviction_check_every(20_000, None) == 2000
    assert eviction_check_every(10**9, 5) == 10_000

"""Pure session logic: tokens, digests, ids, argument checks. No database."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unified_db import InvalidInputError
from unified_db.extensions.sessions import (
    TOKEN_RE,
    Session,
    _rowcount,
    check_ip,
    check_seconds,
    check_session_id,
    check_session_ids,
    check_user_agent,
    check_user_id,
    check_version,
    encode_data,
    hash_token,
    new_session_id,
    new_token,
    token_digest,
)


def test_tokens_are_256_bit_urlsafe_and_distinct():
    tokens = {new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for t in list(tokens)[:50]:
        assert len(t) == 43 and TOKEN_RE.fullmatch(t)
        # 43 base64 characters carry 258 bits: the 256 random ones and 2 padding bits
        assert len(__import__("base64").urlsafe_b64decode(t + "=")) == 32


def test_digest_is_sha256_of_the_token():
    t = new_token()
    assert hash_token(t) == hashlib.sha256(t.encode()).digest()
    assert token_digest(t) == hash_token(t)
    assert len(hash_token(t)) == 32


@pytest.mark.parametrize(
    "bad",
    ["", "x", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "\x00", "' OR 1=1 --" + "a" * 32, "x" * 100_000],
)
def test_malformed_token_strings_have_no_digest(bad):
    assert token_digest(bad) is None


@given(st.text(max_size=200))
def test_any_string_is_either_a_well_formed_token_or_none(text):
    got = token_digest(text)
    if TOKEN_RE.fullmatch(text):
        assert got == hashlib.sha256(text.encode()).digest()
    else:
        assert got is None


@pytest.mark.parametrize("bad", [None, 42, b"a" * 43, ["token"], 4.2])
def test_a_token_that_is_not_a_str_is_invalid_input(bad):
    with pytest.raises(InvalidInputError, match="token must be a str"):
        token_digest(bad)


def test_session_ids_are_uuid7_and_increase():
    ids = [new_session_id() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # PostgreSQL compares uuids bytewise: the bytes must increase too.
    assert [i.bytes for i in ids] == sorted(i.bytes for i in ids)


def test_session_id_carries_its_millisecond_and_survives_sequence_overflow():
    ms = 2_000_000_000_000
    first = new_session_id(ms)
    assert first.int >> 80 == ms
    run = [new_session_id(ms) for _ in range(5000)]  # more than 4096 in "one millisecond"
    assert run == sorted(run) and len(set(run)) == 5000
    assert run[-1].int >> 80 > ms  # borrowed a later millisecond rather than repeat


def test_check_session_id_accepts_uuid_and_text_only():
    u = uuid.uuid4()
    assert check_session_id(u) is u
    assert check_session_id(str(u)) == u
    for bad in ["nope", "", 12, None, u.bytes]:
        with pytest.raises(InvalidInputError, match="session_id must be a session id"):
            check_session_id(bad)
    with pytest.raises(InvalidInputError, match="session_ids must be a list"):
        check_session_ids(str(u))
    with pytest.raises(InvalidInputError, match=r"session_ids\[\]"):
        check_session_ids([u, "bad"])
    assert check_session_ids((str(u), u)) == [u, u]


@pytest.mark.parametrize("bad", ["", 7, None, "a" * 256, "a\x00b", b"u1"])
def test_user_id_must_be_a_short_nonempty_str(bad):
    with pytest.raises(InvalidInputError, match="user_id"):
        check_user_id(bad)


def test_seconds_take_numbers_and_timedeltas_within_bounds():
    assert check_seconds("t", 1.5) == dt.timedelta(seconds=1.5)
    assert check_seconds("t", dt.timedelta(minutes=2)) == dt.timedelta(minutes=2)
    for bad in [0, -1, float("inf"), float("nan"), True, "10", None, 11 * 365 * 86400, dt.timedelta(0)]:
        with pytest.raises(InvalidInputError, match="idle_timeout must be a number"):
            check_seconds("idle_timeout", bad)


def test_data_is_encoded_once_as_a_fragment():
    frag = encode_data({"a": [1, 2], "b": {"c": None}}, 1000)
    assert isinstance(frag, orjson.Fragment)
    assert orjson.loads(orjson.dumps(frag)) == {"a": [1, 2], "b": {"c": None}}
    assert orjson.dumps(encode_data(None, 10)) == b"{}"


@pytest.mark.parametrize("bad", [[1, 2], "text", 3, {"s": {1, 2}}, {"o": object()}])
def test_data_that_is_not_a_json_object_is_invalid_input(bad):
    with pytest.raises(InvalidInputError, match="data"):
        encode_data(bad, 1000)


def test_data_size_limit_and_nul():
    with pytest.raises(InvalidInputError, match="session_max_data_bytes"):
        encode_data({"k": "x" * 100}, 50)
    with pytest.raises(InvalidInputError, match="NUL"):
        encode_data({"k": "a\x00b"}, 1000)
    with pytest.raises(InvalidInputError, match="NUL"):
        encode_data({"a\x00": 1}, 1000)
    # The six characters \u0000 as text are fine: only a real NUL is refused.
    assert orjson.loads(orjson.dumps(encode_data({"k": "\\u0000"}, 1000))) == {"k": "\\u0000"}
    with pytest.raises(InvalidInputError, match="NUL"):
        encode_data({"k": "\\\x00"}, 1000)


def test_ip_and_user_agent_checks():
    assert check_ip("10.0.0.1") == "10.0.0.1"
    assert check_ip(ipaddress.ip_address("::1")) == "::1"
    assert check_ip("2001:DB8::1") == "2001:db8::1"
    assert check_ip(None) is None
    for bad in ["300.1.1.1", "host.example", 1234, "10.0.0.0/8"]:
        with pytest.raises(InvalidInputError, match="ip must be"):
            check_ip(bad)
    assert check_user_agent("curl/8") == "curl/8"
    for bad in ["x" * 1025, "a\x00", 5]:
        with pytest.raises(InvalidInputError, match="user_agent"):
            check_user_agent(bad)


def test_expected_version_check():
    assert check_version(None) is None and check_version(3) == 3
    for bad in [0, -1, True, "1", 2**31]:
        with pytest.raises(InvalidInputError, match="expected_version"):
            check_version(bad)


def test_session_repr_never_shows_the_token():
    now = dt.datetime.now(dt.UTC)
    s = Session(
        id=uuid.uuid4(),
        user_id="u",
        data={},
        version=1,
        created_at=now,
        last_accessed_at=now,
        expires_at=now,
        absolute_expires_at=now,
        token="SECRET-TOKEN-VALUE",
    )
    assert "SECRET-TOKEN-VALUE" not in repr(s) and "SECRET-TOKEN-VALUE" not in str(s)
    assert "token" not in s.model_dump() and "SECRET-TOKEN-VALUE" not in s.model_dump_json()
    assert s.token == "SECRET-TOKEN-VALUE"


def test_rowcount_reads_the_command_tag():
    assert _rowcount("DELETE 12") == 12
    assert _rowcount("DELETE 0") == 0

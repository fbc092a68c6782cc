"""JSON codecs: orjson for ``json`` and ``jsonb`` on every pooled connection.

Binary format, so a jsonb value crosses the wire as orjson's bytes with the one-byte
jsonb version header, and never through Python's ``json`` module.
"""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import orjson

from .errors import InvalidInputError

_JSONB_VERSION = b"\x01"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models encode as their dump
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def _has_non_finite(value: Any) -> bool:
    """True when a float inside *value* is NaN or an infinity (orjson writes those as null).

    Only called when the encoded bytes contain ``null``, so the common value pays nothing;
    orjson has already refused nesting over 254 levels, so the recursion is bounded.
    """
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist) and getattr(value, "dtype", None) is not None:
        return _has_non_finite(tolist())
    return False


def dumps(value: Any) -> bytes:
    """Encode *value* as JSON bytes; InvalidInputError when it cannot be encoded.

    NaN and infinities are refused rather than stored as ``null`` (orjson's choice): JSON
    has no such numbers, and a value that comes back different from what was stored is
    worse than an error.
    """
    try:
        data = orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidInputError(f"value is not JSON-encodable: {exc}") from None
    if b"null" in data and _has_non_finite(value):
        raise InvalidInputError("value is not JSON-encodable: NaN and infinities are not JSON numbers")
    return data


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


async def register_json_codecs(con: asyncpg.Connection) -> None:
    """Install the orjson codecs on one connection (called from the pool's init hook)."""
    await con.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await con.set_type_codec(
        "json", encoder=dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )

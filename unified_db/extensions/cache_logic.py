"""The cache's pure logic: key, tag and TTL validation, value encoding. No I/O.

Every public cache method calls these before touching the database, so bad input
raises :class:`InvalidInputError` and writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from ..codecs import dumps, loads
from ..errors import InvalidInputError

MAX_KEY_BYTES = 1024
MAX_TAG_BYTES = 1024
#: 100 years: far beyond any cache use, well inside PostgreSQL's timestamp range.
MAX_TTL_SECONDS = 100 * 365.25 * 86400

_BYTES_TYPES = (bytes, bytearray, memoryview)


def _plain_key(key: object) -> bool:
    """The common case, checked cheaply: ASCII (so bytes == characters, no surrogates)."""
    return type(key) is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES and "\x00" not in key


def check_key(key: object, name: str = "key") -> str:
    """*key* if it is a usable cache key, else InvalidInputError naming *name*."""
    if _plain_key(key):
        return key  # type: ignore[return-value]
    if not isinstance(key, str):
        raise InvalidInputError(f"{name} must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidInputError(f"{name} must be a non-empty str")
    if "\x00" in key:
        raise InvalidInputError(f"{name} must not contain NUL characters")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInputError(f"{name} is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise InvalidInputError(f"{name} is {size} bytes in UTF-8; at most {MAX_KEY_BYTES} are accepted")
    return key


def check_keys(keys: object, name: str = "keys") -> list[str]:
    """A list of valid keys from an iterable of keys (a bare str is refused: a classic slip)."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidInputError(
            f"{name} must be an iterable of str keys (a list, tuple or set), not a bare value"
        )
    out = [k if _plain_key(k) else check_key(k, f"{name}[{i}]") for i, k in enumerate(keys)]
    return list(dict.fromkeys(out))  # duplicates would make one upsert touch a row twice


def check_tags(tags: object, name: str = "tags", *, required: bool = False) -> list[str]:
    """A sorted, deduplicated list of tags: non-empty str without NUL, at most 1024 bytes each."""
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise InvalidInputError(f"{name} must be an iterable of str tags (e.g. a tuple), not a bare value")
    out: set[str] = set()
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag:
            raise InvalidInputError(f"{name}[{i}] must be a non-empty str, got {tag!r}")
        if "\x00" in tag:
            raise InvalidInputError(f"{name}[{i}] must not contain NUL characters")
        try:
            size = len(tag.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInputError(f"{name}[{i}] is not valid UTF-8 (lone surrogate)") from None
        if size > MAX_TAG_BYTES:
            raise InvalidInputError(f"{name}[{i}] is {size} bytes; at most {MAX_TAG_BYTES} are accepted")
        out.add(tag)
    if required and not out:
        raise InvalidInputError(f"{name} must name at least one tag")
    return sorted(out)


def ttl_seconds(ttl: object, default: float | None = None, name: str = "ttl") -> float | None:
    """*ttl* (seconds as int/float, or a timedelta) as float seconds; None -> *default*.

    None (after the default) means "never expires". Zero, negative, NaN, infinite and
    absurdly long TTLs are InvalidInputError.
    """
    if ttl is None:
        return default
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise InvalidInputError(
            f"{name} must be seconds (int or float), a timedelta or None, got {type(ttl).__name__}"
        )
    if math.isnan(seconds) or seconds <= 0:
        raise InvalidInputError(f"{name} must be more than zero seconds, got {ttl!r}")
    if seconds > MAX_TTL_SECONDS:
        raise InvalidInputError(f"{name} must be at most {MAX_TTL_SECONDS:.0f} seconds (100 years)")
    return seconds


def encode_value(value: Any, max_bytes: int, name: str = "value") -> tuple[bytes, bool]:
    """(encoded, is_bytes): bytes-like values as they are, anything else as orjson JSON.

    InvalidInputError when the value cannot be encoded or is larger than *max_bytes*.
    """
    if isinstance(value, _BYTES_TYPES):
        data, is_bytes = bytes(value), True
    else:
        try:
            data = dumps(value)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{name}: {exc}") from None
        is_bytes = False
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"{name} is {len(data)} bytes encoded; cache_max_value_bytes allows {max_bytes}"
        )
    return data, is_bytes


def decode_value(data: bytes, is_bytes: bool) -> Any:
    """The value :func:`encode_value` encoded."""
    return data if is_bytes else loads(data)


def encode_mapping(mapping: object, max_bytes: int) -> tuple[list[str], list[bytes], list[bool]]:
    """Keys, encoded values and bytes flags of a mapping, in one pass, all validated."""
    if not isinstance(mapping, Mapping):
        raise InvalidInputError(f"mapping must be a Mapping of key -> value, got {type(mapping).__name__}")
    keys: list[str] = []
    values: list[bytes] = []
    flags: list[bool] = []
    for k, v in mapping.items():
        keys.append(check_key(k, "mapping key"))
        data, is_bytes = encode_value(v, max_bytes, f"mapping[{k!r}]")
        values.append(data)
        flags.append(is_bytes)
    return keys, values, flags


def check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int of at least 1, got {batch_size!r}")
    return batch_size


def check_delta(delta: object) -> int:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise InvalidInputError(f"delta must be an int, got {type(delta).__name__}")
    if not -(2**63) <= delta < 2**63:
        raise InvalidInputError("delta must fit in a signed 64-bit integer")
    return delta


def hit_ratio(hits: int, misses: int) -> float | None:
    total = hits + misses
    return hits / total if total else None


def eviction_excess(
    entries: int, size: int, max_entries: int | None, max_bytes: int | None
) -> tuple[int, int]:
    """(entries, bytes) over the bounds that eviction must remove; (0, 0) when within them."""
    over_entries = max(0, entries - max_entries) if max_entries is not None else 0
    over_bytes = max(0, size - max_bytes) if max_bytes is not None else 0
    return over_entries, over_bytes

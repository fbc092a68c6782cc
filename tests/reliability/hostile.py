"""Hypothesis strategies for hostile input, shared by every feature's hostile-input tests.

Each strategy yields values a caller might pass to a public method: strings with SQL
metacharacters, NUL and lone surrogates, huge strings, deeply nested JSON, NaN and
infinities, and TTLs that are zero, negative, huge or not numbers at all. A method given
one must raise ``InvalidInputError`` or return a correct result, never a raw driver
error, and leave the database unchanged when it rejects the call.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

SQL_META = [
    "'",
    '"',
    ";",
    "--",
    "/*",
    "*/",
    "\\",
    "$1",
    "$$",
    "%s",
    "{}",
    "__schema__",
    "' OR '1'='1",
    "'; DROP TABLE x; --",
    "E'\\x00'",
    "%",
    "_",
    "*",
    "?",
]

#: Text that PostgreSQL cannot store: NUL, and lone surrogates (not valid UTF-8).
UNSTORABLE_CHARS = ["\x00", "\ud800", "\udfff"]

sql_text = st.lists(st.one_of(st.sampled_from(SQL_META), st.text(max_size=8)), min_size=1, max_size=6).map(
    "".join
)

hostile_text = st.one_of(
    sql_text,
    st.text(),  # any code point hypothesis likes, surrogates included
    st.builds(
        lambda a, c, b: a + c + b, st.text(max_size=5), st.sampled_from(UNSTORABLE_CHARS), st.text(max_size=5)
    ),
    st.integers(min_value=10_000, max_value=2_000_000).map(lambda n: "x" * n),  # huge
    st.just(""),
)


def nested(depth: int, leaf: Any = 1) -> Any:
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers().filter(lambda n: abs(n) >= 2**64),  # beyond what orjson encodes
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)

hostile_json = st.one_of(
    st.recursive(
        json_scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_text.filter(lambda s: len(s) < 100), children, max_size=4),
        ),
        max_leaves=12,
    ),
    st.one_of(st.integers(min_value=100, max_value=300), st.sampled_from([1000, 5000])).map(nested),  # deep
)

hostile_ttl = st.one_of(
    st.just(0),
    st.just(0.0),
    st.integers(max_value=-1),
    st.floats(max_value=-1e-9),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.integers(min_value=10**12),
    st.floats(min_value=1e12, allow_infinity=False),
    st.just("10"),
    st.just(None),
    st.booleans(),
)

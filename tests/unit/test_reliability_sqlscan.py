"""The SQL-formatting scanner on small sources: what it must flag and what it must let be."""

from __future__ import annotations

import textwrap

import pytest

from tests.reliability import sqlscan
from tests.reliability.sqlscan import scan_source


def scan(code: str) -> list[str]:
    return [f.reason for f in scan_source(textwrap.dedent(code), "mod.py")]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            """
            async def get(self, key):
                return await self._fetch(f"SELECT v FROM t WHERE k = '{key}'")
            """,
            "f-string interpolates 'key'",
        ),
        (
            """
            async def get(con, key):
                await con.execute("DELETE FROM t WHERE k = '%s'" % key)
            """,
            "%-formatting with 'key'",
        ),
        (
            """
            async def get(self, x):
                await self._execute("SELECT {}".format(x))
            """,
            "str.format()",
        ),
        (
            """
            async def get(self, table):
                await self._fetchval("SELECT count(*) FROM " + table)
            """,
            "concatenation with the non-constant 'table'",
        ),
        (
            """
            async def get(self, col):
                q = f"SELECT {col} FROM t"
                return await self._fetch(q)
            """,
            "variable 'q' is built by f-string",
        ),
        (
            """
            def build(col):
                return "SELECT %s FROM t" % col
            """,
            "SQL-looking text built by %-formatting",
        ),
        (
            """
            async def get(con, user):
                sql = "SELECT * FROM t WHERE a = "
                sql += user
                return await con.fetch(sql)
            """,
            "SQL text extended with 'user'",
        ),
        (
            """
            async def get(con, cols):
                return await con.fetch("SELECT " + ", ".join(cols) + " FROM t")
            """,
            "join() of 'cols'",
        ),
        (
            """
            async def get(con, x):
                return await con.fetch(query=f"SELECT {x}")
            """,
            "f-string interpolates 'x'",
        ),
        (
            """
            async def get(self, con, x):
                return await con.raw.fetch(self._sql(f"SELECT {x} FROM __schema__.t"))
            """,
            "SQL passed to fetch()",
        ),
    ],
)
def test_formatting_with_caller_data_is_flagged(code: str, expected: str):
    reasons = scan(code)
    assert any(expected in r for r in reasons), reasons


@pytest.mark.parametrize(
    "code",
    [
        """
        Q = "SELECT v FROM __schema__.t WHERE k = $1"
        async def get(self, key):
            return await self._fetch(Q, key)
        """,
        """
        DATABASE = "unified_db"
        CREATE = f'CREATE DATABASE "{DATABASE}"'
        async def make(con):
            await con.execute(f'CREATE DATABASE "{DATABASE}"')
            await con.execute(CREATE)
        """,
        """
        async def path(con, schema):
            await con.execute(f"SET search_path TO {quote_ident(schema)}")
        """,
        """
        class Conn:
            async def fetch(self, query, *args):
                return await self.raw.fetch(self._db._sql(query), *args)
        """,
        """
        def check(key):
            raise ValueError(f"key {key!r} is longer than {len(key)} characters")
        """,
        """
        async def count(con, name):
            return await con.fetchval("SELECT to_regclass($1)", f"{name}.t")
        """,
        """
        async def grant(con, role):
            sql = await con.fetchval("SELECT format('GRANT USAGE ON SCHEMA s TO %I', $1::text)", role)
            await con.execute(sql)
        """,
    ],
)
def test_constants_parameters_and_sanitized_names_pass(code: str):
    assert scan(code) == []


def test_an_allowed_function_is_not_reported(monkeypatch: pytest.MonkeyPatch):
    code = """
    class Store:
        async def drop(self, con, table):
            await con.execute(f"DROP TABLE {table}")
    """
    assert scan(code)
    monkeypatch.setitem(sqlscan.ALLOWED, ("mod.py", "Store.drop"), "table is validated by the caller")
    assert scan(code) == []


def test_constants_built_from_constants_are_constants():
    code = """
    COLS = "id, name"
    R_COLS = "r.id, r.name"
    TEMPLATE = "SELECT {cols} FROM __schema__.t r {where}"
    GET = f"SELECT {COLS} FROM __schema__.t WHERE id = $1"
    LIST = TEMPLATE.format(cols=R_COLS, where="WHERE r.k = $1")
    BOTH = GET + " UNION ALL " + LIST
    async def get(self, key):
        await self._fetch(GET, key)
        await self._fetch(LIST, key)
        await self._fetch(BOTH, key)
        return await self._fetch(f"SELECT {R_COLS} FROM __schema__.t r")
    """
    assert scan(code) == []


@pytest.mark.parametrize(
    "code",
    [
        # A function argument beside module-level constants: still caller data.
        """
        COLS = "id, name"
        async def get(self, table):
            return await self._fetch(f"SELECT {COLS} FROM {table}")
        """,
        """
        TEMPLATE = "SELECT {cols} FROM __schema__.t"
        async def get(self, cols):
            return await self._fetch(TEMPLATE.format(cols=cols))
        """,
        """
        COLS = "id, name"
        def build(where):
            return f"SELECT {COLS} FROM __schema__.t WHERE {where}"
        """,
    ],
)
def test_an_f_string_with_a_function_argument_is_still_caught(code: str):
    assert scan(code), "the scan let caller data into SQL"


def test_the_package_allow_list_covers_only_its_own_functions():
    # The pgvector entry is for search_sql in vectors/pgvector.py, nothing else.
    code = """
    def search_sql(where):
        return f"SELECT * FROM __schema__.vector_items WHERE {where}"
    """
    assert scan_source(textwrap.dedent(code), "vectors/other.py")
    path = "vectors/pgvector.py"
    assert scan_source(textwrap.dedent(code), path) == []
    sibling = code.replace("search_sql", "search_sql_by_name")
    assert scan_source(textwrap.dedent(sibling), path)

"""Find SQL built by string formatting, by reading the package's source (``ast``).

Two rules, both general so that feature code is covered once it lands:

1. The SQL argument of every query call (``_fetch*``, ``_execute*``, ``fetch*``,
   ``execute*``, ``prepare``, ``cursor``, ``copy_from_query``, ``_sql``) must not be an
   f-string, a ``%`` or ``.format`` expression, a ``join`` or a concatenation with a
   value that is not a constant. A local variable passed as SQL is traced to every
   assignment in its function.
2. Anywhere in the package, a formatted string whose constant text looks like SQL
   (``SELECT``, ``INSERT``, ``__schema__`` ...) must not interpolate a non-constant:
   this catches a helper that builds SQL and returns it.

Interpolating a module-level string constant is fine (so is an f-string, ``+`` or
``.format()`` of such constants: it is a constant too), and so is the result of
``quote_ident()`` (a validated, quoted identifier). Any other exception goes in
``ALLOWED`` with its reason.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

SINKS = frozenset(
    {
        "_fetch",
        "_fetchrow",
        "_fetchval",
        "_execute",
        "_executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "execute",
        "executemany",
        "prepare",
        "cursor",
        "copy_from_query",
        "_sql",
    }
)
#: Functions whose result is safe to put in SQL text: they validate and quote a name.
SANITIZERS = frozenset({"quote_ident"})
#: Functions that return their SQL argument rendered (schema name); traced through.
PASS_THROUGH = frozenset({"_sql", "render"})
SQL_TEXT = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|DROP|ALTER|GRANT|REVOKE|TRUNCATE|WHERE|VALUES)\b"
    r"|__schema__"
)

_PGVECTOR = (
    "renders only integers from the collection catalog (id, dimensions, m, ef_construction,"
    " each checked by _ident_int), operators and operator classes looked up in the fixed"
    " OPERATORS table by the catalog's distance, and fixed keywords; every caller value is"
    " a bind parameter"
)

#: (path relative to the package, function qualname) -> why formatting is safe there.
#: Keep it short: each entry is a function the scan no longer looks into.
ALLOWED: dict[tuple[str, str], str] = {
    ("integrations/langgraph.py", "UnifiedCheckpointSaver.alist"): (
        "the WHERE joins fragments of the module-level LIST_FILTERS, chosen by fixed keys and"
        " numbered with parameter positions (len(params), an integer); the values are bind parameters"
    ),
    ("vectors/pgvector.py", "create_index_sql"): _PGVECTOR,
    ("vectors/pgvector.py", "drop_index_sql"): _PGVECTOR,
    ("vectors/pgvector.py", "search_sql"): _PGVECTOR,
    ("vectors/pgvector.py", "hybrid_sql"): _PGVECTOR,
    ("vectors/pgvector.py", "PgVectorBackend.build_index"): (
        "the index name is index_name(info): a fixed prefix and the catalog's integer id"
    ),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    function: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}: {self.reason}"


def _const_text(node: ast.AST) -> str:
    """The constant string parts of *node* (for the SQL-looking test)."""
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.findings: dict[tuple[int, str], Finding] = {}
        self.scope: list[str] = []
        self.functions: list[ast.AST] = []
        self.constants = self._module_constants(tree)

    # ------------------------------------------------------------------ what is static

    def _module_constants(self, tree: ast.Module) -> set[str]:
        assigned: dict[str, list[ast.AST]] = {}
        for stmt in tree.body:
            targets: list[ast.AST] = []
            value = None
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            for t in targets:
                if isinstance(t, ast.Name) and value is not None:
                    assigned.setdefault(t.id, []).append(value)
        constants: set[str] = set()
        changed = True
        while changed:  # constants built from constants
            changed = False
            for name, values in assigned.items():
                if name not in constants and len(values) == 1 and self._static(values[0], constants):
                    constants.add(name)
                    changed = True
        return constants

    def _static(self, node: ast.AST, constants: set[str] | None = None) -> bool:
        """True when *node* is text fixed at import time (or a sanitized identifier)."""
        consts = self.constants if constants is None else constants
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return node.id in consts
        if isinstance(node, ast.JoinedStr):
            return all(
                self._static(v.value, consts) for v in node.values if isinstance(v, ast.FormattedValue)
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            return self._static(node.left, consts) and self._static(node.right, consts)
        if isinstance(node, ast.Tuple):
            return all(self._static(e, consts) for e in node.elts)
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in SANITIZERS:
                return True
            if name in PASS_THROUGH and node.args:
                return self._static(node.args[0], consts)
            # A constant template formatted with constants ("...{cols}".format(cols=COLS)).
            if name == "format" and isinstance(node.func, ast.Attribute):
                values = [*node.args, *(k.value for k in node.keywords)]
                return self._static(node.func.value, consts) and all(self._static(v, consts) for v in values)
        return False

    # ------------------------------------------------------------------ what is formatting

    def _formatting(self, node: ast.AST, depth: int = 0) -> str | None:
        """Why *node* is SQL built by formatting non-constant values, or None."""
        if depth > 8:
            return None
        if isinstance(node, ast.JoinedStr):
            for v in node.values:
                if isinstance(v, ast.FormattedValue) and not self._static(v.value):
                    return f"f-string interpolates {ast.unparse(v.value)!r}"
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if not self._static(node.right) and isinstance(
                node.left, (ast.Constant, ast.JoinedStr, ast.Name)
            ):
                return f"%-formatting with {ast.unparse(node.right)!r}"
            return self._formatting(node.left, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            inner = self._formatting(node.left, depth + 1) or self._formatting(node.right, depth + 1)
            if inner:
                return inner
            left_static, right_static = self._static(node.left), self._static(node.right)
            if left_static != right_static:
                other = node.right if left_static else node.left
                return f"concatenation with the non-constant {ast.unparse(other)!r}"
            return None
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name == "format" and isinstance(node.func, ast.Attribute):
                values = [*node.args, *(k.value for k in node.keywords)]
                if not all(self._static(v) for v in values):
                    return f"str.format() with {', '.join(ast.unparse(v) for v in values)!r}"
            if name == "join" and isinstance(node.func, ast.Attribute) and node.args:
                if not self._static(node.args[0]):
                    return f"join() of {ast.unparse(node.args[0])!r}"
            if name in PASS_THROUGH and node.args:
                return self._formatting(node.args[0], depth + 1)
            return None
        if isinstance(node, ast.IfExp):
            return self._formatting(node.body, depth + 1) or self._formatting(node.orelse, depth + 1)
        if isinstance(node, ast.Name) and self.functions:
            for value in _assignments(self.functions[-1], node.id):
                why = self._formatting(value, depth + 1)
                if why:
                    return f"variable {node.id!r} is built by {why}"
        return None

    # ------------------------------------------------------------------ walking

    def _add(self, node: ast.AST, reason: str) -> None:
        function = ".".join(self.scope) or "<module>"
        if (self.path, function) in ALLOWED:
            return
        key = (node.lineno, reason)
        self.findings.setdefault(key, Finding(self.path, node.lineno, function, reason))

    def _visit_scope(self, node: ast.AST, is_function: bool) -> None:
        self.scope.append(node.name)  # type: ignore[attr-defined]
        if is_function:
            self.functions.append(node)
        self.generic_visit(node)
        if is_function:
            self.functions.pop()
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_scope(node, True)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_scope(node, True)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_scope(node, False)

    def visit_Call(self, node: ast.Call) -> None:
        if _call_name(node) in SINKS:
            sql = (
                node.args[0]
                if node.args
                else next((k.value for k in node.keywords if k.arg == "query"), None)
            )
            if sql is not None:
                why = self._formatting(sql)
                if why:
                    self._add(node, f"SQL passed to {_call_name(node)}() is built by {why}")
        self._check_sql_text(node)
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._check_sql_text(node)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._check_sql_text(node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        # sql += x: SQL built piece by piece from a non-constant
        if isinstance(node.op, ast.Add) and not self._static(node.value):
            text = _const_text(node.value)
            if isinstance(node.target, ast.Name) and self.functions:
                text += " ".join(_const_text(v) for v in _assignments(self.functions[-1], node.target.id))
            if SQL_TEXT.search(text):
                self._add(node, f"SQL text extended with {ast.unparse(node.value)!r}")
        self.generic_visit(node)

    def _check_sql_text(self, node: ast.AST) -> None:
        if isinstance(node, ast.Call) and _call_name(node) not in ("format", "join"):
            return
        if isinstance(node, ast.BinOp) and not isinstance(node.op, (ast.Add, ast.Mod)):
            return
        if not SQL_TEXT.search(_const_text(node)):
            return
        why = self._formatting(node)
        if why:
            self._add(node, f"SQL-looking text built by {why}")


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _assignments(function: ast.AST, name: str) -> list[ast.AST]:
    """Every value assigned to the local *name* in *function* (not in nested functions)."""
    out: list[ast.AST] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            out.append(node.value)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            target = node.target
            if isinstance(target, ast.Name) and target.id == name:
                out.append(node.value)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            out.append(node.value)
    return out


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    tree = ast.parse(source)
    scanner = _Scanner(path, tree)
    scanner.visit(tree)
    return sorted(scanner.findings.values(), key=lambda f: f.line)


def scan_package(root: Path) -> list[Finding]:
    """Findings in every ``.py`` file under *root* (paths relative to *root*)."""
    findings: list[Finding] = []
    for file in sorted(root.rglob("*.py")):
        findings.extend(scan_source(file.read_text(encoding="utf-8"), file.relative_to(root).as_posix()))
    return findings

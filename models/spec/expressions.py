"""A small, safe expression language for rules (answers → class) and measures (objects → answer).

Spec files are data that users write, so their expressions must not be able to do anything but
compute a value. An expression is parsed with :mod:`ast` and every node is checked against a
whitelist before it is compiled: literals, names (the variables and functions the caller allows,
plus the loop variables of comprehensions), comparisons, ``and``/``or``/``not``, ``+ - * / // %``,
indexing and slicing, ``x if c else y``, list/tuple literals, calls of allowed functions (keyword
arguments allowed, ``*``/``**`` not), and list/generator comprehensions. Attribute access, ``**``,
lambdas, assignments and everything else are rejected, so no name outside the allow-list (and no
dunder) can ever be reached; evaluation runs with empty ``__builtins__``.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.List,
    ast.Tuple,
    ast.Subscript,
    ast.Slice,
    ast.Call,
    ast.keyword,
    ast.IfExp,
    ast.ListComp,
    ast.GeneratorExp,
    ast.comprehension,
)
_CONSTANT_TYPES = (bool, int, float, str, type(None))


class ExpressionError(ValueError):
    """An expression that does not parse or uses something outside the language."""


@dataclass(frozen=True)
class Expression:
    """A validated, compiled expression.

    ``names`` are the free variables it reads (for a rule: the subquery ids, which the evidence
    trail reports); ``calls`` the functions it calls (with the constant arguments of each call,
    so a caller can check e.g. that object names exist).
    """

    source: str
    names: frozenset[str]
    calls: tuple[tuple[str, tuple[Any, ...]], ...]
    code: CodeType

    def __reduce__(self) -> tuple[Any, ...]:
        # Code objects do not pickle; a spec may cross process boundaries, so rebuild from source.
        return (_rebuild, (self.source, self.names, self.calls))

    def evaluate(self, variables: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]) -> Any:
        """The expression's value; variables and functions go into globals so comprehensions see them."""
        scope: dict[str, Any] = {"__builtins__": {}}
        scope.update(functions)
        scope.update(variables)
        return eval(self.code, scope)


def compile_expression(source: str, *, variables: Collection[str], functions: Collection[str]) -> Expression:
    """Parse and whitelist-check ``source``; raises :class:`ExpressionError` saying what is wrong."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("expected a non-empty expression string")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    checker = _Checker(set(variables), set(functions))
    checker.check(tree.body, frozenset())
    return Expression(
        source=source.strip(),
        names=frozenset(checker.names),
        calls=tuple(checker.calls),
        code=compile(tree, "<expression>", "eval"),
    )


_Calls = tuple[tuple[str, tuple[Any, ...]], ...]


def _rebuild(source: str, names: frozenset[str], calls: _Calls) -> Expression:
    """An already validated expression, compiled again (unpickling)."""
    return Expression(source, names, calls, compile(ast.parse(source, mode="eval"), "<expression>", "eval"))


def is_valid_identifier(name: str) -> bool:
    """Whether ``name`` can be a variable of an expression (an identifier, not a keyword)."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


class _Checker:
    """Walks an expression tree with the names bound by enclosing comprehensions."""

    def __init__(self, variables: set[str], functions: set[str]) -> None:
        self.variables = variables
        self.functions = functions
        self.names: set[str] = set()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def check(self, node: ast.AST, bound: frozenset[str]) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(f"{type(node).__name__} is not allowed ({ast.unparse(node)!r})")
        if isinstance(node, ast.Constant) and not isinstance(node.value, _CONSTANT_TYPES):
            raise ExpressionError(f"constant {node.value!r} is not allowed")
        if isinstance(node, ast.Name):
            self._check_name(node.id, bound)
            return
        if isinstance(node, ast.Call):
            self._check_call(node, bound)
            return
        if isinstance(node, ast.ListComp | ast.GeneratorExp):
            self._check_comprehension(node, bound)
            return
        for child in ast.iter_child_nodes(node):
            self.check(child, bound)

    def _check_name(self, name: str, bound: frozenset[str]) -> None:
        if name in bound or name in self.functions:
            return
        if name not in self.variables:
            known = ", ".join(sorted(self.variables)) or "none"
            raise ExpressionError(f"unknown name {name!r} (known names: {known})")
        self.names.add(name)

    def _check_call(self, node: ast.Call, bound: frozenset[str]) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in self.functions:
            allowed = ", ".join(sorted(self.functions))
            raise ExpressionError(
                f"only these functions may be called: {allowed} (got {ast.unparse(node.func)!r})"
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExpressionError("*args is not allowed")
            self.check(arg, bound)
        for kw in node.keywords:
            if kw.arg is None:
                raise ExpressionError("**kwargs is not allowed")
            self.check(kw.value, bound)
        constants = tuple(_constant(arg) for arg in node.args)
        self.calls.append((node.func.id, constants))

    def _check_comprehension(self, node: ast.ListComp | ast.GeneratorExp, bound: frozenset[str]) -> None:
        inner = set(bound)
        for gen in node.generators:
            if gen.is_async:
                raise ExpressionError("async comprehensions are not allowed")
            self.check(gen.iter, frozenset(inner))
            if not isinstance(gen.target, ast.Name) or not is_valid_identifier(gen.target.id):
                raise ExpressionError(
                    f"a comprehension must bind one plain name (got {ast.unparse(gen.target)!r})"
                )
            inner.add(gen.target.id)
            for cond in gen.ifs:
                self.check(cond, frozenset(inner))
        self.check(node.elt, frozenset(inner))


def _constant(node: ast.AST) -> Any:
    """The value of a literal argument (also a list of literals), or ``None`` for anything else."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None

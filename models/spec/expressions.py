"""A small, safe expression language for rules (answers → class) and measures (objects → answer).

Spec files are data that users write, so their expressions must not be able to do anything but
compute a value. An expression is parsed with :mod:`ast` and every node is checked against a
whitelist before it is compiled: literals, names (the variables and functions the caller allows,
plus the loop variables of comprehensions), comparisons, ``and``/``or``/``not``, ``+ - * / // %``,
indexing and slicing, ``x if c else y``, list/tuple literals, calls of allowed functions (keyword
arguments allowed, ``*``/``**`` not), and list/generator comprehensions. Attribute access, ``**``,
lambdas, assignments and everything else are rejected, so no name outside the allow-list (and no
dunder) can ever be reached; evaluation runs with empty ``__builtins__``.

What an evaluation may *build* is bounded too, because ``[0] * 2000000000`` is a valid expression
that would take 16 GB: the compiled code calls :class:`_Guard` for ``+``, ``-``, ``*`` and ``%``,
slices, every comprehension step and every function call. A sequence made by ``*`` or ``+`` may
hold at most :data:`MAX_SEQUENCE_ITEMS` items (checked before it is made), an integer must stay
within :data:`MAX_INT_BITS` bits, and one evaluation may create or visit at most
:data:`MAX_STEPS` items in all (comprehension steps, copies, the sequences a function reads), so
nested comprehensions cannot multiply their way around the sequence bound either.
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
_SEQUENCES = (list, tuple, str)

MAX_SEQUENCE_ITEMS = 10_000
"""Items of one list, tuple or string made by ``*`` or ``+`` (a real rule joins a few rows of cells)."""
MAX_INT_BITS = 63
"""Integers an expression makes must fit in a signed 64-bit integer: ``abs(n) < 2**63``."""
MAX_STEPS = 1_000_000
"""Items one evaluation may create or visit in all: comprehension steps, copies, function inputs."""

# The names the rewritten code calls; user names cannot start with "_", so they never collide.
_GUARD_NAMES = {ast.Add: "_guard_add", ast.Sub: "_guard_sub", ast.Mult: "_guard_mul", ast.Mod: "_guard_mod"}
_GUARD_ITER, _GUARD_SLICE, _GUARD_CALL = "_guard_iter", "_guard_slice", "_guard_call"


class ExpressionError(ValueError):
    """An expression that does not parse or uses something outside the language."""


class ExpressionLimitError(ExpressionError):
    """An evaluation that would build more than the language allows; raised before the allocation."""


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
        """The expression's value; variables and functions go into globals so comprehensions see them.

        Raises :class:`ExpressionLimitError` when it would build more than the limits allow.
        """
        scope: dict[str, Any] = {"__builtins__": {}}
        scope.update(functions)
        scope.update(variables)
        scope.update(_Guard().names())
        return _bounded_int(eval(self.code, scope))


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
        code=_compile_guarded(tree),
    )


_Calls = tuple[tuple[str, tuple[Any, ...]], ...]


def _rebuild(source: str, names: frozenset[str], calls: _Calls) -> Expression:
    """An already validated expression, compiled again (unpickling)."""
    return Expression(source, names, calls, _compile_guarded(ast.parse(source, mode="eval")))


def _compile_guarded(tree: ast.Expression) -> CodeType:
    """Compile a checked tree with every operation that can build or walk a sequence routed through the guard."""
    guarded = ast.fix_missing_locations(_GuardRewriter().visit(tree))
    return compile(guarded, "<expression>", "eval")


class _GuardRewriter(ast.NodeTransformer):
    """``a * b`` → ``_guard_mul(a, b)``, ``x[i:j]`` → ``_guard_slice(x, i, j, None)``, ``f(x)`` →
    ``_guard_call(f, x)``, and each comprehension's iterable → ``_guard_iter(iterable)``."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        name = _GUARD_NAMES.get(type(node.op))
        return _call(name, [node.left, node.right]) if name else node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.slice, ast.Slice):
            return node
        parts = [part or ast.Constant(None) for part in (node.slice.lower, node.slice.upper, node.slice.step)]
        return _call(_GUARD_SLICE, [node.value, *parts])

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        return ast.Call(func=ast.Name(_GUARD_CALL, ast.Load()), args=[node.func, *node.args], keywords=node.keywords)

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.iter = _call(_GUARD_ITER, [node.iter])
        return node


def _call(name: str, args: list[ast.expr]) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])


def _bounded_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionLimitError(
            f"makes an integer of {value.bit_length()} bits; the limit is {MAX_INT_BITS} bits (abs(n) < 2**63)"
        )
    return value


def _sequence_items(size: int, operation: str) -> None:
    if size > MAX_SEQUENCE_ITEMS:
        raise ExpressionLimitError(
            f"'{operation}' would make a sequence of {size:,} items; the limit is {MAX_SEQUENCE_ITEMS:,}"
        )


class _Guard:
    """The counters of one evaluation and the guarded operations the rewritten code calls."""

    def __init__(self) -> None:
        self.steps = 0

    def names(self) -> dict[str, Callable[..., Any]]:
        return {
            "_guard_add": self.add, "_guard_sub": self.sub, "_guard_mul": self.mul, "_guard_mod": self.mod,
            _GUARD_ITER: self.iterate, _GUARD_SLICE: self.slice, _GUARD_CALL: self.call,
        }

    def charge(self, items: int) -> None:
        self.steps += items
        if self.steps > MAX_STEPS:
            raise ExpressionLimitError(
                f"creates or visits more than {MAX_STEPS:,} items in one evaluation (the limit)"
            )

    def add(self, left: Any, right: Any) -> Any:
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            size = len(left) + len(right)
            _sequence_items(size, "+")
            self.charge(size)
        return _bounded_int(left + right)

    def sub(self, left: Any, right: Any) -> Any:
        return _bounded_int(left - right)

    def mul(self, left: Any, right: Any) -> Any:
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, _SEQUENCES) and isinstance(times, int):
                size = len(sequence) * max(times, 0)
                _sequence_items(size, "*")
                self.charge(size)
        return _bounded_int(left * right)

    def mod(self, left: Any, right: Any) -> Any:
        if isinstance(left, str):
            raise ExpressionLimitError("'%' string formatting is not part of the language")
        return left % right

    def iterate(self, iterable: Any) -> Any:
        for item in iterable:
            self.charge(1)
            yield item

    def slice(self, value: Any, lower: Any, upper: Any, step: Any) -> Any:
        result = value[lower:upper:step]
        self.charge(len(result))
        return result

    def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """A function reads its sequence arguments (charged first) and may return a copy (charged after)."""
        self.charge(sum(len(a) for a in (*args, *kwargs.values()) if isinstance(a, _SEQUENCES)))
        result = function(*args, **kwargs)
        if isinstance(result, _SEQUENCES):
            self.charge(len(result))
        return _bounded_int(result)


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
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            _bounded_int(node.value)
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

"""The functions a rule expression may call.

Besides a few Python builtins, two helpers express the counting rules of cell grids without
comprehensions: ``excess(cells, 1)`` is how many objects are beyond one per cell (the extra
pushpins), ``deficit(cells, 1)`` how many are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def count(values: Iterable[Any], value: Any) -> int:
    """How many items of ``values`` equal ``value`` (e.g. empty cells: ``count(row_1, 0)``)."""
    return sum(1 for v in values if v == value)


def excess(values: Iterable[int], normal: int = 1) -> int:
    """Σ max(n − normal, 0): the objects beyond ``normal`` per cell, added over the cells."""
    return sum(max(int(v) - normal, 0) for v in values)


def total(values: Iterable[Any], start: int | float = 0) -> int | float:
    """``sum`` of numbers only: ``sum(lists, [])`` would join lists inside one call, past the size limits
    that ``+`` checks (``models/spec/expressions.py``)."""
    if not isinstance(start, int | float):
        raise TypeError(f"sum() adds numbers; start must be a number, got {type(start).__name__}")
    return sum(values, start)


def deficit(values: Iterable[int], normal: int = 1) -> int:
    """Σ max(normal − n, 0): the objects missing below ``normal`` per cell, added over the cells."""
    return sum(max(normal - int(v), 0) for v in values)


RULE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "all": all,
    "any": any,
    "count": count,
    "deficit": deficit,
    "excess": excess,
    "len": len,
    "max": max,
    "min": min,
    "sorted": sorted,
    "sum": total,
}

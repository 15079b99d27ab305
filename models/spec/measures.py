"""Functions a subquery's ``measure`` may call: answers computed from the objects of one image.

A measure reads grounded objects (or the generator's annotations), never the image. When the
objects do not hold what a measure needs (no ``box`` to divide into cells, a screw without a
``length_class`` attribute, labels of which one is missing) it raises :class:`NotMeasurable`
and the subquery simply has no measured answer, which is not a contradiction.

Object arguments name objects of the spec (a string, or a list of strings for several kinds).
Attribute values are compared after normalising text (case, spaces and hyphens: ``"too long"``,
``"Too-Long"`` and ``"too_long"`` are the same).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any

from models.objects import ImageObject
from models.spec.expressions import MAX_SEQUENCE_ITEMS, ExpressionLimitError
from models.spec.functions import RULE_FUNCTIONS


class NotMeasurable(Exception):
    """The objects do not hold what a measure needs; the message says what is missing."""


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower().replace("-", "_").replace(" ", "_")
    return value


def _names(labels: str | Sequence[str]) -> list[str]:
    return [labels] if isinstance(labels, str) else list(labels)


def _select(
    objects: Sequence[ImageObject], labels: str | Sequence[str], where: dict[str, Any]
) -> list[ImageObject]:
    """Objects with one of ``labels`` whose attributes match ``where`` (a value or a list of values)."""
    names = set(_names(labels))
    chosen = []
    for obj in objects:
        if obj.label not in names:
            continue
        if all(_attribute_matches(obj, key, wanted) for key, wanted in where.items()):
            chosen.append(obj)
    return chosen


def _attribute_matches(obj: ImageObject, key: str, wanted: Any) -> bool:
    if key not in obj.attributes:
        raise NotMeasurable(f"a {obj.label!r} object has no {key!r} attribute")
    allowed = wanted if isinstance(wanted, list | tuple) else [wanted]
    return _norm(obj.attributes[key]) in {_norm(v) for v in allowed}


def count_of(objects: Sequence[ImageObject], label: str | Sequence[str], **where: Any) -> int:
    """How many objects carry ``label`` (and the attribute values in ``where``)."""
    return len(_select(objects, label, where))


def present(objects: Sequence[ImageObject], label: str | Sequence[str], **where: Any) -> bool:
    """Whether at least one such object is there."""
    return count_of(objects, label, **where) > 0


def grid(objects: Sequence[ImageObject], label: str, container: str, rows: int, cols: int) -> list[list[int]]:
    """Objects per cell when the container's bbox is split into ``rows`` × ``cols`` equal cells.

    An object belongs to the cell of its centroid; centroids just outside the container's box
    (a box found a little too small) count in the nearest cell. With several container objects
    the largest one is the container.
    """
    if rows * cols > MAX_SEQUENCE_ITEMS:
        raise ExpressionLimitError(
            f"grid() of {rows} x {cols} cells would hold {rows * cols:,} cells; the limit is {MAX_SEQUENCE_ITEMS:,}"
        )
    containers = _select(objects, container, {})
    if not containers:
        raise NotMeasurable(f"no {container!r} object to divide into cells")
    holder = max(containers, key=lambda o: o.area).bbox
    cells = [[0] * cols for _ in range(rows)]
    for obj in _select(objects, label, {}):
        row, col = cell_of(obj.centroid, holder, rows, cols)
        cells[row][col] += 1
    return cells


def cell_of(point: Sequence[float], bbox: Sequence[int], rows: int, cols: int) -> tuple[int, int]:
    """``(row, col)`` (from 0) of the cell holding ``point`` when ``bbox`` is split into equal cells;
    a point just outside the box counts in the nearest cell."""
    x0, y0, x1, y1 = bbox
    col = min(max(int((point[0] - x0) * cols // max(x1 - x0, 1)), 0), cols - 1)
    row = min(max(int((point[1] - y0) * rows // max(y1 - y0, 1)), 0), rows - 1)
    return row, col


def attribute_values(objects: Sequence[ImageObject], label: str, key: str) -> list[Any]:
    """The attribute ``key`` of every ``label`` object, from left to right (by centroid x)."""
    chosen = sorted(_select(objects, label, {}), key=lambda o: o.centroid[0])
    missing = [o for o in chosen if key not in o.attributes]
    if missing:
        raise NotMeasurable(f"a {label!r} object has no {key!r} attribute")
    return [o.attributes[key] for o in chosen]


def _mean_centroid(objects: Sequence[ImageObject], labels: str | Sequence[str], axis: int) -> float:
    chosen = _select(objects, labels, {})
    if not chosen:
        raise NotMeasurable(f"no {' or '.join(_names(labels))} object")
    return sum(o.centroid[axis] for o in chosen) / len(chosen)


def above(objects: Sequence[ImageObject], upper: str | Sequence[str], lower: str | Sequence[str]) -> bool:
    """Whether the ``upper`` objects' mean centroid lies above the ``lower`` objects' one."""
    return _mean_centroid(objects, upper, 1) < _mean_centroid(objects, lower, 1)


def left_of(objects: Sequence[ImageObject], left: str | Sequence[str], right: str | Sequence[str]) -> bool:
    """Whether the ``left`` objects' mean centroid lies left of the ``right`` objects' one."""
    return _mean_centroid(objects, left, 0) < _mean_centroid(objects, right, 0)


OBJECT_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "above": above,
    "attribute_values": attribute_values,
    "count_of": count_of,
    "grid": grid,
    "left_of": left_of,
    "present": present,
}
# Positional arguments that name objects, so a spec can be checked for unknown object names.
OBJECT_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "above": (0, 1),
    "attribute_values": (0,),
    "count_of": (0,),
    "grid": (0, 1),
    "left_of": (0, 1),
    "present": (0,),
}
MEASURE_FUNCTION_NAMES = frozenset(RULE_FUNCTIONS) | frozenset(OBJECT_FUNCTIONS)
# Functions whose keyword arguments are attribute keys (``count_of("screw", length_class="long")``).
SELECTING = frozenset({"count_of", "present"})


@cache
def attribute_reads(source: str) -> tuple[tuple[str, str], ...]:
    """The ``(object, attribute)`` pairs a measure expression reads, from its literal arguments.

    ``count_of``/``present`` read their keyword names, ``attribute_values`` its second argument; a
    call whose object argument is not a literal reads nothing that can be checked.
    """
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return ()
    reads: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or not node.args:
            continue
        labels = _literal_names(node.args[0])
        keys: list[str] = []
        if node.func.id in SELECTING:
            keys = [kw.arg for kw in node.keywords if kw.arg]
        elif node.func.id == "attribute_values" and len(node.args) > 1:
            key = _literal_names(node.args[1])
            keys = key[:1] if len(key) == 1 else []
        reads += [(label, key) for label in labels for key in keys]
    return tuple(dict.fromkeys(reads))


def _literal_names(node: ast.AST) -> list[str]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return []
    values = value if isinstance(value, list | tuple) else [value]
    return [v for v in values if isinstance(v, str)]


def measure_functions(objects: Sequence[ImageObject]) -> dict[str, Callable[..., Any]]:
    """The functions a measure may call, bound to one image's objects."""
    bound = {name: partial(func, list(objects)) for name, func in OBJECT_FUNCTIONS.items()}
    return {**RULE_FUNCTIONS, **bound}

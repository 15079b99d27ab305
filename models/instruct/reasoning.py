"""Chain-of-thought templates: reasoning over the grounded objects that ends in the true answer.

The paper's fine-grained CoT cites bounding boxes in pixels of the original image ("there are 6
yellow pushpins in the first row … The positions of each pushpin are respectively
[65,78,249,191],… The distribution is [2,1,1,1,1].", "the cable runs from position (189, 387)
to (802, 394) …"), with templates per reasoning type: direction, distance, size, counting, other.

What a template says is read from the subquery's ``measure`` where it has one, so reasoning and
answer come from the same computation and cannot disagree:

* ``grid(label, container, rows, cols)[r]`` — the objects in row ``r`` and the distribution;
* ``count_of(label, …)`` — every object of the label, and those the answer counts;
* ``present(label)`` — the objects found, or that there are none;
* ``left_of(a, b)`` / ``above(a, b)`` — the groups' boxes, mean centres and their order;
* ``attribute_values(label, key)`` — the objects from left to right and their values;
* any other measure — the template of the subquery's reasoning type, then the attributes the
  measure reads, stated as observations: the terminal each cable end enters (Fig. 4a: "It is
  connected to the 3rd terminal of a 5-terminal connector, and the other end to the 2nd terminal
  of a 5-terminal connector."), which separator is missing, how full the bottle is.

A measure that cannot be computed on these objects (a screw without its ``length_class``) makes
the chain fall back to its reasoning type's template, which claims nothing the objects do not
show. Which objects an answer counts is found by measuring the subquery on each object alone (with the
subquery's container objects): an object counts when adding it raises the answer by one.

Subqueries without a measure get the template of their reasoning type: the objects the subquery
names with their boxes and what the grounding's attribute stage read on them (a cable "red,
plugged into the 3rd terminal on the left and free on the right", a label "on the upper part,
off centre"), so the observation that decides the answer is stated; absent objects are not
mentioned (without a measure an absence is not verified, and a missed label must not read as "no
label" before the answer "Yes"); then geometry the type is about (where an elongated object such as
a cable runs, how far an object's centre is from its container's, how large objects are).

``boxes=False`` (the paper's ablation "reasoning without coordinates") writes the same chains with
every coordinate left out. ``trusted=False`` is for a row whose answer the grounding contradicts
(kept under the ``keep_label_answer`` policy): it cites no object, only the answer.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import cv2
import numpy as np

from models.grounding.attributes import PROVIDERS
from models.objects import ImageObject, rle_decode
from models.spec import ScenarioSpec, SubquerySpec, format_answer, measure
from models.spec.parsing import ORDINAL_WORDS

ORDINALS = tuple(ORDINAL_WORDS)  # "first" … "tenth", in order
ELONGATED = 3.0  # length / width of the rotated box above which an object is a line (cable, screw)


@dataclass(frozen=True)
class MeasureShape:
    """What a measure computes, read from its source: the outer call, its literal arguments, and
    the subscript applied to it (``grid(...)[0]``)."""

    func: str | None
    args: tuple[Any, ...] = ()
    index: int | None = None


@cache
def measure_shape(source: str) -> MeasureShape:
    """The shape of a measure expression (``func`` None for composite expressions)."""
    node = ast.parse(source, mode="eval").body
    index = None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        index, node = node.slice.value, node.value
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return MeasureShape(None)
    args = tuple(_literal(a) for a in node.args)
    return MeasureShape(node.func.id, args, index if isinstance(index, int) else None)


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None


# --- words -------------------------------------------------------------------------------------------


def plural(name: str) -> str:
    """``pushpin`` → ``pushpins``, ``banana chip`` → ``banana chips``; mass nouns stay."""
    if name.endswith(("s", "juice")):
        return name
    return name + "s"


def noun(spec: ScenarioSpec, label: str, n: int) -> str:
    """The object's name for ``n`` of them, with its colour when that is one plain word (yellow pushpins)."""
    colour = next((o.colour for o in spec.objects if o.name == label), None)
    word = label if n == 1 else plural(label)
    if colour and colour.isalpha():
        return f"{colour} {word}"
    return word


def box(b: Sequence[int]) -> str:
    """A box as the paper writes it: ``[65,78,249,191]``."""
    return "[" + ",".join(str(int(v)) for v in b) + "]"


def point(p: Sequence[float]) -> str:
    return f"({round(p[0])}, {round(p[1])})"


BOX_TEXT = re.compile(r"\[(\d+),(\d+),(\d+),(\d+)\]")
"""A box as :func:`box` writes it."""
POINT_TEXT = re.compile(r"\((\d+), (\d+)\)")
"""A point as :func:`point` writes it."""


def rescale_positions(text: str, scale_x: float, scale_y: float) -> str:
    """``text`` with every box and point (as :func:`box` and :func:`point` write them) scaled per axis.

    Targets cite positions in the original image's pixels; the model reads them in the frame of the
    image it is given (:mod:`models.vlm.encoding` converts there). Distances in px stay as measured.
    """
    if scale_x == 1 and scale_y == 1:
        return text

    def scaled(values: list[str]) -> list[int]:
        return [round(int(v) * (scale_x if i % 2 == 0 else scale_y)) for i, v in enumerate(values)]

    text = BOX_TEXT.sub(lambda m: box(scaled(list(m.groups()))), text)
    return POINT_TEXT.sub(lambda m: point(scaled(list(m.groups()))), text)


def nth(n: int) -> str:
    """``1`` → ``1st``, ``2`` → ``2nd``, ``3`` → ``3rd``, ``11`` → ``11th``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _words(value: Any) -> str:
    return str(value).replace("_", " ")


def _cells(pair: Sequence[Sequence[int]]) -> str:
    """``[[1, 2], [1, 3]]`` → ``the 3rd and 4th compartments of the 2nd row`` (cells count from 0)."""
    (r1, c1), (r2, c2) = pair
    if r1 == r2:
        return f"the {nth(c1 + 1)} and {nth(c2 + 1)} compartments of the {nth(r1 + 1)} row"
    return f"the {nth(r1 + 1)} and {nth(r2 + 1)} rows in the {nth(c1 + 1)} column"


def _ends(ends: Sequence[int | None]) -> str:
    """``[3, 2]`` → ``plugged into the 3rd terminal on the left and the 2nd terminal on the right``."""
    parts = [f"the {nth(t)} terminal on the {side}" if t is not None else f"free on the {side}"
             for t, side in zip(ends, ("left", "right"), strict=False)]  # fmt: skip
    if all(p.startswith("free") for p in parts):
        return "free at both ends"
    if not any(p.startswith("free") for p in parts):
        return "plugged into " + " and ".join(parts)
    return " and ".join(p if p.startswith("free") else f"plugged into {p}" for p in parts)


# Words for an attribute value, as the attribute stage writes it (``None``: nothing worth saying).
PHRASES: dict[str, Callable[[Any], str | None]] = {
    "colour": _words,
    "fruit": _words,
    "length_class": _words,
    "clamps": lambda v: f"with {v} clamps",
    "side": lambda v: f"on the {v}",
    "position": lambda v: {"top": "on the upper part", "bottom": "on the lower part"}.get(v, _words(v)),
    "centred": lambda v: "centred" if v else "off centre",
    "cell": lambda v: f"in the {nth(v[1] + 1)} compartment of the {nth(v[0] + 1)} row",
    "terminals": _ends,
    "separators_complete": lambda v: "complete, with every separator in place" if v else None,
    "missing_separators": lambda v: " and ".join(f"missing the separator between {_cells(p)}" for p in v) or None,
    "fill": lambda v: {"just right": "filled to the normal level", "too much": "filled too high",
                       "too little": "filled too low"}.get(v, _words(v)),
    "amount": lambda v: {"just right": "a normal amount"}.get(v, _words(v)),
}


def describe(obj: ImageObject, spec: ScenarioSpec | None = None, keys: Sequence[str] | None = None) -> str:
    """Words for what the attribute stage read on an object (``red``, ``with 5 clamps``, ``on the left``):
    the attributes its spec object declares (or ``keys``), so extra keys a source carries stay out."""
    if keys is None:
        keys = spec.object(obj.label).attributes if spec is not None and obj.label in spec.object_names else ()
    words = []
    for key in keys:
        value = obj.attributes.get(key)
        phrase = PHRASES[key](value) if key in PHRASES and value is not None else None
        if phrase:
            words.append(phrase)
    return ", ".join(words)


class Writer:
    """Sentences of one chain; coordinates only when ``boxes`` is on."""

    def __init__(self, boxes: bool, spec: ScenarioSpec | None = None) -> None:
        self.boxes = boxes
        self.spec = spec
        self.sentences: list[str] = []

    def say(self, text: str) -> None:
        self.sentences.append(text[0].upper() + text[1:])

    def at(self, objects: Sequence[ImageObject], described: bool = False, keys: Sequence[str] | None = None) -> str:
        """`` at [..] (red), [..]``; without boxes `` (red)`` or nothing. ``keys``: the attributes to
        describe (default: all the spec declares, when ``described``)."""
        if keys is not None:
            words = [describe(o, self.spec, keys) for o in objects]
        else:
            words = [describe(o, self.spec) if described else "" for o in objects]
        if self.boxes and objects:
            cited = (box(o.bbox) + (f" ({w})" if w else "") for o, w in zip(objects, words, strict=True))
            return " at " + ", ".join(cited)
        known = [w for w in words if w]
        return f" ({', '.join(known)})" if known else ""

    def text(self) -> str:
        return " ".join(self.sentences)


# --- geometry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Measured facts of one object's mask: its rotated box, and its ends and length along its
    path when it is a line (half the outline of a thin band)."""

    length: float
    width: float
    ends: tuple[tuple[float, float], tuple[float, float]] | None
    path_length: float


@lru_cache(maxsize=4096)
def _geometry(height: int, width: int, counts: str) -> Geometry:
    mask = rle_decode({"size": [height, width], "counts": counts})
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    (_, _), (w, h), _ = cv2.minAreaRect(points)
    length, width = max(w, h), max(min(w, h), 1.0)
    if length / width < ELONGATED:
        return Geometry(float(length), float(width), None, float(length))
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    t = (points - centre) @ vt[0]
    first, last = points[int(t.argmin())], points[int(t.argmax())]
    if first[0] > last[0]:
        first, last = last, first
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    path = max(cv2.arcLength(c, True) for c in contours) / 2.0  # a thin band's outline runs along it twice
    return Geometry(float(length), float(width), ((float(first[0]), float(first[1])), (float(last[0]), float(last[1]))),
                    max(path, float(length)))


def geometry(obj: ImageObject) -> Geometry:
    """The object's :class:`Geometry` (cached by mask)."""
    height, width = (int(v) for v in obj.mask_rle["size"])
    return _geometry(height, width, obj.mask_rle["counts"])


_UNSET = object()


# --- which objects an answer counts --------------------------------------------------------------------


def counted(spec: ScenarioSpec, sub: SubquerySpec, objects: Sequence[ImageObject]) -> list[ImageObject]:
    """The objects that each raise the subquery's measured answer by one (see the module docstring)."""
    context = [o for o in objects if o.label in _containers(spec, sub)]
    base = _total(measure(spec, context).get(sub.id))
    if base is None:
        return []
    out = []
    for obj in sorted(objects, key=lambda o: (o.centroid[0], o.centroid[1])):  # cited left to right
        if obj.label in sub.objects and obj.label not in _containers(spec, sub):
            value = _total(measure(spec, [*context, obj]).get(sub.id))
            if value is not None and value - base == 1:
                out.append(obj)
    return out


def _containers(spec: ScenarioSpec, sub: SubquerySpec) -> set[str]:
    return {o.name for o in spec.objects if not o.countable and o.name in sub.objects}


def _total(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, list):
        return sum(value)
    return value if isinstance(value, int) else None


# --- the chains ------------------------------------------------------------------------------------------


def think(
    spec: ScenarioSpec,
    sub: SubquerySpec,
    value: Any,
    objects: Sequence[ImageObject],
    boxes: bool = True,
    trusted: bool = True,
) -> str:
    """The reasoning (without tags) for ``sub`` on an image with ``objects`` whose true answer is ``value``."""
    answer = format_answer(sub, value)
    w = Writer(boxes, spec)
    if not trusted:
        names = ", ".join(plural(n) for n in sub.objects) or "objects"
        w.say(f"looking at the {names} in the picture, the answer is {answer}.")
        return w.text()
    # The measure's template only where the measure gives this answer on these objects: a screw
    # without its length class must not be "0 of them among the long screws" before the answer 1.
    measured = sub.id in spec.measures and measure(spec, objects).get(sub.id, _UNSET) == value
    shape = measure_shape(spec.measures[sub.id][0].source) if measured else MeasureShape(None)
    if shape.func == "grid" and shape.index is not None:
        _grid(w, spec, sub, shape, objects, answer)
        return w.text()
    handler = {"count_of": _count, "present": _present, "left_of": _order, "above": _order,
               "attribute_values": _values}.get(shape.func or "")  # fmt: skip
    if handler is None or not handler(w, spec, sub, shape, objects):
        reads = spec.attribute_reads().get(sub.id, []) if measured else []
        _by_type(w, spec, sub, objects, read={k for _, key in reads for k in _family(key)})
        _observations(w, spec, reads, objects)
    if not w.sentences:
        w.say("observe the picture carefully.")
    w.say(f"so the answer is {answer}.")
    return w.text()


def _of(objects: Sequence[ImageObject], labels: Any) -> list[ImageObject]:
    names = {labels} if isinstance(labels, str) else set(labels or ())
    return sorted((o for o in objects if o.label in names), key=lambda o: (o.centroid[0], o.centroid[1]))


def _grid(w: Writer, spec: ScenarioSpec, sub: SubquerySpec, shape: MeasureShape,
          objects: Sequence[ImageObject], answer: str) -> None:
    """The paper's dense-grid chain: the row's objects, their boxes, the distribution."""
    label, container, rows, cols = shape.args[:4]
    holder = max(_of(objects, container), key=lambda o: o.area, default=None)
    items = counted(spec, sub, objects)
    row = ORDINALS[shape.index] if shape.index < len(ORDINALS) else f"row {shape.index + 1}"
    if holder is not None:
        w.say(f"the {container}{w.at([holder])} is divided into {rows} rows and {cols} columns.")
    w.say(f"observe carefully, there are {len(items)} {noun(spec, label, len(items))} in the {row} row "
          f"of the {container} in the picture.")
    if items and w.boxes:
        w.say(f"the positions of each {label} are respectively {','.join(box(o.bbox) for o in items)}.")
    w.say(f"the distribution is {answer}.")


def _count(w: Writer, spec: ScenarioSpec, sub: SubquerySpec, shape: MeasureShape,
           objects: Sequence[ImageObject]) -> bool:
    label = shape.args[0] if shape.args else None
    if not isinstance(label, str):
        return False
    every, items = _of(objects, label), counted(spec, sub, objects)
    if not every:
        w.say(f"observe carefully, I find no {label} in the picture.")
        return True
    w.say(f"observe carefully, there {'is' if len(every) == 1 else 'are'} {len(every)} "
          f"{noun(spec, label, len(every))} in the picture.")
    if len(items) == len(every):
        if w.boxes:
            w.say(f"the positions of each {label} are respectively {','.join(box(o.bbox) for o in every)}.")
        return True
    kind = sub.keywords[0] if sub.keywords else f"{plural(label)} the question asks about"
    listing = w.at(every, described=True)
    if listing:
        w.say(f"they are{listing}.")
    w.say(f"{len(items)} of them {'is' if len(items) == 1 else 'are'} among the {kind}{w.at(items)}.")
    return True


def _present(w: Writer, spec: ScenarioSpec, sub: SubquerySpec, shape: MeasureShape,
             objects: Sequence[ImageObject]) -> bool:
    label = shape.args[0] if shape.args else None
    found = _of(objects, label)
    names = label if isinstance(label, str) else " or ".join(label or ())
    if not found:
        w.say(f"observe carefully, I find no {names} in the picture.")
    elif not _countable(spec, found[0].label):
        w.say(f"I can see the {found[0].label}{w.at(found, described=True) or ' in the picture'}.")
    else:
        first = found[0].label
        w.say(f"I can see {len(found)} {noun(spec, first, len(found))}{w.at(found, described=True)}.")
    return True


def _countable(spec: ScenarioSpec, label: str) -> bool:
    return next((o.countable for o in spec.objects if o.name == label), True)


def _order(w: Writer, spec: ScenarioSpec, sub: SubquerySpec, shape: MeasureShape,
           objects: Sequence[ImageObject]) -> bool:
    first, second = _of(objects, shape.args[0]), _of(objects, shape.args[1])
    if not first or not second:
        return False
    axis = 0 if shape.func == "left_of" else 1
    a, b = (float(np.mean([o.centroid[axis] for o in g])) for g in (first, second))
    coord = "x" if axis == 0 else "y"
    words = (("left of", "right of") if axis == 0 else ("above", "below"))[0 if a < b else 1]
    if w.boxes:
        for group, centre in ((first, a), (second, b)):
            w.say(f"the {_group_name(group)} {_verb(group, 'is', 'are')} at {','.join(box(o.bbox) for o in group)}, "
                  f"centred at {coord} = {round(centre)}.")
    w.say(f"the {_group_name(first)} {_verb(first, 'lies', 'lie')} {words} the {_group_name(second)}.")
    return True


def _group_name(group: Sequence[ImageObject]) -> str:
    """``nectarine and tangerines``: each label once, plural where it has several objects."""
    counts: dict[str, int] = {}
    for o in group:
        counts[o.label] = counts.get(o.label, 0) + 1
    return " and ".join(plural(n) if k > 1 else n for n, k in counts.items())


def _verb(group: Sequence[ImageObject], one: str, many: str) -> str:
    return one if len(group) == 1 else many


def _values(w: Writer, spec: ScenarioSpec, sub: SubquerySpec, shape: MeasureShape,
            objects: Sequence[ImageObject]) -> bool:
    label, key = (*shape.args, None, None)[:2]
    found = _of(objects, label)
    if not found or not all(key in o.attributes for o in found):
        return False
    values = " and ".join(str(o.attributes[key]) for o in found)
    where = f" at {' and '.join(box(o.bbox) for o in found)}" if w.boxes else ""
    w.say(f"from left to right, the {plural(label)}{where} have {values} {key.replace('_', ' ')}.")
    return True


def _by_type(
    w: Writer, spec: ScenarioSpec, sub: SubquerySpec, objects: Sequence[ImageObject], read: set[str] | None = None
) -> None:
    """The template of the subquery's reasoning type, over the objects it names, each with what the
    attribute stage read on it (less the attributes in ``read``, which :func:`_observations` states)."""
    groups = [(name, _of(objects, name)) for name in sub.objects]
    for name, found in groups:  # absence is not claimed: without a measure it is not verified
        if not found:
            continue
        keys = [k for k in spec.object(name).attributes if k not in (read or set())]
        where = w.at(found, keys=keys) or " in the picture"
        if len(found) == 1:
            w.say(f"the {name} is{where}.")
        else:
            w.say(f"I see {plural(name)}{where}.")
    present = [(name, found) for name, found in groups if found]
    if sub.reasoning_type in ("direction", "distance"):
        _lines(w, present, distance=sub.reasoning_type == "distance")
    if sub.reasoning_type == "distance":
        _offsets(w, spec, present)
    if sub.reasoning_type == "size":
        _sizes(w, spec, present)


def _observations(
    w: Writer, spec: ScenarioSpec, reads: Sequence[tuple[str, str]], objects: Sequence[ImageObject]
) -> None:
    """State the attributes a measure read, the facts its answer follows from: each object's value and
    those written with it (which separator is missing), and for a cable's terminals Fig. 4a's sentence."""
    said: set[tuple[str, str]] = set()
    for label, key in reads:
        family = _family(key)
        if (label, family[0]) in said:
            continue
        said.add((label, family[0]))
        found = _of(objects, label)
        for obj in found:
            if key == "terminals":
                _terminals(w, spec, obj, objects)
                continue
            words = describe(obj, spec, [k for k in family if k in spec.object(label).attributes])
            if words:  # one object of a kind was just cited with its box: no need to repeat it
                where = f" at {box(obj.bbox)}" if w.boxes and len(found) > 1 else ""
                w.say(f"the {label}{where} is {words}.")


def _family(key: str) -> tuple[str, ...]:
    """The attributes written together with ``key`` (``separators_complete`` and ``missing_separators``)."""
    return PROVIDERS[key].attributes if key in PROVIDERS else (key,)


def _terminals(w: Writer, spec: ScenarioSpec, cable: ImageObject, objects: Sequence[ImageObject]) -> None:
    """Fig. 4a's sentence: "It is connected to the 3rd terminal of a 5-terminal connector, and the other
    end is connected to the 2nd terminal of a 5-terminal connector. The connection positions on both
    ends do not match." """
    ends = cable.attributes.get("terminals")
    if not isinstance(ends, list | tuple) or len(ends) != 2:
        return
    holders = [o for o in objects if "clamps" in o.attributes and "clamps" in spec.object(o.label).attributes]
    parts = []
    for end, side in zip(ends, ("left", "right"), strict=True):
        if end is None:
            parts.append(f"its {side} end is not plugged into a connector")
            continue
        holder = next((o for o in holders if o.attributes.get("side", _side(o, cable)) == side), None)
        of = "a connector"
        if holder is not None:
            where = f" at {box(holder.bbox)}" if w.boxes else ""
            of = f"the {holder.attributes['clamps']}-terminal {holder.label}{where}"
        parts.append(f"its {side} end is connected to the {nth(int(end))} terminal of {of}")
    w.say(", and ".join(parts) + ".")
    if None not in ends:
        match = "match" if ends[0] == ends[1] else "do not match"
        w.say(f"the connection positions on both ends {match} ({nth(int(ends[0]))} and {nth(int(ends[1]))}).")


def _side(holder: ImageObject, cable: ImageObject) -> str:
    """Which end of the cable a connector without a ``side`` holds: the one on its side of the cable."""
    return "left" if holder.centroid[0] < cable.centroid[0] else "right"


def _lines(w: Writer, present: list[tuple[str, list[ImageObject]]], distance: bool) -> None:
    """Where each elongated object (a cable) runs, and for distance how far its ends are apart."""
    if not w.boxes:
        return
    for name, found in present:
        for obj in found:
            g = geometry(obj)
            if g.ends is None or obj.label not in _line_labels(present):
                continue
            start, end = g.ends
            text = f"the {name} runs from position {point(start)} to {point(end)}"
            if distance:
                gap = float(np.hypot(end[0] - start[0], end[1] - start[1]))
                text += f"; its ends are {round(gap)} px apart and it is about {round(g.path_length)} px long"
            w.say(text + ".")


def _line_labels(present: list[tuple[str, list[ImageObject]]]) -> set[str]:
    """Labels whose objects are all elongated (a cable, not a bottle that happens to be tall)."""
    return {name for name, found in present if all(geometry(o).ends is not None for o in found)}


def _offsets(w: Writer, spec: ScenarioSpec, present: list[tuple[str, list[ImageObject]]]) -> None:
    """How far the first object's centre lies from its container's (a label on its bottle)."""
    holders = [found[0] for name, found in present if name in {o.name for o in spec.objects if not o.countable}]
    items = [found[0] for name, found in present if found[0] not in holders]
    if not holders or not items or not w.boxes:
        return
    item, holder = items[0], max(holders, key=lambda o: o.area)
    dx = item.centroid[0] - (holder.bbox[0] + holder.bbox[2]) / 2
    side = "right of" if dx > 0 else "left of"
    w.say(f"the centre of the {item.label} is at {point(item.centroid)}, {abs(round(dx))} px {side} the "
          f"centre line of the {holder.label}.")


def _sizes(w: Writer, spec: ScenarioSpec, present: list[tuple[str, list[ImageObject]]]) -> None:
    """Each object's extent, and how much of its container's height a filling object covers."""
    if not w.boxes:
        return
    for name, found in present:
        sizes = []
        for obj in found:
            g = geometry(obj)
            sizes.append(f"{round(g.length)} px long" if g.ends is not None else f"{obj.width}x{obj.height} px")
        w.say(f"the {plural(name) if len(found) > 1 else name} {'are' if len(found) > 1 else 'is'} "
              f"{', '.join(sizes)}.")
    holders = {o.name for o in spec.objects if not o.countable}
    tall = [found[0] for name, found in present if name in holders]
    if len(tall) >= 2:
        inner, outer = sorted(tall, key=lambda o: o.area)[:2]
        share = inner.height / max(outer.height, 1)
        w.say(f"the {inner.label} reaches up to y = {inner.bbox[1]} and covers {round(100 * share)}% of the "
              f"{outer.label}'s height.")

"""screw_bag: a bag with 2 washers, 2 nuts, a long and a short screw.

Each kind has its own colour (steel-blue screws, brass nuts, copper washers) and shape, so a
classical segmenter tells them apart. Screw lengths follow the design's classes relative to the
normal long screw L; ``length_class`` goes into the screw's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.synth.canvas import (
    Canvas,
    Occupancy,
    Shape,
    dilate,
    disc,
    erode,
    jitter,
    polygon,
    polylines,
    rotated_rect_points,
    rounded_rect,
)

BACKGROUND = (62, 68, 78)
BAG = (88, 96, 108)
SEAL = (112, 120, 132)
SCREW = (170, 186, 208)
THREAD = (140, 156, 182)
NUT = (214, 168, 60)
WASHER = (196, 110, 70)

#: Length relative to the normal long screw, per class (design.md).
LENGTHS = {"very short": 0.35, "too short": 0.5, "short": 0.65, "long": 1.0, "too long": 1.3}
LONG = ("long", "too long")
SHORT = ("short", "too short")

# Each defect as (operation, part, new part): change a part's class, add one, or remove one.
EDITS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "screw_too_long": (("change", "long", "too long"),),
    "screw_too_short": (("change", "short", "too short"),),
    "1_very_short_screw": (("change", "short", "very short"),),
    "2_very_short_screws": (("change", "long", "very short"), ("change", "short", "very short")),
    "1_additional_long_screw": (("add", "", "long"),),
    "1_additional_short_screw": (("add", "", "short"),),
    "1_additional_nut": (("add", "", "nut"),),
    "2_additional_nuts": (("add", "", "nut"), ("add", "", "nut")),
    "1_additional_washer": (("add", "", "washer"),),
    "2_additional_washers": (("add", "", "washer"), ("add", "", "washer")),
    "1_missing_long_screw": (("remove", "long", ""),),
    "1_missing_short_screw": (("remove", "short", ""),),
    "1_missing_nut": (("remove", "nut", ""),),
    "2_missing_nuts": (("remove", "nut", ""), ("remove", "nut", "")),
    "1_missing_washer": (("remove", "washer", ""),),
    "2_missing_washers": (("remove", "washer", ""), ("remove", "washer", "")),
}


@dataclass
class Part:
    """One part of the bag: ``kind`` is a screw length class, ``nut`` or ``washer``."""

    kind: str
    defect: str = ""  # the defect that changed, added or removed it
    drawn: bool = True


def draw(canvas: Canvas, defects: frozenset[str]) -> dict[str, Any]:
    """Draw the bag and its parts with the requested defects; returns the scene facts."""
    rng = canvas.rng
    canvas.fill(jitter(rng, BACKGROUND, 4))
    inside = _draw_bag(canvas)
    parts = _plan_parts(defects)
    length = canvas.px(430) * rng.uniform(0.97, 1.03)
    occupancy = Occupancy(canvas.shape, rng)
    # Big parts first: random sequential placement fills the bag more reliably that way.
    order = sorted(parts, key=lambda p: -LENGTHS.get(p.kind, 0.0))
    for part in order:
        shape = occupancy.place(
            lambda at, p=part: _candidate(canvas, p.kind, length, at), inside, canvas.gap(16), 0.1 * length
        )
        if part.drawn:
            _paint(canvas, part, shape)
        if part.defect:
            canvas.mark(part.defect, shape.mask if part.drawn else dilate(shape.mask, 2))
    return _facts(parts)


def _plan_parts(defects: frozenset[str]) -> list[Part]:
    parts = [Part(k) for k in ("long", "short", "nut", "nut", "washer", "washer")]
    for defect in sorted(defects):
        for op, old, new in EDITS[defect]:
            if op == "add":
                parts.append(Part(new, defect))
                continue
            target = next(p for p in parts if p.kind == old and p.drawn and not p.defect)
            target.defect = defect
            if op == "change":
                target.kind = new
            else:
                target.drawn = False
    return parts


def _facts(parts: list[Part]) -> dict[str, Any]:
    kinds = [p.kind for p in parts if p.drawn]
    length = "right"
    if "too long" in kinds:
        length = "too long"
    elif "too short" in kinds:
        length = "too short"
    return {
        "long_screws": sum(k in LONG for k in kinds),
        "short_screws": sum(k in SHORT for k in kinds),
        "very_short_screws": kinds.count("very short"),
        "screw_length": length,
        "nuts": kinds.count("nut"),
        "washers": kinds.count("washer"),
        "parts": kinds,
    }


def _draw_bag(canvas: Canvas) -> np.ndarray:
    """Paint the (unannotated) bag and return the region where parts may lie."""
    rng = canvas.rng
    h, w = canvas.shape
    mx = w * rng.uniform(0.05, 0.08)
    my = h * rng.uniform(0.05, 0.08)
    bag = rounded_rect(canvas.shape, mx, my, w - mx, h - my, canvas.px(60))
    canvas.paint(bag, jitter(rng, BAG, 4), relief=0.1)
    seal_h = canvas.px(50)
    seal = bag & (np.arange(h)[:, None] < my + seal_h)
    canvas.paint(seal, jitter(rng, SEAL, 4))
    below_seal = np.broadcast_to(np.arange(h)[:, None] >= my + 2 * seal_h, canvas.shape)
    return erode(bag, canvas.gap(30)) & below_seal


def _candidate(canvas: Canvas, kind: str, length: float, at: tuple[float, float]) -> Shape:
    """A part of ``kind`` centred ``at``, at a random angle; ``length`` is the normal long screw's."""
    rng = canvas.rng
    centre = np.asarray(at)
    angle = rng.uniform(0, 360)
    if kind == "nut":
        return _nut(canvas, centre, angle, 0.12 * length)
    if kind == "washer":
        return _washer(canvas, centre, 0.125 * length)
    return _screw(canvas, centre, angle, LENGTHS[kind] * length * rng.uniform(0.98, 1.02), length)


def _screw(canvas: Canvas, centre: np.ndarray, angle: float, total: float, unit: float) -> Shape:
    """A screw seen from the side: a flat head, a threaded shank and a pointed tip."""
    a = np.deg2rad(angle)
    u = np.array([np.cos(a), np.sin(a)])
    n = np.array([-u[1], u[0]])
    start = centre - total / 2 * u
    head_len, head_w, shank_w, tip = 0.08 * unit, 0.2 * unit, 0.095 * unit, 0.06 * unit
    head = polygon(
        canvas.shape, rotated_rect_points(tuple(start + head_len / 2 * u), (head_len, head_w), angle)
    )
    shank_end = start + (total - tip) * u
    shank_len = total - tip - head_len
    shank_c = start + (head_len + shank_len / 2) * u
    shank = polygon(canvas.shape, rotated_rect_points(tuple(shank_c), (shank_len + 1, shank_w), angle))
    point = polygon(
        canvas.shape, [shank_end + shank_w / 2 * n, shank_end - shank_w / 2 * n, start + total * u]
    )
    # Thread strokes stop short of the edges, so the shank stays one connected region of screw colour.
    pitch = 0.045 * unit
    lines = [
        [start + d * u - 0.28 * shank_w * n, start + (d + 0.3 * pitch) * u + 0.28 * shank_w * n]
        for d in np.arange(head_len + pitch, total - tip, pitch)
    ]
    threads = polylines(canvas.shape, lines, max(1, round(0.012 * unit)))
    body = shank | point
    parts = {"head": head & ~body, "shank": body, "threads": threads & body}
    return Shape(head | body, parts, {"length": total, "angle": angle})


def _nut(canvas: Canvas, centre: np.ndarray, angle: float, radius: float) -> Shape:
    """A hexagonal nut with a round hole (the hole is not part of the nut's pixels)."""
    a = np.deg2rad(angle) + np.arange(6) * np.pi / 3
    hexagon = polygon(canvas.shape, centre + radius * np.stack([np.cos(a), np.sin(a)], 1))
    hole = disc(canvas.shape, tuple(centre), 0.48 * radius)
    return Shape(hexagon & ~hole)


def _washer(canvas: Canvas, centre: np.ndarray, radius: float) -> Shape:
    """A flat ring."""
    ring = disc(canvas.shape, tuple(centre), radius) & ~disc(canvas.shape, tuple(centre), 0.5 * radius)
    return Shape(ring)


def _paint(canvas: Canvas, part: Part, shape: Shape) -> None:
    rng = canvas.rng
    if part.kind == "nut":
        canvas.paint(shape.mask, jitter(rng, NUT, 6), relief=0.3)
        canvas.add("nut", shape.mask)
    elif part.kind == "washer":
        canvas.paint(shape.mask, jitter(rng, WASHER, 6), relief=0.25)
        canvas.add("washer", shape.mask)
    else:
        colour = jitter(rng, SCREW, 5)
        canvas.paint(shape.parts["shank"], colour, relief=0.3)
        canvas.paint(shape.parts["threads"], jitter(rng, THREAD, 4))
        canvas.paint(shape.parts["head"], colour, relief=0.2)
        canvas.add(
            "screw",
            shape.mask,
            length_class=part.kind,
            length_px=round(shape.info["length"], 1),
            angle_deg=round(shape.info["angle"], 1),
        )

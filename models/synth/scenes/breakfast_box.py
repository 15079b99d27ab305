"""breakfast_box: a white two-compartment box, fruit on the left, cereals with toppings on the right.

Fruit are laid out in "slots" of the normal scene (1 nectarine, 2 tangerines); a count defect
turns slots into the other fruit, empties them, or adds slots, and marks exactly the slots it
changed. Toppings lie on the cereals (their masks lie inside the cereals' mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from models.synth.canvas import (
    Canvas,
    Occupancy,
    Shape,
    dilate,
    disc,
    ellipse,
    erode,
    jitter,
    polygon,
    rect,
    rounded_rect,
)

BACKGROUND = (52, 54, 58)
BOX = (206, 206, 200)
FLOOR = (234, 234, 228)
NECTARINE = (196, 32, 72)
TANGERINE = (242, 132, 22)
STEM = (96, 110, 40)
CEREALS = (188, 146, 90)
CHIP = (240, 220, 120)
CHIP_CENTRE = (226, 204, 110)
ALMOND = (128, 76, 40)

FRUIT_RADIUS = {"nectarine": 150.0, "tangerine": 124.0}  # pixels of the real image
CHIP_RADIUS, ALMOND_AXES = 34.0, (30.0, 17.0)
FRUIT_COUNT_DEFECTS = {
    "2_nectarines_1_tangerine": (2, 1),
    "1_nectarine_1_tangerine": (1, 1),
    "0_nectarines_2_tangerines": (0, 2),
    "0_nectarines_3_tangerines": (0, 3),
    "3_nectarines_0_tangerines": (3, 0),
    "0_nectarines_1_tangerine": (0, 1),
    "0_nectarines_0_tangerines": (0, 0),
    "0_nectarines_4_tangerines": (0, 4),
}


@dataclass
class Slot:
    """A fruit place: the fruit drawn there (None: left empty) and the defect that changed it."""

    fruit: str | None
    defect: str = ""


def draw(canvas: Canvas, defects: frozenset[str]) -> dict[str, Any]:
    """Draw the box, fruit, cereals and toppings with the requested defects; returns the facts."""
    rng = canvas.rng
    canvas.fill(jitter(rng, BACKGROUND, 4))
    left, right = _draw_box(canvas)
    swapped = "compartments_swapped" in defects
    fruit_side, cereal_side = (right, left) if swapped else (left, right)
    if swapped:
        canvas.mark("compartments_swapped", left | right)
    occupancy = Occupancy(canvas.shape, rng)
    facts = _draw_cereals(canvas, occupancy, cereal_side, fruit_side, defects, swapped)
    facts.update(_draw_fruit(canvas, occupancy, fruit_side, defects, "right" if swapped else "left"))
    facts["fruit_left_cereals_right"] = not swapped
    return facts


def _draw_box(canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Paint the box; return the floors of its left and right compartments."""
    rng = canvas.rng
    h, w = canvas.shape
    bw, bh = canvas.px(1440) * rng.uniform(0.98, 1.02), canvas.px(1120) * rng.uniform(0.98, 1.02)
    x0 = (w - bw) / 2 + rng.uniform(-1, 1) * canvas.px(30)
    y0 = (h - bh) / 2 + rng.uniform(-1, 1) * canvas.px(30)
    x1, y1 = x0 + bw, y0 + bh
    rim, divider = canvas.px(40), canvas.px(20)
    canvas.paint(rounded_rect(canvas.shape, x0, y0, x1, y1, canvas.px(60)), jitter(rng, BOX, 4), relief=0.1)
    mid = (x0 + x1) / 2
    r = canvas.px(40)
    left = rounded_rect(canvas.shape, x0 + rim, y0 + rim, mid - divider, y1 - rim, r)
    right = rounded_rect(canvas.shape, mid + divider, y0 + rim, x1 - rim, y1 - rim, r)
    floor = jitter(rng, FLOOR, 4)
    canvas.paint(left, floor, relief=0.06)
    canvas.paint(right, floor, relief=0.06)
    return left, right


def _blob(canvas: Canvas, centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """An irregular, roughly elliptical heap."""
    rng = canvas.rng
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + sum(rng.uniform(0, 0.04) * np.cos(k * t + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 7))
    xs = centre[0] + radii[0] * wobble * np.cos(t)
    ys = centre[1] + radii[1] * wobble * np.sin(t)
    return polygon(canvas.shape, np.stack([xs, ys], 1))


def _cereal_region(
    canvas: Canvas, side: np.ndarray, other: np.ndarray, amount: str, swapped: bool
) -> np.ndarray:
    """The cereal heap: filling the compartment, a thin patch, or spilling over the divider."""
    rng = canvas.rng
    x, y, w, h = _bounds(side)
    cx, cy = x + w / 2, y + h / 2
    if amount == "too little":
        fx, fy = rng.uniform(0.24, 0.3), rng.uniform(0.18, 0.24)
        cx += rng.uniform(-0.15, 0.15) * w
        cy += rng.uniform(-0.2, 0.2) * h
        return _blob(canvas, (cx, cy), (fx * w, fy * h)) & erode(side, canvas.gap())
    if amount == "too much":
        spill = rng.uniform(0.25, 0.35) * w
        toward = 1 if swapped else -1  # the divider is on the fruit side
        cx += toward * spill / 2
        inner = erode(side | other | _between(canvas, side, other), canvas.gap())
        return _blob(canvas, (cx, cy), (0.5 * w + spill / 2, 0.45 * h)) & inner
    return _blob(canvas, (cx, cy), (rng.uniform(0.42, 0.45) * w, rng.uniform(0.42, 0.45) * h)) & erode(
        side, canvas.gap()
    )


def _between(canvas: Canvas, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The divider strip between two compartments (within their common rows)."""
    ax, ay, aw, ah = _bounds(a)
    bx, by, bw, bh = _bounds(b)
    x0, x1 = min(ax + aw, bx + bw), max(ax, bx)
    if x0 > x1:
        x0, x1 = x1, x0
    return rect(canvas.shape, x0, max(ay, by), x1, min(ay + ah, by + bh))


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """x, y, width, height of a mask's bounding box."""
    return cv2.boundingRect(mask.view(np.uint8))


def _draw_cereals(
    canvas: Canvas,
    occupancy: Occupancy,
    side: np.ndarray,
    fruit_side: np.ndarray,
    defects: frozenset[str],
    swapped: bool,
) -> dict[str, Any]:
    rng = canvas.rng
    amount = "just right"
    if "overflow" in defects:
        amount = "too much"
    elif "underflow" in defects:
        amount = "too little"
    heap = _cereal_region(canvas, side, fruit_side, amount, swapped)
    cereals_present = not ({"missing_cereals", "missing_cereals_and_toppings"} & defects)
    side_name = "left" if swapped else "right"
    if cereals_present:
        canvas.paint(heap, jitter(rng, CEREALS, 5), relief=0.2, grain=0.09)
        canvas.add("cereals", heap, side=side_name, amount=amount)
    else:
        name = "missing_cereals" if "missing_cereals" in defects else "missing_cereals_and_toppings"
        canvas.mark(name, heap)
    occupancy.take(heap, canvas.gap())
    if amount == "too much":
        canvas.mark("overflow", heap & ~side)
    elif amount == "too little":
        canvas.mark("underflow", erode(side, canvas.gap()) & ~heap)
    toppings = {"chips": 0, "almonds": 0}
    if "missing_cereals_and_toppings" not in defects:
        toppings = _draw_toppings(canvas, heap if cereals_present else side, defects)
    return {
        "cereals_present": cereals_present,
        "cereal_amount": amount if cereals_present else None,
        "banana_chips": toppings["chips"],
        "almonds": toppings["almonds"],
    }


def _draw_toppings(canvas: Canvas, ground: np.ndarray, defects: frozenset[str]) -> dict[str, int]:
    """Banana chips and almonds on ``ground`` (the cereals, or the bare floor); missing ones are marked."""
    rng = canvas.rng
    chips, almonds = int(rng.integers(4, 7)), int(rng.integers(4, 7))
    ratio_kind = ""
    if "wrong_ratio" in defects:
        major, minor = int(rng.integers(10, 13)), int(rng.integers(2, 4))
        ratio_kind = "banana chip" if rng.random() < 0.5 else "almond"
        chips, almonds = (major, minor) if ratio_kind == "banana chip" else (minor, major)
    no_chips = bool({"missing_bananas", "missing_toppings"} & defects)
    no_almonds = bool({"missing_almonds", "missing_toppings"} & defects)
    region = erode(ground, canvas.gap(8))
    placed = Occupancy(canvas.shape, rng)
    kinds = ["banana chip"] * chips + ["almond"] * almonds
    clearance = canvas.px(ALMOND_AXES[1])
    for i in rng.permutation(len(kinds)):
        kind = kinds[int(i)]
        shape = placed.place(lambda at, k=kind: _topping(canvas, k, at), region, canvas.gap(8), clearance)
        missing = no_chips if kind == "banana chip" else no_almonds
        if missing:
            defect = (
                "missing_toppings"
                if "missing_toppings" in defects
                else ("missing_bananas" if kind == "banana chip" else "missing_almonds")
            )
            canvas.mark(defect, dilate(shape.mask, 2))
            continue
        _paint_topping(canvas, kind, shape)
        canvas.add(kind, shape.mask)
        if kind == ratio_kind:
            canvas.mark("wrong_ratio", shape.mask)
    return {"chips": 0 if no_chips else chips, "almonds": 0 if no_almonds else almonds}


def _topping(canvas: Canvas, kind: str, centre: tuple[float, float]) -> Shape:
    rng = canvas.rng
    if kind == "banana chip":
        r = canvas.px(CHIP_RADIUS) * rng.uniform(0.9, 1.1)
        return Shape(disc(canvas.shape, centre, r), {"centre": disc(canvas.shape, centre, 0.45 * r)})
    axes = (
        canvas.px(ALMOND_AXES[0]) * rng.uniform(0.9, 1.1),
        canvas.px(ALMOND_AXES[1]) * rng.uniform(0.9, 1.1),
    )
    return Shape(ellipse(canvas.shape, centre, axes, rng.uniform(0, 180)))


def _paint_topping(canvas: Canvas, kind: str, shape: Shape) -> None:
    rng = canvas.rng
    if kind == "banana chip":
        canvas.paint(shape.mask, jitter(rng, CHIP, 4), relief=0.15)
        canvas.paint(shape.parts["centre"], jitter(rng, CHIP_CENTRE, 4), alpha=0.6)
    else:
        canvas.paint(shape.mask, jitter(rng, ALMOND, 5), relief=0.3)


def _plan_slots(defects: frozenset[str]) -> list[Slot]:
    """The normal three slots, changed to the requested fruit counts (changes are marked)."""
    slots = [Slot("nectarine"), Slot("tangerine"), Slot("tangerine")]
    name = next((d for d in defects if d in FRUIT_COUNT_DEFECTS), None)
    if name is None:
        return slots
    want = dict(zip(("nectarine", "tangerine"), FRUIT_COUNT_DEFECTS[name], strict=True))
    have = {"nectarine": 1, "tangerine": 2}
    for kind, other in (("nectarine", "tangerine"), ("tangerine", "nectarine")):
        while have[kind] > want[kind] and have[other] < want[other]:
            slot = next(s for s in slots if s.fruit == kind and not s.defect)
            slot.fruit, slot.defect = other, name
            have[kind] -= 1
            have[other] += 1
    for kind in ("nectarine", "tangerine"):
        while have[kind] > want[kind]:
            slot = next(s for s in slots if s.fruit == kind and not s.defect)
            slot.fruit, slot.defect = None, name
            have[kind] -= 1
        while have[kind] < want[kind]:
            slots.append(Slot(kind, name))
            have[kind] += 1
    return slots


def _draw_fruit(
    canvas: Canvas, occupancy: Occupancy, side: np.ndarray, defects: frozenset[str], side_name: str
) -> dict[str, int]:
    rng = canvas.rng
    slots = _plan_slots(defects)
    region = erode(side, canvas.gap())
    counts = {"nectarines": 0, "tangerines": 0}
    for slot in slots:
        # A slot is as big as a nectarine, so either fruit fits where the normal scene had one.
        radius = canvas.px(FRUIT_RADIUS["nectarine"]) * rng.uniform(0.97, 1.03)
        place = occupancy.place(
            lambda at, r=radius: Shape(disc(canvas.shape, at, r), info={"centre": at}),
            region,
            canvas.gap(),
            clearance=radius,
        )
        centre = place.info["centre"]
        if slot.fruit is None:
            canvas.mark(slot.defect, place.mask)
            continue
        fruit = _fruit(canvas, slot.fruit, centre)
        if slot.defect:
            canvas.mark(slot.defect, fruit | place.mask)
        canvas.add(slot.fruit, fruit, side=side_name)
        counts[slot.fruit + "s"] += 1
    return counts


def _fruit(canvas: Canvas, kind: str, centre: tuple[float, float]) -> np.ndarray:
    """Paint a nectarine or a tangerine at ``centre``; returns its mask."""
    rng = canvas.rng
    r = canvas.px(FRUIT_RADIUS[kind]) * rng.uniform(0.95, 1.0)
    axes = (r, r * rng.uniform(0.92, 1.0))
    mask = ellipse(canvas.shape, centre, axes, rng.uniform(0, 180))
    if kind == "nectarine":
        canvas.paint(mask, jitter(rng, NECTARINE, 6), relief=0.35, grain=0.03)
    else:
        canvas.paint(mask, jitter(rng, TANGERINE, 6), relief=0.3, grain=0.05)
        stem = disc(
            canvas.shape,
            (centre[0] + rng.uniform(-0.2, 0.2) * r, centre[1] + rng.uniform(-0.2, 0.2) * r),
            max(1.0, 0.08 * r),
        )
        canvas.paint(stem & mask, jitter(rng, STEM, 4))
    return mask

"""juice_bottle: a glass bottle with juice, a fruit label (with icon) on top, a text label below.

Labels are narrower than the body, so the juice stays one connected region around them and its
level can be read at the sides. Juice colour and icon belong together: orange juice with an
orange icon, pale yellow juice with a banana, dark red juice with cherries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.synth.canvas import (
    Canvas,
    dilate,
    disc,
    ellipse,
    erode,
    jitter,
    polygon,
    polyline,
    rect,
    rotated_rect_points,
)

BACKGROUND = (26, 27, 30)
GLASS = (146, 164, 170)
GLASS_INSIDE = (64, 74, 80)
HIGHLIGHT = (235, 240, 245)
FRUIT_LABEL = (242, 242, 236)
TEXT_LABEL = (204, 220, 242)
TEXT = (44, 50, 72)
JUICES = {"orange": (242, 150, 46), "banana": (236, 222, 150), "cherry": (112, 14, 32)}
ORANGE_ICON = (228, 100, 12)
BANANA_ICON = (250, 202, 22)
CHERRY_ICON = (184, 20, 42)
LEAF = (62, 150, 52)

# Bottle profile in pixels of the real 1600×800 image (y from the top of the lip).
BODY_W, LIP_W, NECK_W = 430.0, 200.0, 160.0
LIP_H, NECK_H, SHOULDER_H, BODY_H = 30.0, 230.0, 140.0, 840.0
FRUIT_LABEL_SIZE = (0.64 * BODY_W, 190.0)
TEXT_LABEL_SIZE = (0.64 * BODY_W, 150.0)
TOP_LABEL_Y, BOTTOM_LABEL_Y = 0.28, 0.72  # label centres as fractions of the body height


@dataclass
class Bottle:
    """Where the bottle lies, in pixels of this image."""

    cx: float
    top: float  # top of the lip
    neck_base: float  # where the neck meets the shoulder: the normal fill level
    body_top: float
    bottom: float
    silhouette: np.ndarray
    interior: np.ndarray


def draw(canvas: Canvas, defects: frozenset[str]) -> dict[str, Any]:
    """Draw the bottle, juice, labels and icon with the requested defects; returns the facts."""
    rng = canvas.rng
    canvas.fill(jitter(rng, BACKGROUND, 3))
    bottle = _bottle(canvas)
    juice_type = str(rng.choice(list(JUICES)))
    fill = _draw_glass_and_juice(canvas, bottle, juice_type, defects)
    fruit = juice_type
    if "wrong_juice_type" in defects:
        fruit = str(rng.choice([f for f in JUICES if f != juice_type]))
    facts: dict[str, Any] = {"juice_type": juice_type, "fill_level": fill, "icon_fruit": None}
    facts.update(_draw_top_label(canvas, bottle, fruit, defects))
    _draw_bottom_label(canvas, bottle, defects)
    facts.update(
        top_label_present="missing_top_label" not in defects,
        bottom_label_present="missing_bottom_label" not in defects,
        labels_in_order="swapped_labels" not in defects,
        top_label_centred="misplaced_label_top" not in defects,
        bottom_label_centred="misplaced_label_bottom" not in defects,
    )
    return facts


def _draw_top_label(canvas: Canvas, bottle: Bottle, fruit: str, defects: frozenset[str]) -> dict[str, Any]:
    """The fruit label (normally on top) with its icon; returns the icon facts."""
    if "missing_top_label" in defects:
        normal = _label_pose(canvas, bottle, "top", False)
        canvas.mark("missing_top_label", _label_mask(canvas, normal, FRUIT_LABEL_SIZE))
        return {"fruit_icon_present": False, "fruit_icon_centred": None, "juice_matches_icon": None}
    swapped = "swapped_labels" in defects
    misplaced = "misplaced_label_top" in defects
    pose = _label_pose(canvas, bottle, "bottom" if swapped else "top", misplaced)
    facts = _draw_fruit_label(canvas, pose, fruit, defects, swapped)
    if misplaced:
        canvas.mark("misplaced_label_top", _label_mask(canvas, pose, FRUIT_LABEL_SIZE))
    return facts


def _draw_bottom_label(canvas: Canvas, bottle: Bottle, defects: frozenset[str]) -> None:
    """The text label (normally below)."""
    if "missing_bottom_label" in defects:
        normal = _label_pose(canvas, bottle, "bottom", False)
        canvas.mark("missing_bottom_label", _label_mask(canvas, normal, TEXT_LABEL_SIZE))
        return
    swapped = "swapped_labels" in defects
    misplaced = "misplaced_label_bottom" in defects
    slot = "top" if swapped else "bottom"
    mask = _draw_text_label(canvas, _label_pose(canvas, bottle, slot, misplaced), slot, misplaced)
    if swapped:
        canvas.mark("swapped_labels", mask)
    if misplaced:
        canvas.mark("misplaced_label_bottom", mask)


def _bottle(canvas: Canvas) -> Bottle:
    rng = canvas.rng
    h, w = canvas.shape
    s = canvas.scale
    cx = w / 2 + rng.uniform(-1, 1) * canvas.px(25)
    top = h / 2 - (LIP_H + NECK_H + SHOULDER_H + BODY_H) * s / 2 + rng.uniform(-1, 1) * canvas.px(30)
    neck_base = top + (LIP_H + NECK_H) * s
    body_top = neck_base + SHOULDER_H * s
    bottom = body_top + BODY_H * s
    # Right half of the profile, top to bottom; the left half mirrors it.
    right = [(LIP_W / 2, 0.0), (LIP_W / 2, LIP_H), (NECK_W / 2, LIP_H), (NECK_W / 2, LIP_H + NECK_H)]
    for t in np.linspace(0, 1, 9)[1:]:
        half = NECK_W / 2 + (BODY_W - NECK_W) / 2 * (0.5 - 0.5 * np.cos(np.pi * t))
        right.append((half, LIP_H + NECK_H + SHOULDER_H * t))
    end = LIP_H + NECK_H + SHOULDER_H + BODY_H
    corner = 50.0
    for a in np.linspace(0, np.pi / 2, 6):
        right.append((BODY_W / 2 - corner + corner * np.cos(a), end - corner + corner * np.sin(a)))
    profile = np.array(right) * s
    points = np.concatenate([profile, (profile * [-1, 1])[::-1]]) + np.array([cx, top])
    silhouette = polygon(canvas.shape, points)
    interior = erode(silhouette, max(2, round(canvas.px(12))))
    return Bottle(cx, top, neck_base, body_top, bottom, silhouette, interior)


def _draw_glass_and_juice(canvas: Canvas, bottle: Bottle, juice_type: str, defects: frozenset[str]) -> str:
    """Paint glass and juice, mark fill-level defects, and return the fill level answer."""
    rng = canvas.rng
    h = canvas.shape[0]
    rows = np.arange(h)[:, None]
    canvas.paint(bottle.silhouette, jitter(rng, GLASS, 4), relief=0.25)
    canvas.paint(bottle.interior, jitter(rng, GLASS_INSIDE, 4))
    normal_level = bottle.neck_base + rng.uniform(-1, 1) * canvas.px(8)
    level, fill = normal_level, "just right"
    if "wrong_fill_level_too_much" in defects:
        level, fill = bottle.top + canvas.px(rng.uniform(50, 100)), "too much"
    elif "wrong_fill_level_not_enough" in defects:
        body_h = bottle.bottom - bottle.body_top
        level, fill = bottle.body_top + body_h * rng.uniform(0.15, 0.4), "too little"
    normal = bottle.interior & (rows >= normal_level)
    juice = bottle.interior & (rows >= level)
    bottle_attrs = {"neck_base_y": round(bottle.neck_base, 1)}
    if "empty_bottle" in defects:
        canvas.mark("empty_bottle", normal)
        fill = "too little"
    else:
        canvas.paint(juice, jitter(rng, JUICES[juice_type], 5), relief=0.15)
    _draw_highlight(canvas, bottle)
    canvas.add("bottle", bottle.silhouette, **bottle_attrs)
    if "empty_bottle" not in defects:
        canvas.add("juice", juice, fruit=juice_type, fill=fill, level_y=round(float(level), 1))
    if fill == "too much":
        canvas.mark("wrong_fill_level_too_much", juice & ~normal)
    elif "wrong_fill_level_not_enough" in defects:
        canvas.mark("wrong_fill_level_not_enough", normal & ~juice)
    return fill


def _draw_highlight(canvas: Canvas, bottle: Bottle) -> None:
    """A faint vertical reflection on the glass (part of the bottle, drawn over the juice)."""
    s = canvas.scale
    x = bottle.cx - BODY_W * s * 0.36
    strip = rect(canvas.shape, x, bottle.body_top + 40 * s, x + max(2, 22 * s), bottle.bottom - 60 * s)
    canvas.paint(strip & bottle.interior, HIGHLIGHT, alpha=0.22)


def _label_pose(canvas: Canvas, bottle: Bottle, slot: str, misplaced: bool) -> tuple[float, float, float]:
    """Centre (x, y) and tilt of a label in ``slot``; a misplaced one is shifted sideways or tilted."""
    rng = canvas.rng
    body_h = bottle.bottom - bottle.body_top
    y = bottle.body_top + body_h * (TOP_LABEL_Y if slot == "top" else BOTTOM_LABEL_Y)
    x, tilt = bottle.cx, rng.uniform(-1, 1)
    x += rng.uniform(-1, 1) * canvas.px(4)
    if misplaced:
        if rng.random() < 0.5:
            x += rng.choice([-1, 1]) * canvas.px(BODY_W) * rng.uniform(0.12, 0.15)
        else:
            tilt = rng.choice([-1, 1]) * rng.uniform(9, 14)
    return x, y, tilt


def _label_mask(canvas: Canvas, pose: tuple[float, float, float], size: tuple[float, float]) -> np.ndarray:
    x, y, tilt = pose
    return polygon(canvas.shape, rotated_rect_points((x, y), (canvas.px(size[0]), canvas.px(size[1])), tilt))


def _draw_fruit_label(
    canvas: Canvas,
    pose: tuple[float, float, float],
    fruit: str,
    defects: frozenset[str],
    swapped: bool,
) -> dict[str, Any]:
    """Paint the fruit label and its icon, mark icon defects; returns the icon facts."""
    rng = canvas.rng
    label = _label_mask(canvas, pose, FRUIT_LABEL_SIZE)
    canvas.paint(label, jitter(rng, FRUIT_LABEL, 3), relief=0.08)
    position = "bottom" if swapped else "top"
    canvas.add("fruit label", label, position=position, centred="misplaced_label_top" not in defects)
    if swapped:
        canvas.mark("swapped_labels", label)
    x, y, tilt = pose
    radius = canvas.px(0.3 * FRUIT_LABEL_SIZE[1])
    normal_icon = _icon(canvas, fruit, (x, y), radius, tilt)[0]
    if "missing_fruit_icon" in defects:
        canvas.mark("missing_fruit_icon", dilate(normal_icon, 2))
        return {"fruit_icon_present": False, "fruit_icon_centred": None, "juice_matches_icon": None}
    centred = "misplaced_fruit_icon" not in defects
    centre = (x, y)
    if not centred:
        a = np.deg2rad(tilt)
        dx = rng.choice([-1, 1]) * canvas.px(FRUIT_LABEL_SIZE[0]) * rng.uniform(0.24, 0.27)
        dy = rng.uniform(-0.1, 0.1) * canvas.px(FRUIT_LABEL_SIZE[1])
        centre = (x + dx * np.cos(a) - dy * np.sin(a), y + dx * np.sin(a) + dy * np.cos(a))
    icon, parts = _icon(canvas, fruit, centre, radius, tilt)
    for colour, part in parts:
        canvas.paint(part, jitter(rng, colour, 5), relief=0.25)
    canvas.add("fruit icon", icon, fruit=fruit, centred=centred)
    if not centred:
        canvas.mark("misplaced_fruit_icon", icon | normal_icon)
    if "wrong_juice_type" in defects:
        canvas.mark("wrong_juice_type", icon)
    return {
        "icon_fruit": fruit,
        "fruit_icon_present": True,
        "fruit_icon_centred": centred,
        "juice_matches_icon": "wrong_juice_type" not in defects,
    }


def _icon(
    canvas: Canvas, fruit: str, centre: tuple[float, float], r: float, tilt: float
) -> tuple[np.ndarray, list[tuple[tuple[float, float, float], np.ndarray]]]:
    """The icon's mask and its coloured parts (painted in order)."""
    shape = canvas.shape
    cx, cy = centre
    a = np.deg2rad(tilt)

    def at(dx: float, dy: float) -> tuple[float, float]:
        return cx + dx * np.cos(a) - dy * np.sin(a), cy + dx * np.sin(a) + dy * np.cos(a)

    thin = max(1, round(0.12 * r))
    if fruit == "orange":
        body = disc(shape, at(0, 0.1 * r), 0.85 * r)
        leaf = ellipse(shape, at(0.25 * r, -0.8 * r), (0.3 * r, 0.14 * r), tilt - 25)
        parts = [(ORANGE_ICON, body), (LEAF, leaf & ~body)]
    elif fruit == "banana":
        crescent = disc(shape, at(0, 0), 0.95 * r) & ~disc(shape, at(0.35 * r, -0.4 * r), 0.9 * r)
        parts = [(BANANA_ICON, crescent)]
    else:
        # Two overlapping cherries (one red region) on short stems.
        cherries = disc(shape, at(-0.45 * r, 0.35 * r), 0.52 * r) | disc(
            shape, at(0.45 * r, 0.35 * r), 0.52 * r
        )
        stems = polyline(shape, [at(-0.4 * r, 0.0), at(0.1 * r, -0.55 * r), at(0.4 * r, 0.0)], thin)
        parts = [(CHERRY_ICON, cherries), (LEAF, stems & ~cherries)]
    mask = np.zeros(shape, bool)
    for _, part in parts:
        mask |= part
    return mask, parts


def _draw_text_label(
    canvas: Canvas, pose: tuple[float, float, float], slot: str, misplaced: bool
) -> np.ndarray:
    """Paint the text label with a few lines of 'text'; returns its mask."""
    rng = canvas.rng
    label = _label_mask(canvas, pose, TEXT_LABEL_SIZE)
    canvas.paint(label, jitter(rng, TEXT_LABEL, 3), relief=0.08)
    x, y, tilt = pose
    a = np.deg2rad(tilt)
    lw, lh = canvas.px(TEXT_LABEL_SIZE[0]), canvas.px(TEXT_LABEL_SIZE[1])
    thickness = max(1, round(lh * 0.1))
    for i, frac in enumerate((-0.25, 0.02, 0.26)):
        half = lw * (0.36 if i == 0 else rng.uniform(0.2, 0.32))
        dy = frac * lh
        p0 = (x - half * np.cos(a) - dy * np.sin(a), y - half * np.sin(a) + dy * np.cos(a))
        p1 = (x + half * np.cos(a) - dy * np.sin(a), y + half * np.sin(a) + dy * np.cos(a))
        canvas.paint(polyline(canvas.shape, [p0, p1], thickness) & label, jitter(rng, TEXT, 4))
    canvas.add("text label", label, position=slot, centred=not misplaced)
    return label

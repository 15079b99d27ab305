"""pushpins: a 3×5 compartment box, one yellow pin per compartment.

The box is axis-aligned so that the design's grid (its bbox split into 3 equal rows and 5 equal
columns) is exactly the compartments; every pin lies wholly inside its compartment, so its
centroid is in its cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.synth.canvas import Canvas, Occupancy, Shape, disc, jitter, polygon, rect, rotated_rect_points

ROWS, COLS = 3, 5
BACKGROUND = (34, 36, 42)
FLOOR = (150, 156, 164)
WALL = (214, 218, 224)
PIN = (238, 198, 36)
PIN_BODY = (222, 178, 28)
PIN_RADIUS = 38.0  # head radius in pixels of the real image


def draw(canvas: Canvas, defects: frozenset[str]) -> dict[str, Any]:
    """Draw the box and its pins with the requested defects; returns the scene facts."""
    rng = canvas.rng
    canvas.fill(jitter(rng, BACKGROUND, 4))
    box = _box_geometry(canvas)
    extra, missing = _plan_counts(rng, defects)
    missing_wall = _pick_wall(rng) if "missing_separator" in defects else None
    _draw_box(canvas, box, missing_wall)
    counts = np.ones((ROWS, COLS), int)
    occupancy = Occupancy(canvas.shape, rng)
    clearance = 0.9 * canvas.px(PIN_RADIUS)
    for r in range(ROWS):
        for c in range(COLS):
            cell = _cell_interior(canvas, box, r, c)
            if (r, c) == missing:
                counts[r, c] = 0
                canvas.mark("missing_pushpin", cell)
                continue
            n_extra, defect = extra.get((r, c), (0, ""))
            counts[r, c] += n_extra
            for i in range(1 + n_extra):
                pin = occupancy.place(lambda at: _pin(canvas, at), cell, canvas.gap(12), clearance)
                _paint_pin(canvas, pin, r, c)
                if i > 0:  # the pins after the first are the additional ones
                    canvas.mark(defect, pin.mask)
    return {
        "counts": counts.tolist(),
        "pushpins": int(counts.sum()),
        "separators_complete": missing_wall is None,
        "missing_wall": list(missing_wall) if missing_wall else None,
    }


def _plan_counts(
    rng: np.random.Generator, defects: frozenset[str]
) -> tuple[dict[tuple[int, int], tuple[int, str]], tuple[int, int] | None]:
    """Cells with extra pins (count and defect name) and the empty cell, all distinct."""
    cells = [(int(i) // COLS, int(i) % COLS) for i in rng.permutation(ROWS * COLS)]
    extra: dict[tuple[int, int], tuple[int, str]] = {}
    missing = cells.pop() if "missing_pushpin" in defects else None
    if "1_additional_pushpin" in defects:
        extra[cells.pop()] = (1, "1_additional_pushpin")
    if "2_additional_pushpins" in defects:
        if rng.random() < 0.5:
            extra[cells.pop()] = (2, "2_additional_pushpins")
        else:
            extra[cells.pop()] = (1, "2_additional_pushpins")
            extra[cells.pop()] = (1, "2_additional_pushpins")
    return extra, missing


def _box_geometry(canvas: Canvas) -> tuple[int, int, int, int]:
    """Integer bbox [x0, y0, x1, y1) of the box, jittered in size and position."""
    h, w = canvas.shape
    rng = canvas.rng
    bw = canvas.px(1400) * rng.uniform(0.98, 1.02)
    bh = canvas.px(800) * rng.uniform(0.98, 1.02)
    x0 = (w - bw) / 2 + rng.uniform(-1, 1) * canvas.px(50)
    y0 = (h - bh) / 2 + rng.uniform(-1, 1) * canvas.px(40)
    return round(x0), round(y0), round(x0 + bw), round(y0 + bh)


def _walls(canvas: Canvas, box: tuple[int, int, int, int]) -> dict[tuple[str, int, int], np.ndarray]:
    """Interior wall segments: ("v", row, col) is left of cell (row, col); ("h", row, col) above it."""
    x0, y0, x1, y1 = box
    cw, ch = (x1 - x0) / COLS, (y1 - y0) / ROWS
    t = _wall_half(canvas)
    walls = {}
    for r in range(ROWS):
        for c in range(1, COLS):
            x = x0 + c * cw
            walls[("v", r, c)] = rect(canvas.shape, x - t, y0 + r * ch, x + t, y0 + (r + 1) * ch)
    for r in range(1, ROWS):
        for c in range(COLS):
            y = y0 + r * ch
            walls[("h", r, c)] = rect(canvas.shape, x0 + c * cw, y - t, x0 + (c + 1) * cw, y + t)
    return walls


def _wall_half(canvas: Canvas) -> float:
    return max(1.5, canvas.px(8))


def _frame(canvas: Canvas) -> float:
    return max(3.0, canvas.px(26))


def _pick_wall(rng: np.random.Generator) -> tuple[str, int, int]:
    keys = [("v", r, c) for r in range(ROWS) for c in range(1, COLS)]
    keys += [("h", r, c) for r in range(1, ROWS) for c in range(COLS)]
    return keys[int(rng.integers(len(keys)))]


def _draw_box(
    canvas: Canvas, box: tuple[int, int, int, int], missing_wall: tuple[str, int, int] | None
) -> None:
    rng = canvas.rng
    x0, y0, x1, y1 = box
    whole = rect(canvas.shape, x0, y0, x1, y1)
    f = _frame(canvas)
    canvas.paint(whole, jitter(rng, WALL, 5))
    canvas.paint(rect(canvas.shape, x0 + f, y0 + f, x1 - f, y1 - f), jitter(rng, FLOOR, 5), relief=0.15)
    wall_colour = jitter(rng, WALL, 5)
    for key, wall in _walls(canvas, box).items():
        if key == missing_wall:
            canvas.mark("missing_separator", wall)
        else:
            canvas.paint(wall, wall_colour)
    canvas.add("box", whole, rows=ROWS, cols=COLS, separators_complete=missing_wall is None,
               missing_separators=[_separated_cells(missing_wall)] if missing_wall else [])


def _separated_cells(wall: tuple[str, int, int]) -> list[list[int]]:
    """The two cells ``[[row, col], [row, col]]`` a wall separates: ("v", r, c) is left of cell (r, c),
    ("h", r, c) above it."""
    kind, r, c = wall
    return [[r, c - 1], [r, c]] if kind == "v" else [[r - 1, c], [r, c]]


def _cell_interior(canvas: Canvas, box: tuple[int, int, int, int], r: int, c: int) -> np.ndarray:
    """The floor of compartment (r, c), inside its walls."""
    x0, y0, x1, y1 = box
    cw, ch = (x1 - x0) / COLS, (y1 - y0) / ROWS
    t, f = _wall_half(canvas) + 1, _frame(canvas) + 1
    left = x0 + c * cw + (f if c == 0 else t)
    right = x0 + (c + 1) * cw - (f if c == COLS - 1 else t)
    top = y0 + r * ch + (f if r == 0 else t)
    bottom = y0 + (r + 1) * ch - (f if r == ROWS - 1 else t)
    return rect(canvas.shape, left, top, right, bottom)


def _pin(canvas: Canvas, centre: tuple[float, float]) -> Shape:
    """A pin seen from above at a random angle: a round head and a capsule grip."""
    angle = canvas.rng.uniform(0, 360)
    radius = canvas.px(PIN_RADIUS)
    u = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
    head_c = np.asarray(centre) - 0.5 * radius * u
    end = head_c + 1.55 * radius * u
    grip = polygon(
        canvas.shape, rotated_rect_points(tuple((head_c + end) / 2), (1.55 * radius, radius), angle)
    )
    body = grip | disc(canvas.shape, tuple(end), 0.5 * radius)
    head = disc(canvas.shape, tuple(head_c), radius)
    return Shape(head | body, {"head": head, "grip": body & ~head})


def _paint_pin(canvas: Canvas, pin: Shape, r: int, c: int) -> None:
    canvas.paint(pin.parts["grip"], jitter(canvas.rng, PIN_BODY, 6), relief=0.3)
    canvas.paint(pin.parts["head"], jitter(canvas.rng, PIN, 6), relief=0.35)
    canvas.add("pushpin", pin.mask, cell=[r, c])

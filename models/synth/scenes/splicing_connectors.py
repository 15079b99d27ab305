"""splicing_connectors: two connectors with 2, 3 or 5 clamps joined by one cable.

The cable colour tells the connector size (2 yellow, 3 blue, 5 red) and it is plugged into the
same clamp index on both sides. The cable is clipped at the housings, so it touches them but
never overlaps; its colour differs from the grey housings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from models.synth.canvas import Canvas, PlacementError, dilate, jitter, polygon, polyline

BACKGROUND = (48, 50, 54)
HOUSING = (208, 210, 206)
LEVER = (104, 106, 112)
PORT = (40, 40, 44)
CABLE_COLOURS = {"yellow": (236, 200, 28), "blue": (38, 92, 212), "red": (206, 36, 40)}
COLOUR_OF_SIZE = {2: "yellow", 3: "blue", 5: "red"}
SIZE_OF_COLOUR = {c: k for k, c in COLOUR_OF_SIZE.items()}

# Pixels of the real 850×1700 image.
WIDTH, PITCH, MARGIN, CABLE = 230.0, 92.0, 25.0, 32.0
WRONG_TYPES = {"wrong_connector_type_5_2": (5, 2), "wrong_connector_type_5_3": (5, 3),
               "wrong_connector_type_3_2": (3, 2)}  # fmt: skip
TOO_SHORT = {"cable_too_short_T2": 2, "cable_too_short_T3": 3, "cable_too_short_T5": 5}


@dataclass
class Connector:
    """A connector's pose and size; ``inner`` is +1 when its cable side faces right."""

    centre: np.ndarray
    angle: float
    clamps: int
    inner: int
    scale: float

    def to_world(self, local: np.ndarray) -> np.ndarray:
        a = np.deg2rad(self.angle)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        return (np.asarray(local, dtype=np.float64) * self.scale) @ rot.T + self.centre

    @property
    def height(self) -> float:
        return self.clamps * PITCH + 2 * MARGIN

    def clamp_y(self, i: int) -> float:
        return -self.height / 2 + MARGIN + (i + 0.5) * PITCH

    def port(self, i: int) -> np.ndarray:
        """Where a cable plugged into clamp ``i`` leaves the housing."""
        return self.to_world(np.array([self.inner * WIDTH / 2, self.clamp_y(i)]))

    def outward(self) -> np.ndarray:
        a = np.deg2rad(self.angle)
        return self.inner * np.array([np.cos(a), np.sin(a)])


def draw(canvas: Canvas, defects: frozenset[str]) -> dict[str, Any]:
    """Draw the connectors and cable(s) with the requested defects; returns the scene facts."""
    if len(defects) > 1:
        raise ValueError(f"splicing_connectors draws one logical defect per image, got {sorted(defects)}")
    rng = canvas.rng
    canvas.fill(jitter(rng, BACKGROUND, 4))
    defect = next(iter(defects), "")
    sizes = _sizes(rng, defect)
    colour = _cable_colour(rng, defect, sizes)
    short = defect in TOO_SHORT
    left, right = _connectors(canvas, sizes, short)
    i = int(rng.integers(min(sizes)))
    j = int(rng.choice([c for c in range(min(sizes)) if c != i])) if defect == "wrong_cable_location" else i
    extra = _extra_index(rng, i, min(sizes)) if defect == "extra_cable" else None
    top = 200 if defect == "extra_cable" else 230  # a gentler sag keeps two cables apart
    sag = 0.0 if short else rng.choice([-1, 1]) * canvas.px(rng.uniform(110, top))
    absent = str(rng.choice(["left", "right"])) if defect.startswith("missing_connector") else ""
    housings = {"left": _housing(canvas, left), "right": _housing(canvas, right)}
    path = _path(canvas, left.port(i), left.outward(), right.port(j), right.outward(), sag)
    cable = _cable_mask(canvas, path, housings)
    plugged = defect not in ("missing_cable", "missing_connector_and_cable")
    for side, conn, clamp in (("left", left, i), ("right", right, j)):
        if side == absent:
            canvas.mark(defect, housings[side])
            continue
        in_use = [clamp] if plugged else []
        if extra is not None:
            in_use.append(extra)
        _paint_connector(canvas, conn, housings[side], side, in_use)
    cables = _draw_cables(canvas, defect, path, cable, housings, absent, colour, (i, j))
    if extra is not None:
        cables += _draw_extra(canvas, left, right, extra, sag, housings, cable, colour)
    odd = _odd_side(sizes, colour, defect)
    if odd:
        canvas.mark(defect, housings[odd])
    return {
        "connectors": 1 if absent else 2,
        "clamps": [c.clamps for side, c in (("left", left), ("right", right)) if side != absent],
        "cables": cables,
        "cable_colour": colour if cables else None,
        "cable_colour_matches": defect != "cable_color",
        "cable_intact": defect != "cable_cut",
        "cable_long_enough": not short,
        "positions_correspond": i == j,
    }


def _sizes(rng: np.random.Generator, defect: str) -> tuple[int, int]:
    """Clamp counts (left, right)."""
    if defect in WRONG_TYPES:
        a, b = WRONG_TYPES[defect]
        return (a, b) if rng.random() < 0.5 else (b, a)
    k = TOO_SHORT.get(defect) or int(rng.choice([2, 3, 5]))
    return k, k


def _cable_colour(rng: np.random.Generator, defect: str, sizes: tuple[int, int]) -> str:
    if defect == "cable_color":
        return str(rng.choice([c for c in CABLE_COLOURS if c != COLOUR_OF_SIZE[sizes[0]]]))
    return COLOUR_OF_SIZE[sizes[int(rng.integers(2))]]


def _odd_side(sizes: tuple[int, int], colour: str, defect: str) -> str:
    """For a wrong connector type: the side whose size the cable colour does not match."""
    if defect not in WRONG_TYPES:
        return ""
    return "left" if sizes[0] != SIZE_OF_COLOUR[colour] else "right"


def _connectors(canvas: Canvas, sizes: tuple[int, int], short: bool) -> tuple[Connector, Connector]:
    rng = canvas.rng
    h, w = canvas.shape
    if short:
        half_gap = canvas.px(rng.uniform(300, 380)) / 2 + canvas.px(WIDTH) / 2
        xs = (w / 2 - half_gap, w / 2 + half_gap)
    else:
        xs = (0.2 * w + rng.uniform(-1, 1) * canvas.px(30), 0.8 * w + rng.uniform(-1, 1) * canvas.px(30))
    return tuple(  # type: ignore[return-value]
        Connector(
            centre=np.array([x, h / 2 + rng.uniform(-1, 1) * canvas.px(35)]),
            angle=rng.uniform(-4, 4),
            clamps=k,
            inner=inner,
            scale=canvas.scale,
        )
        for x, k, inner in zip(xs, sizes, (1, -1), strict=True)
    )


def _housing(canvas: Canvas, conn: Connector) -> np.ndarray:
    hw, hh, r = WIDTH / 2, conn.height / 2, 28.0
    t = np.linspace(0, np.pi / 2, 5)
    corners = []
    for (cx, cy), start in (
        ((hw - r, hh - r), 0),
        ((-hw + r, hh - r), 1),
        ((-hw + r, -hh + r), 2),
        ((hw - r, -hh + r), 3),
    ):
        a = t + start * np.pi / 2
        corners.append(np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1))
    return polygon(canvas.shape, conn.to_world(np.concatenate(corners)))


def _paint_connector(
    canvas: Canvas, conn: Connector, housing: np.ndarray, side: str, in_use: list[int]
) -> None:
    rng = canvas.rng
    canvas.paint(housing, jitter(rng, HOUSING, 4), relief=0.15)
    lever_colour, port_colour = jitter(rng, LEVER, 4), jitter(rng, PORT, 3)
    for i in range(conn.clamps):
        y = conn.clamp_y(i)
        x_out = -conn.inner * WIDTH / 2
        lever = _local_rect(
            conn, x_out + conn.inner * 0.08 * WIDTH, x_out + conn.inner * 0.55 * WIDTH, y, 0.62 * PITCH
        )
        canvas.paint(polygon(canvas.shape, lever) & housing, lever_colour, relief=0.2)
        x_in = conn.inner * WIDTH / 2
        port = _local_rect(
            conn, x_in - conn.inner * 0.2 * WIDTH, x_in - conn.inner * 0.04 * WIDTH, y, 0.42 * PITCH
        )
        canvas.paint(polygon(canvas.shape, port) & housing, port_colour)
    canvas.add("connector", housing, side=side, clamps=conn.clamps, cable_clamps=sorted(in_use))


def _local_rect(conn: Connector, xa: float, xb: float, yc: float, height: float) -> np.ndarray:
    x0, x1 = min(xa, xb), max(xa, xb)
    return conn.to_world(
        np.array([[x0, yc - height / 2], [x1, yc - height / 2], [x1, yc + height / 2], [x0, yc + height / 2]])
    )


def _path(
    canvas: Canvas, p: np.ndarray, np_: np.ndarray, q: np.ndarray, nq: np.ndarray, sag: float
) -> np.ndarray:
    """A cubic Bézier from port ``p`` to port ``q`` leaving along the housings' normals, sagging by ``sag``.

    Each end starts a little inside its housing, so that clipping by the housing leaves no gap.
    """
    d = float(np.linalg.norm(q - p))
    if sag == 0.0:
        c1, c2 = p + (q - p) / 3, p + 2 * (q - p) / 3
    else:
        c1 = p + np_ * 0.35 * d + [0, sag]
        c2 = q + nq * 0.35 * d + [0, sag]
    t = np.linspace(0, 1, 64)[:, None]
    curve = (1 - t) ** 3 * p + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * q
    inset = canvas.px(0.12 * WIDTH)
    return np.concatenate([[p - np_ * inset], curve, [q - nq * inset]])


def _cable_mask(canvas: Canvas, path: np.ndarray, housings: dict[str, np.ndarray]) -> np.ndarray:
    """The drawn pixels of a cable along ``path``, clipped at the housings; one piece or a retry."""
    h, w = canvas.shape
    margin = canvas.gap(20)
    if (path[:, 0] < margin).any() or (path[:, 0] > w - margin).any():
        raise PlacementError("cable leaves the image")
    if (path[:, 1] < margin).any() or (path[:, 1] > h - margin).any():
        raise PlacementError("cable leaves the image")
    mask = (
        polyline(canvas.shape, path, max(2, round(canvas.px(CABLE)))) & ~housings["left"] & ~housings["right"]
    )
    if cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] != 2:
        raise PlacementError("cable crosses a housing")
    return mask


def _terminals(ends: tuple[int, int], free: str = "") -> list[int | None]:
    """The ``terminals`` annotation: the clamp each end enters, ``[left, right]`` counted from 1 at the
    top (clamp index ``i`` is the ``i + 1``-th from the top), ``None`` for the end on the ``free`` side."""
    return [None if free == "left" else ends[0] + 1, None if free == "right" else ends[1] + 1]


def _extra_index(rng: np.random.Generator, i: int, clamps: int) -> int:
    """The clamp of the extra cable: a neighbour of ``i``, so the two cables run side by side."""
    return int(rng.choice([c for c in (i - 1, i + 1) if 0 <= c < clamps]))


def _draw_cables(
    canvas: Canvas,
    defect: str,
    path: np.ndarray,
    cable: np.ndarray,
    housings: dict[str, np.ndarray],
    absent: str,
    colour: str,
    ends: tuple[int, int],
) -> int:
    """Paint the main cable as the defect asks; returns how many cables that puts in the image."""
    rng = canvas.rng
    paint = jitter(rng, CABLE_COLOURS[colour], 6)
    thickness = max(2, round(canvas.px(CABLE)))
    if defect in ("missing_cable", "missing_connector_and_cable"):
        canvas.mark(defect, cable)
        return 0
    if defect == "missing_connector":
        keep = path[: int(len(path) * rng.uniform(0.72, 0.82))]
        if absent == "left":
            keep = path[len(path) - len(keep) :]
        free = polyline(canvas.shape, keep, thickness) & ~housings["left"] & ~housings["right"]
        canvas.paint(free, paint, relief=0.3)
        canvas.add("cable", free, colour=colour, terminals=_terminals(ends, absent))
        return 1
    if defect == "cable_cut":
        return _draw_cut(canvas, path, housings, paint, colour, ends, thickness)
    canvas.paint(cable, paint, relief=0.3)
    canvas.add("cable", cable, colour=colour, terminals=_terminals(ends))
    if defect in TOO_SHORT or defect in ("cable_color", "wrong_cable_location"):
        canvas.mark(defect, cable)
    return 1


def _draw_extra(
    canvas: Canvas,
    left: Connector,
    right: Connector,
    k: int,
    sag: float,
    housings: dict[str, np.ndarray],
    cable: np.ndarray,
    colour: str,
) -> int:
    """A second cable of the same colour in clamp ``k`` on both sides, running beside the first."""
    path = _path(canvas, left.port(k), left.outward(), right.port(k), right.outward(), sag)
    extra = _cable_mask(canvas, path, housings)
    if (dilate(extra, canvas.gap()) & cable).any():
        raise PlacementError("the two cables touch")
    canvas.paint(extra, jitter(canvas.rng, CABLE_COLOURS[colour], 6), relief=0.3)
    canvas.add("cable", extra, colour=colour, terminals=_terminals((k, k)))
    canvas.mark("extra_cable", extra)
    return 1


def _draw_cut(
    canvas: Canvas,
    path: np.ndarray,
    housings: dict[str, np.ndarray],
    paint: tuple[float, float, float],
    colour: str,
    ends: tuple[int, int],
    thickness: int,
) -> int:
    """A cable in two pieces with a visible gap; each piece is its own ``cable`` object."""
    rng = canvas.rng
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    centre = arc[-1] * rng.uniform(0.35, 0.65)
    half = max(1.5 * thickness, thickness / 2 + canvas.gap(20))
    before, after = arc < centre - half, arc > centre + half
    gap_points = path[~before & ~after]
    outside = ~housings["left"] & ~housings["right"]
    pieces = [polyline(canvas.shape, path[before], thickness) & outside,
              polyline(canvas.shape, path[after], thickness) & outside]  # fmt: skip
    if (dilate(pieces[0], canvas.gap(10)) & pieces[1]).any():
        raise PlacementError("cut pieces touch")
    for n, (piece, free) in enumerate(zip(pieces, ("right", "left"), strict=True)):
        canvas.paint(piece, paint, relief=0.3)
        canvas.add("cable", piece, colour=colour, terminals=_terminals(ends, free), piece=n + 1, pieces=2)
    canvas.mark("cable_cut", dilate(polyline(canvas.shape, gap_points, thickness), 2) & outside)
    return 1  # still one cable, in two pieces

"""A drawing surface that remembers the exact pixels of every object and defect region it paints.

Every shape is first a boolean mask (OpenCV rasterisation without anti-aliasing), then painted, so
an annotated mask is exactly the set of pixels drawn for that object, and a defect mask is exactly
the region the renderer meant. Shading, lighting and noise change colours only, never masks.

Layering convention: an object's mask is the full extent of its shape. Objects overlap only where
one lies on another (pins in their box, labels on the bottle and juice, the icon on its label,
toppings on the cereals); siblings are kept a few pixels apart so classical colour/shape
segmentation can separate them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from models.objects import ImageObject, object_from_mask

Colour = tuple[float, float, float]
Point = tuple[float, float]

_SHIFT = 4  # OpenCV sub-pixel bits: shapes keep fractional geometry at small scales
_ONE = 1 << _SHIFT
NOISE_SIGMA = 2.5


class PlacementError(RuntimeError):
    """A random layout could not be completed; the caller draws the scene again."""


# --- shapes: boolean masks --------------------------------------------------------------------


def _fixed(points: Sequence[Point] | np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def polygon(shape: tuple[int, int], points: Sequence[Point] | np.ndarray) -> np.ndarray:
    """Filled polygon through ``points`` (x, y)."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [_fixed(points)], 1, cv2.LINE_8, _SHIFT)
    return m.astype(bool)


def disc(shape: tuple[int, int], centre: Point, radius: float) -> np.ndarray:
    """Filled circle."""
    m = np.zeros(shape, np.uint8)
    c = _fixed([centre])[0, 0]
    cv2.circle(m, (int(c[0]), int(c[1])), max(1, round(radius * _ONE)), 1, -1, cv2.LINE_8, _SHIFT)
    return m.astype(bool)


def ellipse(shape: tuple[int, int], centre: Point, axes: tuple[float, float], angle: float) -> np.ndarray:
    """Filled ellipse with half-axes ``axes`` rotated by ``angle`` degrees."""
    m = np.zeros(shape, np.uint8)
    c = _fixed([centre])[0, 0]
    ax = (max(1, round(axes[0] * _ONE)), max(1, round(axes[1] * _ONE)))
    cv2.ellipse(m, (int(c[0]), int(c[1])), ax, float(angle), 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    return m.astype(bool)


def polyline(shape: tuple[int, int], points: Sequence[Point] | np.ndarray, thickness: int) -> np.ndarray:
    """A thick open polyline with round joins and caps (cables, text strokes)."""
    return polylines(shape, [points], thickness)


def polylines(
    shape: tuple[int, int], lines: Sequence[Sequence[Point] | np.ndarray], thickness: int
) -> np.ndarray:
    """Several thick open polylines in one mask (screw threads)."""
    m = np.zeros(shape, np.uint8)
    cv2.polylines(m, [_fixed(p) for p in lines], False, 1, max(1, int(thickness)), cv2.LINE_8, _SHIFT)
    return m.astype(bool)


def rect(shape: tuple[int, int], x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned rectangle covering pixels with x0 <= x < x1 and y0 <= y < y1 (rounded)."""
    m = np.zeros(shape, bool)
    m[max(0, round(y0)) : max(0, round(y1)), max(0, round(x0)) : max(0, round(x1))] = True
    return m


def rotated_rect_points(centre: Point, size: tuple[float, float], angle: float) -> np.ndarray:
    """Corners of a ``size`` = (width, height) rectangle rotated by ``angle`` degrees about ``centre``."""
    a = np.deg2rad(angle)
    u = np.array([np.cos(a), np.sin(a)])
    v = np.array([-np.sin(a), np.cos(a)])
    hw, hh = size[0] / 2, size[1] / 2
    c = np.asarray(centre, dtype=np.float64)
    return np.array([c - hw * u - hh * v, c + hw * u - hh * v, c + hw * u + hh * v, c - hw * u + hh * v])


def rounded_rect(shape: tuple[int, int], x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
    """Axis-aligned rectangle with round corners of radius ``r``."""
    m = rect(shape, x0 + r, y0, x1 - r, y1) | rect(shape, x0, y0 + r, x1, y1 - r)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r - 1, y0 + r), (x0 + r, y1 - r - 1), (x1 - r - 1, y1 - r - 1)):
        m |= disc(shape, (cx, cy), r)
    return m


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a mask by ``radius`` pixels (a disc-shaped neighbourhood)."""
    if radius <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink a mask by ``radius`` pixels."""
    if radius <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(mask.astype(np.uint8), k).astype(bool)


def jitter(rng: np.random.Generator, colour: Colour, amount: float) -> Colour:
    """A colour moved by up to ``amount`` per channel: mild variation that keeps kinds distinct."""
    c = np.clip(np.asarray(colour, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


# --- placement --------------------------------------------------------------------------------


@dataclass
class Shape:
    """A candidate object: its whole mask, plus named parts to paint in different colours."""

    mask: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Occupancy:
    """The pixels already claimed by placed objects, grown by their gap, for rejection sampling."""

    def __init__(self, shape: tuple[int, int], rng: np.random.Generator) -> None:
        self.taken = np.zeros(shape, bool)
        self.rng = rng

    def place(
        self,
        make: Callable[[Point], Shape],
        region: np.ndarray,
        gap: int,
        clearance: float = 0.0,
        tries: int = 200,
    ) -> Shape:
        """Build shapes around random centres until one lies inside ``region`` and clear of the taken pixels.

        Centres are drawn only where a disc of radius ``clearance`` is free, which makes most
        candidates fit at once. The accepted shape is claimed with a margin of ``gap`` pixels,
        so two objects placed here never come closer than ``gap`` background pixels.
        """
        free = (region & ~self.taken).view(np.uint8)
        if clearance > 0:  # a distance transform costs the same for any radius, unlike erosion
            free = cv2.distanceTransform(free, cv2.DIST_L2, 5) > clearance
        candidates = np.flatnonzero(free)
        if candidates.size == 0:
            raise PlacementError("no free room left")
        width = region.shape[1]
        outside = ~region
        for _ in range(tries):
            y, x = divmod(int(candidates[self.rng.integers(candidates.size)]), width)
            shape = make((x + self.rng.uniform(-0.5, 0.5), y + self.rng.uniform(-0.5, 0.5)))
            m = shape.mask
            if m.any() and not (m & outside).any() and not (m & self.taken).any():
                self.take(m, gap)
                return shape
        raise PlacementError(f"no free place after {tries} tries")

    def take(self, mask: np.ndarray, gap: int) -> None:
        """Claim ``mask`` and a margin of ``gap`` pixels around it."""
        self.taken |= dilate(mask, gap)


# --- the canvas -------------------------------------------------------------------------------


@dataclass
class Scene:
    """One rendered image with its truth: objects, defect regions, and facts for debugging."""

    image: np.ndarray  # H×W×3 uint8 RGB
    objects: list[ImageObject]
    defect_masks: dict[str, np.ndarray]  # defect name → boolean region
    facts: dict[str, Any] = field(default_factory=dict)


class Canvas:
    """An RGB float image plus the masks of the objects and defect regions painted on it."""

    def __init__(self, shape: tuple[int, int], rng: np.random.Generator, scale: float) -> None:
        self.shape = shape
        self.rng = rng
        self.scale = scale  # image height / real image height: converts real-size pixels
        self.image = np.zeros((*shape, 3), np.float32)
        self._objects: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        self._defects: dict[str, np.ndarray] = {}

    def px(self, real_pixels: float) -> float:
        """A length given in pixels of the real (full-size) image, at this canvas's scale."""
        return real_pixels * self.scale

    def gap(self, real_pixels: float = 14.0) -> int:
        """A separation of a few pixels at any scale (at least 3)."""
        return max(3, round(real_pixels * self.scale))

    def fill(self, colour: Colour) -> None:
        """Paint the whole image (the background)."""
        self.image[:] = np.asarray(colour, np.float32)

    def paint(
        self,
        mask: np.ndarray,
        colour: Colour,
        relief: float = 0.0,
        grain: float = 0.0,
        alpha: float = 1.0,
    ) -> None:
        """Colour the pixels of ``mask``.

        ``relief`` darkens towards the mask's border (a rounded, lit-from-the-front look),
        ``grain`` adds a fine texture, ``alpha`` < 1 blends (highlights on glass).
        """
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        if w == 0 or h == 0:
            return
        crop = mask[y : y + h, x : x + w]
        painted = np.empty((h, w, 3), np.float32)
        painted[:] = np.asarray(colour, np.float32)
        if relief or grain:
            factor = np.ones(crop.shape, np.float32)
            if relief:
                d = cv2.distanceTransform(np.pad(crop, 1).view(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
                depth = max(float(d.max()), 1.0)
                factor -= relief * (1.0 - np.minimum(d / depth, 1.0)) ** 2
            if grain:
                noise = self.rng.standard_normal(crop.shape, dtype=np.float32)
                factor *= 1.0 + grain * cv2.GaussianBlur(noise, (0, 0), 1.0) * 2.0
            painted *= factor[..., None]
        region = self.image[y : y + h, x : x + w]
        if alpha < 1.0:
            painted = (1.0 - alpha) * region + alpha * painted
        np.copyto(region, painted, where=crop[..., None])

    def add(self, label: str, mask: np.ndarray, **attributes: Any) -> None:
        """Record an object (its mask must be the pixels just painted for it)."""
        self._objects.append((label, mask, attributes))

    def mark(self, defect: str, mask: np.ndarray) -> None:
        """Add ``mask`` to the ground-truth region of ``defect``."""
        prev = self._defects.get(defect)
        self._defects[defect] = mask.copy() if prev is None else prev | mask

    def finish(self, facts: dict[str, Any]) -> Scene:
        """Apply lighting and sensor noise and hand the image over with its truth."""
        h, w = self.shape
        gain = self.rng.uniform(0.94, 1.06)
        gx, gy = self.rng.uniform(-0.06, 0.06, 2)
        xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
        ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)
        light = gain * (1.0 + gx * xs[None, :] + gy * ys[:, None])
        img = self.image * light[..., None]
        img += NOISE_SIGMA * self.rng.standard_normal(img.shape, dtype=np.float32)
        image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        for name, m in self._defects.items():
            if not m.any():
                raise RuntimeError(f"defect {name!r} was marked with an empty region")
        objects = [object_from_mask(m, label, attributes=a) for label, m, a in self._objects]
        return Scene(image=image, objects=objects, defect_masks=dict(self._defects), facts=facts)

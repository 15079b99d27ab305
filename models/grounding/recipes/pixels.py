"""Pixel tools the classical recipes share: colour spaces, colour tests, blobs, filled holes and lengths.

Every recipe reasons in the colour spaces where the generated scenes separate best: OpenCV's
full-range HSV (hue 0–255, so hue bands have a finer grid than the 0–180 default) and 8-bit Lab.
The generator varies lighting by a gain and a gradient of a few percent and adds sensor noise, and
shades objects darker towards their borders; tests on hue and saturation ignore the first and the
last, and brightness tests are set relative to a level measured in the same image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from models.objects import ImageObject, object_from_mask


@dataclass
class Pixels:
    """One RGB image with its colour spaces computed once, and its scale relative to the real scene.

    ``scale`` converts lengths given in pixels of the real (full-size MVTec LOCO AD) scene, which is
    how the recipes state object sizes, into pixels of this image.
    """

    rgb: np.ndarray
    real_height: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def scale(self) -> float:
        return self.rgb.shape[0] / self.real_height

    def px(self, real_pixels: float) -> float:
        """A real-scene length in pixels of this image."""
        return real_pixels * self.scale

    def area(self, real_area: float) -> float:
        """A real-scene area in pixels of this image."""
        return real_area * self.scale**2

    @cached_property
    def hsv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hue (0–255, wrapping), saturation and value channels."""
        h, s, v = cv2.split(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2HSV_FULL))
        return h, s, v

    @cached_property
    def lab(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """L*, a*, b* channels scaled to 8 bits (a* and b* centred on 128)."""
        lightness, a, b = cv2.split(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2Lab))
        return lightness, a, b

    def hue_in(self, lo: int, hi: int) -> np.ndarray:
        """Pixels whose hue lies in ``[lo, hi]``; ``lo > hi`` means the band wraps through red (255 → 0)."""
        hue = self.hsv[0]
        return (hue >= lo) & (hue <= hi) if lo <= hi else (hue >= lo) | (hue <= hi)

    def relit(self, reference: np.ndarray, level: float) -> Pixels:
        """This image with its gain undone: scaled so the median brightness of ``reference`` is ``level``.

        ``reference`` is a surface of known colour (e.g. a white box); thresholds on brightness
        then hold under lighting brighter or darker than the generator's.
        """
        measured = float(np.median(self.hsv[2][reference])) if reference.any() else level
        gain = level / max(measured, 1.0)
        rgb = cv2.convertScaleAbs(self.rgb, alpha=gain)  # saturates at 255 like a camera
        return Pixels(rgb, self.real_height)

    def border_level(self, channel: np.ndarray) -> float:
        """Median of a channel over the image's outermost rows and columns (the background there)."""
        edges = np.concatenate([channel[0], channel[-1], channel[:, 0], channel[:, -1]])
        return float(np.median(edges))


def kernel(radius: int) -> np.ndarray:
    """A disc-shaped structuring element of ``radius`` pixels (at least 1)."""
    size = 2 * max(1, radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def opened(mask: np.ndarray, radius: int) -> np.ndarray:
    """Remove specks and strips thinner than about ``2 * radius`` pixels."""
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, kernel(radius)).astype(bool)


def eroded(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink a mask by ``radius`` pixels."""
    return cv2.erode(mask.view(np.uint8), kernel(radius)).astype(bool)


def blobs(mask: np.ndarray, min_area: float, max_area: float = np.inf) -> list[np.ndarray]:
    """The 8-connected components of ``mask`` with ``min_area <= area <= max_area``, largest first."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = [k + 1 for k in np.argsort(-areas, kind="stable") if min_area <= areas[k] <= max_area]
    return [labels == k for k in keep]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every enclosed hole filled (the outlines of its outer contours, filled)."""
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool) | mask


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a mask's pixels."""
    hull = cv2.convexHull(cv2.findNonZero(mask.view(np.uint8)))
    filled = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(filled, hull, 1)
    return filled.astype(bool) | mask


def fill_rows(mask: np.ndarray) -> np.ndarray:
    """Each row's pixels from its leftmost to its rightmost set pixel (bridges what lies across)."""
    out = np.zeros_like(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return out
    sub = mask[rows]
    first = sub.argmax(axis=1)
    last = sub.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    cols = np.arange(mask.shape[1])
    out[rows] = (cols >= first[:, None]) & (cols <= last[:, None])
    return out


def long_side(mask: np.ndarray) -> float:
    """Length of the mask's minimum-area rotated rectangle (its extent along its main axis)."""
    points = cv2.findNonZero(mask.view(np.uint8))
    (_, _), (w, h), _ = cv2.minAreaRect(points)
    return float(max(w, h)) + 1.0  # pixel centres span one pixel less than the pixels themselves


def purity(mask: np.ndarray, colour: np.ndarray) -> float:
    """Share of the mask's pixels that pass the object's colour test: the recipes' confidence score."""
    area = int(mask.sum())
    return float((mask & colour).sum() / area) if area else 0.0


def make_object(
    mask: np.ndarray, label: str, expected: np.ndarray, attributes: dict[str, object] | None = None
) -> ImageObject:
    """An :class:`ImageObject` of ``mask`` scored by the share of its pixels of the ``expected`` colour."""
    return object_from_mask(mask, label, score=max(purity(mask, expected), 0.01), attributes=attributes)

"""screw_bag: steel screws, brass hex nuts and copper ring washers in a grey bag.

Nuts and washers are the saturated blobs; brass is yellower than copper, so a blob's median hue
names its kind, and the shape confirms it where the hue is ambiguous (a ring fills its enclosing
circle, a hexagon only about 80 % of it). Screws are pale, nearly grey and much brighter than the
bag: hysteresis on brightness relative to the bag's own level (a blob of fairly bright pixels
counts when it holds clearly bright ones) keeps the bag's lighter seal out while keeping the
screws' darker borders in; a blob counts as a screw when its rotated bounding rectangle's long side
is that of a screw (up to twice the normal long screw, whose length is a fixed share of the bag
image's height). Length classes are the attribute stage's (:mod:`models.grounding.attributes`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.grounding.recipes.pixels import Pixels, blobs, fill_holes, long_side, make_object
from models.objects import ImageObject

REAL_HEIGHT = 1100.0  # MVTec LOCO AD screw_bag images are 1100 pixels high
LONG_SCREW = 430.0  # the normal long screw's length in real pixels
PART_RADIUS = 0.12 * LONG_SCREW  # nut and washer outer radius, about
SCREW_WIDTH = 0.2 * LONG_SCREW  # head width
NUT_MIN_HUE = 22  # full-range hue: brass nuts 26–34, copper washers 9–18
HUE_MARGIN = 3  # within this of NUT_MIN_HUE the shape decides
RING_FILL = 0.87  # filled area / enclosing circle: a ring 0.89–0.98, a hexagon 0.73–0.83 (radius ≥ 8 px)
SCREW_LOW, SCREW_HIGH = 1.3, 1.55  # brightness relative to the bag's median for a screw's border / core


def segment(pixels: Pixels) -> list[ImageObject]:
    """Every screw, nut and washer."""
    return _screws(pixels) + _round_parts(pixels)


def _round_parts(pixels: Pixels) -> list[ImageObject]:
    hue, saturation, value = pixels.hsv
    colour = (saturation >= 100) & (value >= 60)
    size = math.pi * pixels.px(PART_RADIUS) ** 2
    objects = []
    for mask in blobs(colour, 0.25 * size, 3 * size):
        label = "nut" if _is_nut(float(np.median(hue[mask])), fill_holes(mask)) else "washer"
        objects.append(make_object(mask, label, colour))
    return objects


def _is_nut(median_hue: float, filled: np.ndarray) -> bool:
    """Brass (yellower) is a nut, copper a washer; a hue near the boundary goes by the outline."""
    if abs(median_hue - NUT_MIN_HUE) > HUE_MARGIN:
        return median_hue > NUT_MIN_HUE
    (_, _), radius = cv2.minEnclosingCircle(cv2.findNonZero(filled.view(np.uint8)))
    return filled.sum() / (math.pi * (radius + 0.5) ** 2) < RING_FILL


def _screws(pixels: Pixels) -> list[ImageObject]:
    _, saturation, value = pixels.hsv
    bag = float(np.median(value))
    pale = saturation < 110
    border, core = pale & (value >= SCREW_LOW * bag), pale & (value >= SCREW_HIGH * bag)
    width = pixels.px(SCREW_WIDTH)
    objects = []
    for mask in blobs(border, 0.5 * width**2):
        length = long_side(mask)
        if not (mask & core).any() or length > 2 * pixels.px(LONG_SCREW) or length < 1.3 * width:
            continue
        objects.append(make_object(mask, "screw", core))
    return objects

"""splicing_connectors: light grey connectors joined by a yellow, blue or red cable on a dark table.

Connectors are the bright, nearly grey blobs (bright relative to the housings' own level) with
their holes filled; the holes are the clamps'
dark levers and ports, and each lever is a large hole, so the large holes count the clamps. A
connector's side is the image half its centre lies in. Cables are the strongly saturated blobs,
one object per blob (a cut cable's two pieces are two objects, as annotated); the cable colour
nearest to a blob's mean hue (on the hue circle, since red sits at both ends) names its colour.
"""

from __future__ import annotations

import numpy as np

from models.grounding.recipes.pixels import Pixels, blobs, fill_holes, holes, make_object
from models.objects import ImageObject

REAL_HEIGHT = 850.0  # MVTec LOCO AD splicing_connectors images are 850 pixels high
HOUSING_WIDTH, CLAMP_PITCH, CABLE_WIDTH = 230.0, 92.0, 32.0  # real pixels
LEVER_AREA = 0.47 * HOUSING_WIDTH * 0.62 * CLAMP_PITCH  # a port is under a quarter of this
LEVER_SPLIT = 0.7  # levers are 0.54 as bright as the housing, the housing's shaded rim over 0.8
CABLE_HUES = {"yellow": 35, "blue": 156, "red": 254}  # full-range hue of each cable colour


def segment(pixels: Pixels) -> list[ImageObject]:
    """Both connectors (with their clamp count and side) and every cable piece (with its colour)."""
    return _connectors(pixels) + _cables(pixels)


def _housing_colour(pixels: Pixels) -> np.ndarray:
    """Nearly grey pixels at least ``LEVER_SPLIT`` as bright as the housings (levers and table are darker)."""
    _, saturation, value = pixels.hsv
    grey = saturation < 70
    light = grey & (value >= 2 * pixels.border_level(value))
    if not light.any():
        return light
    return grey & (value >= LEVER_SPLIT * np.percentile(value[light], 90))


def _connectors(pixels: Pixels) -> list[ImageObject]:
    housing = _housing_colour(pixels)
    least = 0.5 * pixels.area(HOUSING_WIDTH * (2 * CLAMP_PITCH))
    width = pixels.shape[1]
    objects = []
    for mask in blobs(housing, least):
        clamps = len(holes(mask, 0.5 * pixels.area(LEVER_AREA)))
        filled = fill_holes(mask)
        side = "left" if np.nonzero(filled)[1].mean() < width / 2 else "right"
        objects.append(make_object(filled, "connector", housing, {"clamps": clamps, "side": side}))
    return objects


def _cables(pixels: Pixels) -> list[ImageObject]:
    hue, saturation, value = pixels.hsv
    colour = (saturation >= 150) & (value >= 90)
    least = 3 * pixels.px(CABLE_WIDTH) ** 2
    return [
        make_object(mask, "cable", colour, {"colour": _colour_name(hue[mask])})
        for mask in blobs(colour, least)
    ]


def _colour_name(hues: np.ndarray) -> str:
    """The cable colour whose hue is nearest to the blob's circular mean hue."""
    angles = hues.astype(np.float64) * (2 * np.pi / 256)
    mean = np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()) * 256 / (2 * np.pi)
    return min(CABLE_HUES, key=lambda name: _hue_distance(mean, CABLE_HUES[name]))


def _hue_distance(a: float, b: float) -> float:
    """Distance of two full-range hues on the hue circle (0–128)."""
    d = abs(a - b) % 256
    return min(d, 256 - d)

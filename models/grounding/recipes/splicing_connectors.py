"""splicing_connectors: light grey connectors joined by a yellow, blue or red cable on a dark table.

Connectors are the bright, nearly grey blobs (bright relative to the housings' own level) with
their holes (the clamps' dark levers and ports) filled. Cables are the strongly saturated blobs,
one object per blob (a cut cable's two pieces are two objects, as annotated). Clamps, sides,
colours and terminals are the attribute stage's (:mod:`models.grounding.attributes`).
"""

from __future__ import annotations

import numpy as np

from models.grounding.recipes.pixels import Pixels, blobs, fill_holes, make_object
from models.objects import ImageObject

REAL_HEIGHT = 850.0  # MVTec LOCO AD splicing_connectors images are 850 pixels high
HOUSING_WIDTH, CLAMP_PITCH, CABLE_WIDTH = 230.0, 92.0, 32.0  # real pixels
LEVER_SPLIT = 0.7  # levers are 0.54 as bright as the housing, the housing's shaded rim over 0.8


def segment(pixels: Pixels) -> list[ImageObject]:
    """Both connectors and every cable piece."""
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
    return [make_object(fill_holes(mask), "connector", housing) for mask in blobs(housing, least)]


def _cables(pixels: Pixels) -> list[ImageObject]:
    _, saturation, value = pixels.hsv
    colour = (saturation >= 150) & (value >= 90)
    least = 3 * pixels.px(CABLE_WIDTH) ** 2
    return [make_object(mask, "cable", colour) for mask in blobs(colour, least)]

"""pushpins: yellow pins in a light grey 3×5 compartment box on a dark table.

The box is everything much brighter than the table (Otsu's threshold on brightness splits the two),
holes filled so the pins inside belong to it, as the annotations want. Pins are the saturated
yellow blobs; neighbouring pins are kept apart by floor pixels, so each blob is one pin.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.grounding.recipes.pixels import Pixels, blobs, fill_holes, make_object
from models.objects import ImageObject

REAL_HEIGHT = 1000.0  # MVTec LOCO AD pushpins images are 1000 pixels high
PIN_RADIUS = 38.0  # head radius in real pixels
PIN_HUE = (20, 50)  # full-range hue of the yellow heads and grips
PIN_MIN_SATURATION = 120  # the grey floor and walls stay below 40


def segment(pixels: Pixels) -> list[ImageObject]:
    """The box and every pushpin."""
    return _box(pixels) + _pins(pixels)


def _pin_colour(pixels: Pixels) -> np.ndarray:
    """Saturated yellow: the pins' heads and grips, whatever their shading."""
    _, saturation, value = pixels.hsv
    return pixels.hue_in(*PIN_HUE) & (saturation >= PIN_MIN_SATURATION) & (value >= 60)


def _pins(pixels: Pixels) -> list[ImageObject]:
    """One pin per yellow blob of a pin's size (a quarter to four times a head's area)."""
    colour = _pin_colour(pixels)
    head = math.pi * pixels.px(PIN_RADIUS) ** 2
    return [make_object(m, "pushpin", colour) for m in blobs(colour, 0.25 * head, 4 * head)]


def _box(pixels: Pixels) -> list[ImageObject]:
    """The largest bright blob (Otsu splits the dark table from the light box), holes filled."""
    grey = cv2.cvtColor(pixels.rgb, cv2.COLOR_RGB2GRAY)
    _, bright = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    found = blobs(bright.astype(bool), 0.1 * grey.size)
    if not found:
        return []
    box = fill_holes(found[0])
    return [make_object(box, "box", bright.astype(bool) | _pin_colour(pixels))]

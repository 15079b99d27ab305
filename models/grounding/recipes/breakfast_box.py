"""breakfast_box: fruit in one compartment of a white box, a cereal heap with toppings in the other.

Every kind has its own colour on the near-white box: nectarines crimson, tangerines a deep
saturated orange, cereals a duller light brown, banana chips pale yellow and brighter than the
cereals, almonds a dark brown, darker than any cereal grain. Each kind is one colour test, and
size bounds drop specks of the cereals' grain. Brightness tests split cereals from chips and
almonds, so the image is first relit to a fixed brightness of the white box. The cereal heap's
blob has its holes filled, so the toppings lying on it belong to it, as the annotations want.
"""

from __future__ import annotations

import math

import numpy as np

from models.grounding.recipes.pixels import Pixels, blobs, fill_holes, make_object
from models.objects import ImageObject

REAL_HEIGHT = 1280.0  # MVTec LOCO AD breakfast_box images are 1280 pixels high
FRUIT_RADIUS = 124.0  # the smaller fruit (a tangerine), real pixels
CHIP_RADIUS = 34.0
ALMOND_AXES = (30.0, 17.0)
BOX_WHITE = 224.0  # median brightness of the white box and its floor under the generator's mean lighting
CEREAL_SHARE = 0.02  # the thinnest heap (underflow) covers about 4.5 % of the image


def segment(pixels: Pixels) -> list[ImageObject]:
    """Nectarines, tangerines, the cereal heap, banana chips and almonds."""
    _, saturation, value = pixels.hsv
    pixels = pixels.relit((saturation < 40) & (value >= 100), BOX_WHITE)
    colours = _colours(pixels)
    fruit = math.pi * pixels.px(FRUIT_RADIUS) ** 2
    chip = math.pi * pixels.px(CHIP_RADIUS) ** 2
    almond = math.pi * pixels.area(ALMOND_AXES[0] * ALMOND_AXES[1])
    objects = []
    for label, lo, hi in (
        ("nectarine", 0.4 * fruit, 4 * fruit),
        ("tangerine", 0.4 * fruit, 4 * fruit),
        ("banana chip", 0.35 * chip, 2.5 * chip),
        ("almond", 0.35 * almond, 2.5 * almond),
    ):
        objects += [make_object(fill_holes(m), label, colours[label]) for m in blobs(colours[label], lo, hi)]
    return objects + _cereals(pixels, colours)


def _colours(pixels: Pixels) -> dict[str, np.ndarray]:
    """Per kind, the pixels of its colour."""
    _, saturation, value = pixels.hsv
    lightness, a, _ = pixels.lab
    return {
        "nectarine": pixels.hue_in(225, 5) & (saturation >= 150) & (value >= 60),
        "tangerine": pixels.hue_in(12, 30) & (saturation >= 205) & (value >= 140),
        "cereals": pixels.hue_in(14, 33) & (saturation >= 95) & (saturation < 160) & (lightness >= 112)
        & (lightness < 184),
        "banana chip": pixels.hue_in(29, 46) & (saturation >= 90) & (saturation < 180) & (lightness >= 184),
        "almond": pixels.hue_in(5, 30) & (saturation >= 120) & (lightness < 112) & (a >= 133),
    }


def _cereals(pixels: Pixels, colours: dict[str, np.ndarray]) -> list[ImageObject]:
    """The largest blob of cereal and topping pixels, holes filled; toppings on the bare floor make none."""
    heap = colours["cereals"] | colours["banana chip"] | colours["almond"]
    found = blobs(heap, CEREAL_SHARE * heap.size)
    return [make_object(fill_holes(m), "cereals", heap) for m in found[:1]]

"""juice_bottle: a glass bottle on a black table, juice inside, a fruit label and a text label on it.

* bottle: everything clearly brighter than the table (measured at the image border), holes filled.
* labels: light pixels of neutral or bluish tint (the banana juice's highlight is as bright but
  yellow) inside the glass wall (as light, but only a thin band around the bottle's inside), one
  blob per label; a label is a (possibly tilted) rectangle, so its mask is the blob's convex hull,
  which also covers an icon that touches the label's edge. Which label is which is
  read from its content, never from its place (swapped labels exist): dark strokes make a text
  label, a colourful picture a fruit label; a blank label goes by its paper (the text label's is
  bluish, the fruit label's white).
* fruit icon: the colourful pixels inside the fruit label.
* juice: the warm, saturated pixels inside the bottle outside the labels; each row is filled from
  its leftmost to its rightmost juice pixel so the juice runs behind the labels, as annotated.
"""

from __future__ import annotations

import numpy as np

from models.grounding.recipes.pixels import (
    Pixels,
    blobs,
    convex_hull,
    eroded,
    fill_holes,
    fill_rows,
    make_object,
    opened,
)
from models.objects import ImageObject

REAL_HEIGHT = 1600.0  # MVTec LOCO AD juice_bottle images are 1600 pixels high
LABEL_SIZE = (275.0, 150.0)  # the smaller (text) label, real pixels
JUICE_HUE = (235, 45)  # full-range hue band through red: cherry, orange and banana juice
# Lab L* (8 bit): label paper 205–250, the reflection on the glass about 113 (the juices are tinted),
# so labels are found from 0.75 to 1.3 times the generator's mean lighting.
PAPER_LIGHTNESS = 150
GLASS_WALL = 12.0  # width of the glass around the bottle's inside, real pixels
TEXT_BLUE = 124  # Lab b* below which blank label paper is the text label's bluish one


def segment(pixels: Pixels) -> list[ImageObject]:
    """The bottle, the juice, both labels and the fruit icon (those that are there)."""
    bottle = _bottle(pixels)
    if bottle is None:
        return []
    labels = _labels(pixels, bottle)
    objects = [make_object(bottle, "bottle", bottle)]
    objects += _juice(pixels, bottle, labels)
    for label in labels:
        objects += _label_objects(pixels, label)
    return objects


def _bottle(pixels: Pixels) -> np.ndarray | None:
    """The largest blob clearly brighter than the table, holes filled (None: no bottle)."""
    value = pixels.hsv[2]
    table = pixels.border_level(value)
    found = blobs(value >= max(1.7 * table, table + 15), 0.05 * value.size)
    return fill_holes(found[0]) if found else None


def _label_colour(pixels: Pixels) -> np.ndarray:
    """Light paper of neutral or bluish tint: not the yellow, orange or red juices and reflections."""
    lightness, a, b = pixels.lab
    return (lightness >= PAPER_LIGHTNESS) & (np.abs(a.astype(np.int16) - 128) <= 12) & (b <= 140)


def _labels(pixels: Pixels, bottle: np.ndarray) -> list[np.ndarray]:
    """Label masks: blobs of paper inside the glass wall (which is as light), as convex hulls."""
    paper = _label_colour(pixels) & eroded(bottle, max(2, round(pixels.px(GLASS_WALL))))
    area = pixels.area(LABEL_SIZE[0] * LABEL_SIZE[1])
    return [convex_hull(m) for m in blobs(opened(paper, 1), 0.3 * area, 4 * area)]


def _content(pixels: Pixels, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dark strokes (much darker than the paper, greyish blue) and vivid picture pixels inside a label."""
    _, saturation, value = pixels.hsv
    inner = eroded(label, 1)
    paper = float(np.median(value[inner])) if inner.any() else 255.0
    picture = inner & (saturation >= 130) & (value >= 0.4 * paper)
    strokes = inner & (value < 0.6 * paper) & ~picture
    return strokes, picture


def _label_objects(pixels: Pixels, label: np.ndarray) -> list[ImageObject]:
    """The label named by its content, plus its icon when it is a fruit label with a picture."""
    strokes, picture = _content(pixels, label)
    paper = _label_colour(pixels)
    n_strokes, n_picture = int(strokes.sum()), int(picture.sum())
    if n_strokes > n_picture:
        return [make_object(label, "text label", paper | strokes)]
    if n_picture < 0.02 * label.sum():  # blank: a fruit label without its icon, or a text label without text
        bluish = float(np.median(pixels.lab[2][label])) < TEXT_BLUE
        return [make_object(label, "text label" if bluish else "fruit label", paper)]
    return [make_object(label, "fruit label", paper | picture), make_object(picture, "fruit icon", picture)]


def _juice(pixels: Pixels, bottle: np.ndarray, labels: list[np.ndarray]) -> list[ImageObject]:
    """The juice below its surface, labels included (they lie on it); none in an empty bottle."""
    _, saturation, value = pixels.hsv
    covered = np.zeros(bottle.shape, bool)
    for label in labels:
        covered |= label
    colour = pixels.hue_in(*JUICE_HUE) & (saturation >= 60) & (value >= 60) & bottle
    found = blobs(colour & ~covered, 0.02 * bottle.sum())
    if not found:
        return []
    juice = np.logical_or.reduce(found)
    level = int(np.flatnonzero(juice.any(axis=1))[0])
    below = np.zeros(bottle.shape, bool)
    below[level:] = True
    return [make_object(fill_rows(juice | (covered & below)) & bottle, "juice", colour | covered)]

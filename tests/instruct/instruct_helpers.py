"""Shared by the augmentation and CoT tests: small generated scenes in memory, and blob counting.

A uniquely named module rather than ``conftest`` so test files can import it unambiguously.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from models.grounding import GroundingBackend, ObjectQuery
from models.instruct.augment import Parent, parent_of
from models.objects import ImageObject, object_from_mask
from models.spec import get_spec
from models.synth.canvas import Scene
from models.synth.config import image_size
from models.synth.scenes import render

SCALE = 0.25


@cache
def scene(scenario: str, seed: int = 0, defects: tuple[str, ...] = ()) -> Scene:
    """One generated image of ``scenario`` at the default scale (cached: scenes are immutable here)."""
    return render(scenario, np.random.default_rng(seed), image_size(scenario, SCALE), frozenset(defects))


def parent(scenario: str, seed: int = 0, defects: tuple[str, ...] = ()) -> Parent:
    """A training image built from a generated scene, its annotations standing in for grounding."""
    drawn = scene(scenario, seed, defects)
    labels = list(defects) or ["normal"]
    return parent_of(get_spec(scenario), f"{scenario}/train/good/{seed:03d}", drawn.image, labels,
                     list(drawn.objects))


PIN_HUE, WASHER_HUE, NUT_HUE = (15, 35), (4, 14), (17, 27)  # OpenCV hues (0-180)


def count_saturated(image_rgb: np.ndarray, hue: tuple[int, int], min_area: int = 20) -> int:
    """How many separate strongly coloured regions with an OpenCV hue in ``hue`` the image shows
    (shading darkens an object but keeps its hue: yellow pushpins are 15 blobs, not heads and grips;
    copper washers and brass nuts of the screw bag have hues of their own)."""
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)
    mask = (hsv[..., 0] >= hue[0]) & (hsv[..., 0] <= hue[1]) & (hsv[..., 1] > 120) & (hsv[..., 2] > 60)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())


class PushpinColours(GroundingBackend):
    """A tiny grounder for generated pushpin boxes, for asset tests: yellow blobs are pushpins, the
    bounding rectangle of the largest bright grey region is the box."""

    name = "pushpin_colours"

    def ground(self, image: np.ndarray, queries: Sequence[ObjectQuery]) -> list[ImageObject]:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        pins = (hsv[..., 0] >= PIN_HUE[0]) & (hsv[..., 0] <= PIN_HUE[1]) & (hsv[..., 1] > 120)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(pins.astype(np.uint8), connectivity=8)
        found = [object_from_mask(labels == k, "pushpin", 0.9) for k in range(1, n)
                 if stats[k, cv2.CC_STAT_AREA] >= 20]
        grey = ((hsv[..., 1] < 60) & (hsv[..., 2] > 110)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(grey, connectivity=8)
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = stats[k, :4]
        box = np.zeros(grey.shape, bool)
        box[y : y + h, x : x + w] = True
        return [*found, object_from_mask(box, "box", 0.9)]

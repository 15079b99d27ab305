"""Segmentation recipes of the classical backend, one per generated scenario.

A recipe knows how its scenario's objects look in the generated scenes (colours, shapes, sizes
relative to the scene) and segments all of them from the pixels alone; the backend keeps the
objects that were asked for. Object names are unique across scenarios, so a query's names pick
the recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.grounding.recipes import breakfast_box, juice_bottle, pushpins, screw_bag, splicing_connectors
from models.grounding.recipes.pixels import Pixels
from models.objects import ImageObject


@dataclass(frozen=True)
class Recipe:
    """How to segment one scenario: its object names, its real scene height and the segmenter."""

    scenario: str
    objects: frozenset[str]
    real_height: float
    segment: Callable[[Pixels], list[ImageObject]]

    def __call__(self, image: np.ndarray) -> list[ImageObject]:
        return self.segment(Pixels(image, self.real_height))


RECIPES: dict[str, Recipe] = {
    r.scenario: r
    for r in (
        Recipe("pushpins", frozenset({"pushpin", "box"}), pushpins.REAL_HEIGHT, pushpins.segment),
        Recipe("screw_bag", frozenset({"screw", "nut", "washer"}), screw_bag.REAL_HEIGHT, screw_bag.segment),
        Recipe(
            "juice_bottle",
            frozenset({"bottle", "juice", "fruit label", "text label", "fruit icon"}),
            juice_bottle.REAL_HEIGHT,
            juice_bottle.segment,
        ),
        Recipe(
            "breakfast_box",
            frozenset({"nectarine", "tangerine", "cereals", "banana chip", "almond"}),
            breakfast_box.REAL_HEIGHT,
            breakfast_box.segment,
        ),
        Recipe(
            "splicing_connectors",
            frozenset({"connector", "cable"}),
            splicing_connectors.REAL_HEIGHT,
            splicing_connectors.segment,
        ),
    )
}

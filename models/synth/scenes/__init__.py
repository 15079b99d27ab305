"""One drawing routine per category, and the retry loop that turns a random layout into a scene."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.synth.canvas import Canvas, PlacementError, Scene
from models.synth.config import LOGICAL_DEFECTS, ORIGINAL_SIZES, check_category, structural_defects
from models.synth.scenes import breakfast_box, juice_bottle, pushpins, screw_bag, splicing_connectors
from models.synth.scenes.structural import draw_structural

Drawer = Callable[[Canvas, frozenset[str]], dict[str, Any]]

DRAWERS: dict[str, Drawer] = {
    "breakfast_box": breakfast_box.draw,
    "juice_bottle": juice_bottle.draw,
    "pushpins": pushpins.draw,
    "screw_bag": screw_bag.draw,
    "splicing_connectors": splicing_connectors.draw,
}
MAX_ATTEMPTS = 25


def render(
    category: str,
    rng: np.random.Generator,
    size: tuple[int, int],
    logical: frozenset[str] = frozenset(),
    structural: str | None = None,
) -> Scene:
    """Draw one image of ``category`` with the given logical defects (and optionally one structural).

    Random layouts occasionally cannot fit every object; the scene is then drawn again from the
    same generator, which keeps the result a pure function of the generator's state.
    """
    check_category(category)
    unknown = sorted(logical - set(LOGICAL_DEFECTS[category]))
    if unknown:
        raise ValueError(f"{category} has no logical defect types {unknown}; see LOGICAL_DEFECTS")
    if structural is not None and structural not in structural_defects(category):
        raise ValueError(f"{structural!r} is not a structural defect type of {category}")
    scale = size[0] / ORIGINAL_SIZES[category][0]
    for _ in range(MAX_ATTEMPTS):
        canvas = Canvas(size, rng, scale)
        try:
            facts = DRAWERS[category](canvas, logical)
        except PlacementError:
            continue
        if structural is not None:
            draw_structural(canvas, structural)
        return canvas.finish(facts)
    raise RuntimeError(
        f"could not lay out a {category} scene with {sorted(logical)} in {MAX_ATTEMPTS} attempts at "
        f"size {size}: the scale is probably too small for the objects to fit"
    )

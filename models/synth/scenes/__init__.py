"""One drawing routine per scenario, and the retry loop that turns a random layout into a scene."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.synth.canvas import Canvas, PlacementError, Scene
from models.synth.config import LOGICAL_DEFECTS, ORIGINAL_SIZES, check_scenario, structural_defects
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
    scenario: str,
    rng: np.random.Generator,
    size: tuple[int, int],
    logical: frozenset[str] = frozenset(),
    structural: str | None = None,
) -> Scene:
    """Draw one image of ``scenario`` with the given logical defects (and optionally one structural).

    Random layouts occasionally cannot fit every object; the scene is then drawn again from the
    same generator, which keeps the result a pure function of the generator's state.
    """
    check_scenario(scenario)
    unknown = sorted(logical - set(LOGICAL_DEFECTS[scenario]))
    if unknown:
        raise ValueError(f"{scenario} has no logical defect types {unknown}; see LOGICAL_DEFECTS")
    if structural is not None and structural not in structural_defects(scenario):
        raise ValueError(f"{structural!r} is not a structural defect type of {scenario}")
    scale = size[0] / ORIGINAL_SIZES[scenario][0]
    for _ in range(MAX_ATTEMPTS):
        canvas = Canvas(size, rng, scale)
        try:
            facts = DRAWERS[scenario](canvas, logical)
        except PlacementError:
            continue
        if structural is not None:
            draw_structural(canvas, structural)
        return canvas.finish(facts)
    raise RuntimeError(
        f"could not lay out a {scenario} scene with {sorted(logical)} in {MAX_ATTEMPTS} attempts at "
        f"size {size}: the scale is probably too small for the objects to fit"
    )

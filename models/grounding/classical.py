"""The weight-free grounding backend: OpenCV colour and shape segmentation of the generated scenes.

It is the chain's embedded default, so a fresh checkout grounds the generated data in seconds on a
CPU without downloading SAM or CLIP. It looks only at the pixels and at the queried object names:
each generated scenario has a recipe (:mod:`models.grounding.recipes`) that knows how that
scenario's objects look (colours, shapes, sizes relative to the scene) and segments them. The
attributes the scenario specs measure (a screw's ``length_class``, a connector's ``clamps``, a
cable's ``colour``) are written afterwards by the attribute stage every backend shares
(:mod:`models.grounding.attributes`), not here.

Objects outside those five vocabularies (a user scenario) have no recipe: grounding them raises
:class:`UnsupportedObjectsError` before any image is read, naming the objects and pointing at the
``clip_sam`` backend, instead of guessing at colours and writing a table of plausible nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.grounding.base import GROUNDING_VERSION, GroundingBackend, ObjectQuery, check_image, check_queries
from models.grounding.recipes import RECIPES, Recipe
from models.objects import ImageObject

# Bump when a recipe changes its output for the same image, so cached results are not reused.
RECIPE_VERSION = 2


class UnsupportedObjectsError(ValueError):
    """The queries name objects that no classical recipe segments."""


def recipe_for(queries: Sequence[ObjectQuery]) -> Recipe:
    """The recipe whose scenario holds every queried object name, or a clear error naming the others."""
    names = {q.name for q in queries}
    for recipe in RECIPES.values():
        if names <= recipe.objects:
            return recipe
    known = {name for recipe in RECIPES.values() for name in recipe.objects}
    unknown = sorted(names - known)
    what = (
        f"no recipe for the objects {unknown}"
        if unknown
        else f"the objects {sorted(names)} belong to different scenarios"
    )
    vocabularies = "; ".join(f"{r.scenario}: {', '.join(sorted(r.objects))}" for r in RECIPES.values())
    raise UnsupportedObjectsError(
        f"The classical grounding backend has {what}: it only segments the generated scenarios' "
        f"objects ({vocabularies}). Ground this scenario with the clip_sam backend (set the grounder's "
        "backend to clip_sam and give it sam_checkpoint and clip_weights)."
    )


class ClassicalBackend(GroundingBackend):
    """Per-scenario OpenCV recipes; no weights, no device, no thresholds taken from the config."""

    name = "classical"

    def fingerprint(self) -> dict[str, Any]:
        """Only the recipes decide the output: none of the config's SAM / CLIP fields applies."""
        return {"backend": self.name, "version": GROUNDING_VERSION, "recipe_version": RECIPE_VERSION}

    def validate(self, queries: Sequence[ObjectQuery]) -> None:
        """Raise :class:`UnsupportedObjectsError` unless one recipe segments every queried object."""
        recipe_for(queries)

    def ground(self, image: np.ndarray, queries: Sequence[ObjectQuery]) -> list[ImageObject]:
        check_image(image)
        check_queries(queries)
        wanted = {q.name for q in queries}
        return [o for o in recipe_for(queries)(image) if o.label in wanted]

"""Grounding: find the scenario's objects in an image, as boxes and masks in original pixels.

Importing this package is light (no torch): a backend's models load in :func:`build_backend`.
Add a backend by writing a :class:`GroundingBackend` subclass and naming it in
:data:`models.grounding.base.BACKENDS`.
"""

from models.grounding.attributes import AttributeUnavailableError, Calibration
from models.grounding.base import (
    BACKENDS,
    GroundingBackend,
    GroundingConfig,
    ObjectQuery,
    available_backends,
    build_backend,
    queries_from_spec,
)
from models.grounding.overlay import draw_overlay
from models.grounding.quality import ALL_LABELS, attribute_accuracy, grounding_quality, match_boxes
from models.grounding.run import GROUNDING_COLUMNS, GroundingRun, calibration_of, ground_images

__all__ = [
    "ALL_LABELS",
    "BACKENDS",
    "GROUNDING_COLUMNS",
    "AttributeUnavailableError",
    "Calibration",
    "GroundingBackend",
    "GroundingConfig",
    "GroundingRun",
    "ObjectQuery",
    "attribute_accuracy",
    "available_backends",
    "build_backend",
    "calibration_of",
    "draw_overlay",
    "ground_images",
    "grounding_quality",
    "match_boxes",
    "queries_from_spec",
]

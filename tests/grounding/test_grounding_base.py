"""Config validation, object queries, the backend registry and the overlay picture."""

from __future__ import annotations

import numpy as np
import pytest
from grounding_helpers import synthetic_scene

from models.grounding import GroundingConfig, ObjectQuery, available_backends, build_backend, draw_overlay
from models.objects import object_from_mask


def test_object_query_defaults_its_words_to_the_name() -> None:
    assert ObjectQuery("fruit label").words == ("fruit label",)
    assert ObjectQuery("cable", ("cable", " wire ")).words == ("cable", "wire")
    with pytest.raises(ValueError, match="non-empty name"):
        ObjectQuery(" ")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device", "tpu", "device must be one of"),
        ("precision", "int8", "precision must be one of"),
        ("dedup_iou", 1.5, r"dedup_iou must lie in \[0, 1\]"),
        ("points_per_side", 0, "points_per_side must be >= 1"),
        ("prompt_templates", ("no placeholder",), "prompt_templates"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GroundingConfig(**{field: value})


def test_registry_names_backends_and_refuses_unknown_ones() -> None:
    assert {"classical", "clip_sam"} <= set(available_backends())
    with pytest.raises(ValueError, match=r"unknown grounding backend 'nope': choose one of \['classical', 'clip_sam'"):
        build_backend(GroundingConfig(backend="nope"))


def test_draw_overlay_marks_boxes_without_touching_the_input() -> None:
    image = synthetic_scene()
    before = image.copy()
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[20:60, 30:80] = True
    out = draw_overlay(image, [object_from_mask(mask, "pushpin", 0.8)])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(image, before)
    assert not np.array_equal(out[20, 30:80], image[20, 30:80])  # the box's top edge
    assert np.array_equal(out[120, 5], image[120, 5])  # far from the object

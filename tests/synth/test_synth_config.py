"""GeneratorConfig and the shipped defect vocabulary."""

from __future__ import annotations

import json

import pytest

from models.synth import LOGICAL_DEFECTS, MULTI_COMBOS, SCENARIOS, GeneratorConfig
from models.synth.config import (
    ORIGINAL_SIZES,
    defects_config,
    defects_config_bytes,
    image_size,
    pixel_values,
    scaled_defects_config,
    structural_defects,
)
from models.synth.generate import image_count, plan_images


def test_defaults_and_round_trip() -> None:
    config = GeneratorConfig()
    assert config.to_dict() == {
        "scale": 0.25, "train_good": 12, "validation_good": 2, "test_good": 8, "per_logical_class": 10,
        "per_multi_combo": 3, "structural": 2, "seed": 0,
    }  # fmt: skip
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    assert GeneratorConfig.from_dict({"seed": 4}) == GeneratorConfig(seed=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scale": 0.05}, ValueError, r"scale=0.05 is outside \[0.1, 1.0\]"),
        ({"scale": "big"}, TypeError, "scale must be a number"),
        ({"train_good": -1}, ValueError, "train_good must be >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
        ({"structural": True}, TypeError, "structural must be an integer"),
    ],
)
def test_bad_values_are_named(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        GeneratorConfig(**kwargs)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown GeneratorConfig keys \['sclae'\]"):
        GeneratorConfig.from_dict({"sclae": 0.5})


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        GeneratorConfig().seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_vocabulary_matches_the_shipped_defects_config(scenario: str) -> None:
    values = pixel_values(scenario)
    assert len(set(values.values())) == len(values) == len(defects_config(scenario))
    assert set(LOGICAL_DEFECTS[scenario]) <= set(values)
    assert structural_defects(scenario)
    for combo in MULTI_COMBOS[scenario]:
        assert set(combo) <= set(LOGICAL_DEFECTS[scenario])


def test_logical_type_counts_match_the_paper() -> None:
    assert {c: len(d) for c, d in LOGICAL_DEFECTS.items()} == {
        "breakfast_box": 17, "juice_bottle": 11, "pushpins": 4, "screw_bag": 16, "splicing_connectors": 13,
    }  # fmt: skip


def test_default_plan_gives_every_class_ten_single_anomaly_images() -> None:
    config = GeneratorConfig()
    counts = {c: image_count(c, config) for c in SCENARIOS}
    assert counts == {
        "breakfast_box": 22 + 170 + 2, "juice_bottle": 22 + 110 + 3 + 2, "pushpins": 22 + 40 + 3 + 2,
        "screw_bag": 22 + 160 + 12 + 2, "splicing_connectors": 22 + 130 + 2,
    }  # fmt: skip
    for scenario in SCENARIOS:
        singles = [p.logical[0] for p in plan_images(scenario, config) if len(p.logical) == 1]
        assert {singles.count(d) for d in LOGICAL_DEFECTS[scenario]} == {10}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_absolute_saturation_thresholds_scale_with_the_image_area(scenario: str) -> None:
    assert scaled_defects_config(scenario, 1.0) == defects_config_bytes(scenario)
    (h, w), (real_h, real_w) = image_size(scenario, 0.25), ORIGINAL_SIZES[scenario]
    scaled = json.loads(scaled_defects_config(scenario, 0.25))
    shipped = list(defects_config(scenario))
    assert [(e["defect_name"], e["pixel_value"], e["relative_saturation"]) for e in scaled] == [
        (e["defect_name"], e["pixel_value"], e["relative_saturation"]) for e in shipped]
    for got, real in zip(scaled, shipped, strict=True):
        if real["relative_saturation"]:
            assert got["saturation_threshold"] == real["saturation_threshold"]  # a share of the defect: no unit
        else:
            ratio = h * w / (real_h * real_w)
            assert got["saturation_threshold"] == max(1, round(real["saturation_threshold"] * ratio))
            assert isinstance(got["saturation_threshold"], int)
    capped = json.loads(scaled_defects_config(scenario, 0.25, {e["defect_name"]: 3 for e in shipped}))
    assert all(e["saturation_threshold"] == 3 for e in capped if not e["relative_saturation"])

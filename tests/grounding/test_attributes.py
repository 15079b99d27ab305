"""The attribute stage (issue 13): attributes from the pixels in any backend's masks, calibrated per scenario."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grounding_helpers import FakeBackend, generate_all, synthetic_scene, write_png

from benchmarks.attributes import compare_targets, positions_chains
from models.grounding import (
    AttributeUnavailableError,
    Calibration,
    GroundingConfig,
    calibration_of,
    ground_images,
    queries_from_spec,
)
from models.grounding.attributes import (
    PROVIDERS,
    STAGE_ATTRIBUTES,
    AttributeStage,
    Measured,
    check_attributes,
    check_backend,
)
from models.grounding.evaluate import PERTURBATIONS, AttributeCheck, check_attribute_stage, loco_fc_images
from models.objects import object_from_mask
from models.spec import load_specs, spec_from_dict
from models.split import normal_training_ids
from models.synth import SCENARIOS, GeneratorConfig
from tests.spec.helpers import DATA

# Six normal training images to calibrate on, one image per logical class and combination: ~25 per scenario.
SET = GeneratorConfig(train_good=6, validation_good=0, test_good=2, per_logical_class=1, per_multi_combo=1,
                      structural=0)
SPECS = load_specs(None)
TARGET = 0.98


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_all(tmp_path_factory.mktemp("attributes"), SET)


@cache
def _check(generated: Path, scenario: str, perturbation: str = "none") -> AttributeCheck:
    """One run of the stage, shared by the tests that read it."""
    return check_attribute_stage(generated, SPECS[scenario], perturbation)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_attributes_agree_with_the_truth_under_perturbations(generated: Path, scenario: str) -> None:
    """The generator's masks without attributes, eroded or dilated by 2 px, lit x 0.8 / x 1.2, noisy:
    every declared attribute agrees with the generator's truth on at least 98 % of the objects."""
    spec = SPECS[scenario]
    declared = {(o.name, a) for o in spec.objects for a in o.attributes}
    for perturbation in PERTURBATIONS:
        agreement = _check(generated, scenario, perturbation).agreement
        assert set(zip(agreement["label"], agreement["attribute"], strict=True)) == declared, perturbation
        low = agreement[agreement["agreement"] < TARGET]
        assert low.empty, f"{perturbation}:\n{agreement.to_string()}"


@pytest.mark.parametrize("scenario", ["screw_bag", "splicing_connectors"])
@pytest.mark.parametrize("perturbation", ["none", "noise"])
def test_cot_targets_from_the_stage_equal_those_from_the_annotations(
    generated: Path, scenario: str, perturbation: str
) -> None:
    spec = SPECS[scenario]
    equal, total, differing = compare_targets(spec, _check(generated, scenario, perturbation))
    assert total == len(loco_fc_images(generated, scenario)) * len(spec.subqueries)
    assert equal == total, differing[:5]


def test_positions_chain_names_both_terminals(generated: Path) -> None:
    check = _check(generated, "splicing_connectors")
    named, plugged = positions_chains(SPECS["splicing_connectors"], check)
    assert plugged > 0 and named == plugged


def test_calibration_is_deterministic_and_json(generated: Path) -> None:
    a = _check(generated, "splicing_connectors").calibration
    b = check_attribute_stage(generated, SPECS["splicing_connectors"]).calibration
    assert a.to_json() == b.to_json()
    assert Calibration.from_json(a.to_json()) == a
    assert a.images == SET.train_good and a.defaults == ()
    assert set(a.values["cable"]["colour"]["centroids"]) == {"yellow", "blue", "red"}


def _measured(generated: Path, scenario: str) -> tuple[AttributeStage, dict[str, Measured], list[str]]:
    from models.images import read_rgb
    from models.objects import objects_from_frame

    spec = SPECS[scenario]
    images = loco_fc_images(generated, scenario)
    truth = objects_from_frame(pd.read_parquet(generated / "annotations" / f"{scenario}.parquet"))
    stage = AttributeStage(spec)
    measured = {row.image_id: stage.measure(read_rgb(row.image_path),
                                            [replace(o, attributes={}) for o in truth[row.image_id]])
                for row in images.itertuples()}  # fmt: skip
    return stage, measured, normal_training_ids(images)


def test_calibration_shrugs_off_a_mis_segmented_normal_object(generated: Path) -> None:
    """Medians: a normal image whose long screw was found as a stub moves no threshold much."""
    stage, measured, normal = _measured(generated, "screw_bag")
    clean = stage.calibrate([measured[i] for i in normal])
    first = measured[normal[0]]
    screws = first.indices(["screw"])
    features = [dict(f) for f in first.features]
    features[screws[0]] = {"length_class": {"length": 5.0}}
    broken = Measured(first.width, first.height, first.objects, features)
    shaken = stage.calibrate([broken, *(measured[i] for i in normal[1:])])
    for key in ("long_px", "short_px"):
        want, got = clean.values["screw"]["length_class"][key], shaken.values["screw"]["length_class"][key]
        assert abs(got - want) <= 0.03 * want, (key, want, got)


def test_without_normal_images_defaults_are_used_and_listed(generated: Path) -> None:
    stage, measured, _ = _measured(generated, "splicing_connectors")
    calibration = stage.calibrate([])
    assert set(calibration.defaults) == {"connector.clamps", "cable.colour"}
    objects = stage.assign(next(iter(measured.values())), calibration)
    for obj in objects:
        assert set(SPECS["splicing_connectors"].object(obj.label).attributes) <= set(obj.attributes)


@pytest.mark.parametrize(("ratio", "name"), [(0.35, "very short"), (0.5, "too short"), (0.65, "short"), (1.0, "long"),
                                             (1.3, "too long")])
def test_length_classes_follow_the_design_ratios(ratio: float, name: str) -> None:
    provider = PROVIDERS["length_class"]
    params = {"long_px": 100.0, "short_px": 65.0}
    mask = np.zeros((10, 10), bool)
    mask[5, 5] = True
    obj = object_from_mask(mask, "screw")
    for length in (ratio * 95.0, ratio * 105.0):
        image = Measured(10, 10, [obj], [{"length_class": {"length": length}}])
        assert provider.assign(SPECS["screw_bag"], image, 0, params, Calibration("screw_bag")) == {"length_class": name}


def test_ground_images_writes_the_declared_attributes_and_keeps_the_calibration(generated: Path) -> None:
    """After any backend (here the classical one), with the calibration in the table's Parquet metadata."""
    from models.grounding import build_backend

    spec = SPECS["splicing_connectors"]
    images = loco_fc_images(generated, spec.scenario)
    items = list(zip(images["image_id"], images["image_path"], strict=True))
    run = ground_images(build_backend(GroundingConfig(backend="classical")), items, queries_from_spec(spec),
                        progress=False, spec=spec, normal_ids=normal_training_ids(images))
    assert run.calibration is not None and run.calibration.images == SET.train_good
    for row in run.objects.itertuples():
        assert set(spec.object(row.label).attributes) <= set(json.loads(row.attributes)), row.image_id
    buffer = io.BytesIO()
    run.objects.to_parquet(buffer, index=False)
    assert calibration_of(pd.read_parquet(io.BytesIO(buffer.getvalue()))) == run.calibration


def _spec_reading(attribute: str, hint: str | None = "red or blue") -> dict:
    """The user spec of the tutorial (caps in a tray), its red and blue caps counted by ``attribute``."""
    import yaml

    data = yaml.safe_load((DATA / "tray.yaml").read_text())
    data["objects"][0]["colour"] = hint
    data["objects"][0]["attributes"] = sorted({"colour", attribute})
    data["subqueries"][0]["measure"] = f'count_of("cap", {attribute}="red")'
    data["subqueries"][1]["measure"] = f'count_of("cap", {attribute}="blue")'
    return data


def test_a_spec_the_stage_cannot_serve_fails_before_any_image(tmp_path: Path) -> None:
    spec = spec_from_dict(_spec_reading("gloss"), "user/tray.yaml")
    backend = FakeBackend(GroundingConfig(backend="fake"))
    items = [("a", write_png(tmp_path / "a.png", synthetic_scene()))]
    with pytest.raises(AttributeUnavailableError) as info:
        ground_images(backend, items, queries_from_spec(spec), progress=False, spec=spec)
    message = str(info.value)
    assert "'cap_tray'" in message and "'fake'" in message
    assert "the measures of subqueries 'red_caps', 'blue_caps' read attribute 'gloss' of 'cap'" in message
    assert backend.calls == 0


def test_a_backend_that_writes_an_attribute_itself_serves_it() -> None:
    spec = spec_from_dict(_spec_reading("gloss"), "user/tray.yaml")
    check_attributes(spec, "glossmeter", {"gloss"})  # no error
    with pytest.raises(AttributeUnavailableError, match=r"backend \(none\) writes it"):
        check_backend(spec, "classical")  # by name, before any model loads


def test_colour_needs_known_colour_words() -> None:
    spec = spec_from_dict(_spec_reading("colour", hint="cerise or cobalt"), "user/tray.yaml")
    with pytest.raises(AttributeUnavailableError, match=r"'colours_in_place' read attribute 'colour' of 'cap', but it"):
        check_attributes(spec, "clip_sam")
    check_attributes(spec_from_dict(_spec_reading("colour"), "user/tray.yaml"), "clip_sam")


def test_every_shipped_spec_is_served_by_the_stage() -> None:
    for spec in SPECS.values():
        check_attributes(spec, "clip_sam", {"sam_iou", "stability"})
        assert {a for o in spec.objects for a in o.attributes} <= STAGE_ATTRIBUTES


def test_a_calibration_of_another_version_is_refused(generated: Path) -> None:
    stage, measured, normal = _measured(generated, "screw_bag")
    stale = replace(stage.calibrate([measured[i] for i in normal]), version=0)
    with pytest.raises(ValueError, match=r"calibration is version 0.*materialize grounding again"):
        stage.assign(measured[normal[0]], stale)

"""The classical backend on small generated sets: box quality, counts, attributes, schema, scale, errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from grounding_helpers import TARGET, assert_acceptance, generate_all

from models.grounding import (
    GROUNDING_COLUMNS,
    GroundingConfig,
    ObjectQuery,
    available_backends,
    build_backend,
    ground_images,
    grounding_quality,
    queries_from_spec,
)
from models.grounding.classical import ClassicalBackend, UnsupportedObjectsError
from models.grounding.evaluate import GeneratedEvaluation, evaluate_generated, loco_fc_images
from models.grounding.recipes.screw_bag import NUT_MIN_HUE, _is_nut
from models.objects import objects_to_frame, rle_decode
from models.spec import load_specs
from models.synth import SCENARIOS, GeneratorConfig

# One image per logical class and multi combo, a few normal ones: ~90 images, a few seconds to make.
SMALL = GeneratorConfig(train_good=2, validation_good=0, test_good=2, per_logical_class=1, per_multi_combo=1,
                        structural=0)
# Normal scenes at twice the default size (four times the pixels).
LARGE = GeneratorConfig(scale=0.5, seed=5, train_good=2, validation_good=0, test_good=1, per_logical_class=0,
                        per_multi_combo=0, structural=0)
SPECS = load_specs(None)


@pytest.fixture(scope="module")
def backend() -> ClassicalBackend:
    backend = build_backend(GroundingConfig(backend="classical"))
    assert isinstance(backend, ClassicalBackend)
    return backend


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_all(tmp_path_factory.mktemp("classical_small"), SMALL)


@pytest.fixture(scope="module")
def evaluations(backend: ClassicalBackend, small_set: Path) -> dict[str, GeneratedEvaluation]:
    return {c: evaluate_generated(backend, small_set, SPECS[c]) for c in SCENARIOS}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_precision_recall_and_counts(evaluations: dict[str, GeneratedEvaluation], scenario: str) -> None:
    assert_acceptance(evaluations[scenario], SPECS[scenario])


@pytest.mark.parametrize(
    ("scenario", "label", "attribute"),
    [(s.scenario, o.name, a) for s in SPECS.values() for o in s.objects for a in o.attributes],
)
def test_attributes_are_right(
    evaluations: dict[str, GeneratedEvaluation], scenario: str, label: str, attribute: str
) -> None:
    table = evaluations[scenario].attributes.set_index(["label", "attribute"])
    row = table.loc[(label, attribute)]
    assert row["n_matched"] > 0
    assert row["accuracy"] >= TARGET, table.to_string()


def test_every_length_class_is_seen(evaluations: dict[str, GeneratedEvaluation]) -> None:
    screws = evaluations["screw_bag"].objects.query("label == 'screw'")
    classes = {json.loads(a)["length_class"] for a in screws["attributes"]}
    assert classes == {"very short", "too short", "short", "long", "too long"}


def test_grounding_table_schema(backend: ClassicalBackend, small_set: Path, tmp_path: Path) -> None:
    images = loco_fc_images(small_set, "splicing_connectors").head(4)
    items = list(zip(images["image_id"], images["image_path"], strict=True))
    queries = queries_from_spec(SPECS["splicing_connectors"])
    run = ground_images(backend, items, queries, cache_dir=tmp_path, progress=False)
    table = run.objects
    assert list(table.columns) == GROUNDING_COLUMNS
    assert set(table["backend"]) == {"classical"}
    assert set(table["label"]) <= {"connector", "cable"}
    assert set(run.images["status"]) == {"grounded"}
    for row in table.itertuples():
        mask = rle_decode(row.mask_rle)
        assert mask.shape == (row.height, row.width)
        assert mask.sum() == row.area
        ys, xs = np.nonzero(mask)
        assert list(row.bbox) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert 0 < row.score <= 1
    again = ground_images(backend, items, queries, cache_dir=tmp_path, progress=False)
    assert set(again.images["status"]) == {"cached"}
    pd.testing.assert_frame_equal(again.objects, table)


def test_fingerprint_lists_only_its_own_settings() -> None:
    plain = build_backend(GroundingConfig(backend="classical"))
    other = GroundingConfig(backend="classical", sam_model_type="vit_b", clip_model="ViT-B-32", points_per_side=8,
                            min_score=0.5, prompt_templates=("{}",), device="cpu")
    assert set(plain.fingerprint()) == {"backend", "version", "recipe_version"}
    assert build_backend(other).cache_key() == plain.cache_key()
    assert "classical" in available_backends()


def test_works_at_scale_half(backend: ClassicalBackend, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = generate_all(tmp_path_factory.mktemp("classical_large"), LARGE)
    for scenario in SCENARIOS:
        evaluation = evaluate_generated(backend, out, SPECS[scenario])
        assert_acceptance(evaluation, SPECS[scenario])
        assert (evaluation.attributes["accuracy"] >= TARGET).all(), evaluation.attributes.to_string()


def test_subset_of_a_vocabulary_keeps_only_those_labels(backend: ClassicalBackend, small_set: Path) -> None:
    path = loco_fc_images(small_set, "screw_bag")["image_path"].iloc[0]
    image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    objects = backend.ground(image, [ObjectQuery("washer")])
    assert objects and {o.label for o in objects} == {"washer"}


@pytest.mark.parametrize(
    ("names", "message"),
    [(["pushpin", "widget"], "no recipe for the objects ['widget']"),
     (["pushpin", "screw"], "belong to different scenarios")],
)
def test_unknown_objects_are_a_clear_error(
    backend: ClassicalBackend, tmp_path: Path, names: list[str], message: str
) -> None:
    queries = [ObjectQuery(n) for n in names]
    with pytest.raises(UnsupportedObjectsError, match="clip_sam") as error:
        backend.ground(np.zeros((32, 32, 3), np.uint8), queries)
    assert message in str(error.value)
    missing = tmp_path / "never_read.png"
    with pytest.raises(UnsupportedObjectsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ground_images(backend, [("x/train/good/000", missing)], queries, progress=False)


@pytest.mark.parametrize("scale", [0.25, 0.5])
def test_ambiguous_hue_goes_by_the_outline(scale: float) -> None:
    """At a hue between brass and copper, a hexagon is a nut and a ring a washer (the generator's sizes)."""
    long_screw = 430 * scale
    for angle in (0, 17, 45):
        corners = np.deg2rad(angle) + np.arange(6) * np.pi / 3
        hexagon = np.zeros((120, 120), np.uint8)
        radius = 0.12 * long_screw
        cv2.fillPoly(hexagon, [np.stack([60 + radius * np.cos(corners), 60 + radius * np.sin(corners)], 1)
                               .round().astype(np.int32)], 1)
        assert _is_nut(NUT_MIN_HUE, hexagon.astype(bool))
    ring = np.zeros((120, 120), np.uint8)
    cv2.circle(ring, (60, 60), round(0.125 * long_screw), 1, -1)
    assert not _is_nut(NUT_MIN_HUE, ring.astype(bool))
    assert _is_nut(NUT_MIN_HUE + 5, ring.astype(bool)) and not _is_nut(NUT_MIN_HUE - 5, hexagon.astype(bool))


@pytest.mark.parametrize(("gain", "noise"), [(0.8, 0.0), (1.2, 0.0), (1.0, 5.0)])
def test_robust_to_lighting_and_noise_beyond_the_generators(
    backend: ClassicalBackend, small_set: Path, gain: float, noise: float
) -> None:
    """The generator's gain varies by ±6 % and its noise has σ 2.5; recipes hold well past that."""
    rng = np.random.default_rng(0)
    for scenario in SCENARIOS:
        images = loco_fc_images(small_set, scenario)
        queries = queries_from_spec(SPECS[scenario])
        frames = []
        for image_id, path in zip(images["image_id"], images["image_path"], strict=True):
            image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) * gain
            image = np.clip(image + rng.normal(0.0, noise, image.shape), 0, 255).astype(np.uint8)
            frames.append(objects_to_frame(image_id, backend.ground(image, queries)))
        truth = pd.read_parquet(small_set / "annotations" / f"{scenario}.parquet")
        truth = truth[truth["image_id"].isin(images["image_id"])]
        quality = grounding_quality(pd.concat(frames), truth, labels=[q.name for q in queries])
        low = quality[(quality["precision"] < TARGET) | (quality["recall"] < TARGET)]
        assert low.empty, f"{scenario} at gain {gain}, noise {noise}:\n{quality.to_string()}"

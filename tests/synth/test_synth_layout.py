"""The generated tree has exactly the MVTec LOCO AD layout, and its masks decode to the intended types."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from models.synth import LOGICAL_DEFECTS, MULTI_COMBOS, SCENARIOS
from models.synth.config import defects_config_bytes, image_size, scaled_defects_config, structural_defects
from tests.synth.synth_helpers import Generated

SOURCES = (
    "train/good",
    "validation/good",
    "test/good",
    "test/logical_anomalies",
    "test/structural_anomalies",
)


def _stems(folder) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_layout_is_exactly_loco(generated: Generated, scenario: str) -> None:
    root = generated.loco / scenario
    assert sorted(p.name for p in root.iterdir()) == [
        "defects_config.json",
        "ground_truth",
        "test",
        "train",
        "validation",
    ]
    assert sorted(p.name for p in (root / "test").iterdir()) == [
        "good",
        "logical_anomalies",
        "structural_anomalies",
    ]
    assert [p.name for p in (root / "train").iterdir()] == ["good"]
    assert [p.name for p in (root / "validation").iterdir()] == ["good"]
    written = json.loads((root / "defects_config.json").read_text())
    scaled = json.loads(scaled_defects_config(scenario, generated.config.scale))
    def without_threshold(entries: list[dict]) -> list[dict]:
        return [{**e, "saturation_threshold": None} for e in entries]

    assert without_threshold(written) == without_threshold(scaled)
    assert all(w["saturation_threshold"] <= s["saturation_threshold"] for w, s in zip(written, scaled, strict=True))
    for source in SOURCES:
        stems = _stems(root / source)
        assert stems, f"{scenario}/{source} is empty"
        assert all(re.fullmatch(r"\d{3}", s) for s in stems)
        assert stems == [f"{i:03d}" for i in range(len(stems))], "names run from 000 without gaps"
        assert all(p.suffix == ".png" for p in (root / source).iterdir())
    gt = root / "ground_truth"
    assert sorted(p.name for p in gt.iterdir()) == ["logical_anomalies", "structural_anomalies"]
    for kind in ("logical_anomalies", "structural_anomalies"):
        # One mask folder per anomalous image, none for good images.
        assert sorted(p.name for p in (gt / kind).iterdir()) == _stems(root / "test" / kind)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_images_and_masks_have_loco_formats(generated: Generated, scenario: str) -> None:
    root = generated.loco / scenario
    h, w = image_size(scenario, generated.config.scale)
    for png in root.glob("*/*/*.png"):
        with Image.open(png) as im:
            assert im.mode == "RGB" and im.size == (w, h), png
    for mask_dir in (root / "ground_truth").glob("*/*"):
        files = sorted(mask_dir.iterdir())
        assert [f.name for f in files] == [f"{i:03d}.png" for i in range(len(files))]
        for f in files:
            with Image.open(f) as im:
                assert im.mode == "L" and im.size == (w, h), f
                values = set(np.unique(np.asarray(im)).tolist())
            assert len(values - {0}) == 1, f"{f}: one defect type per mask file, got {values}"


def test_default_sizes_are_the_real_sizes_times_scale_rounded_to_even() -> None:
    assert image_size("breakfast_box", 0.25) == (320, 400)
    assert image_size("juice_bottle", 0.25) == (400, 200)
    assert image_size("pushpins", 0.25) == (250, 426)
    assert image_size("screw_bag", 0.25) == (276, 400)
    assert image_size("splicing_connectors", 0.25) == (212, 426)
    assert image_size("pushpins", 1.0) == (1000, 1700)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_logical_type_and_multi_combo_is_rendered(generated: Generated, scenario: str) -> None:
    logical = generated.loco / scenario / "ground_truth" / "logical_anomalies"
    found = [frozenset(generated.defect_types(scenario, d)) for d in sorted(logical.iterdir())]
    singles = {next(iter(t)) for t in found if len(t) == 1}
    assert singles == set(LOGICAL_DEFECTS[scenario])
    multis = {t for t in found if len(t) > 1}
    assert multis == {frozenset(c) for c in MULTI_COMBOS[scenario]}
    per_type = {d: sum(t == {d} for t in found) for d in LOGICAL_DEFECTS[scenario]}
    assert set(per_type.values()) == {generated.config.per_logical_class}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_masks_decode_to_the_labels_of_the_image_table(generated: Generated, scenario: str) -> None:
    images = generated.images(scenario)
    for row in images.itertuples():
        labels = set(row.labels)
        if row.loco_folder.endswith("good"):
            assert labels == {"normal"} and len(row.mask_paths) == 0
            continue
        kind = row.loco_folder.split("/")[-1]
        decoded = generated.defect_types(
            scenario, generated.loco / scenario / "ground_truth" / kind / row.stem
        )
        assert decoded == labels, row.image_id
        assert row.n_defect_types == len(labels)
        assert len(row.mask_paths) == len(labels), "one mask file per defect type"
        assert all((generated.loco / p).is_file() for p in row.mask_paths)
        assert (generated.loco / row.image_path).is_file()
        if kind == "structural_anomalies":
            assert labels <= set(structural_defects(scenario))
        json.loads(row.scene)


def test_multi_anomaly_images_show_both_types(generated: Generated) -> None:
    for scenario in ("juice_bottle", "pushpins", "screw_bag"):
        images = generated.images(scenario)
        multi = images[images.n_defect_types > 1]
        assert len(multi) == len(MULTI_COMBOS[scenario]) * generated.config.per_multi_combo
        for row in multi.itertuples():
            for defect in row.labels:
                assert generated.defect_mask(scenario, row.image_id, defect).any()


def saturation_warnings(loco_root, scenario: str, config: list[dict]) -> tuple[int, int]:
    """(channels whose absolute saturation threshold exceeds the defect's pixels, all channels): a ground-truth
    channel is one defect type's pixels in one mask folder, as the official MVTec LOCO evaluator reads them."""
    by_value = {entry["pixel_value"]: entry for entry in config}
    warned = channels = 0
    for folder in sorted((loco_root / scenario / "ground_truth").glob("*/*")):
        pixels = np.concatenate([np.asarray(Image.open(p)).ravel() for p in sorted(folder.glob("*.png"))])
        for value, area in zip(*np.unique(pixels[pixels > 0], return_counts=True), strict=True):
            entry = by_value[int(value)]
            channels += 1
            warned += not entry["relative_saturation"] and entry["saturation_threshold"] > area
    return warned, channels


def test_no_ground_truth_channel_trips_the_saturation_warning(generated: Generated) -> None:
    """Full-size thresholds over reduced-scale masks ask for more pixels than the defects have; the generated
    defects_config.json scales them with the image area and caps them at the smallest drawn region."""
    warned = {"shipped": 0, "written": 0}
    for scenario in SCENARIOS:
        written = json.loads((generated.loco / scenario / "defects_config.json").read_text())
        shipped = json.loads(defects_config_bytes(scenario))
        warned["written"] += saturation_warnings(generated.loco, scenario, written)[0]
        warned["shipped"] += saturation_warnings(generated.loco, scenario, shipped)[0]
    assert warned["written"] == 0 and warned["shipped"] > 50, warned

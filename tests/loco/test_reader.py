"""Each bad input of the LOCO reader gets a clear message naming the file and the fix."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from models.loco import LocoFormatError, read_defects_config, scan_loco_scenario
from tests.loco_tree import TreeSpec, build_tree, png_header_only, truncate


@pytest.fixture
def root(tmp_path):
    return build_tree(tmp_path, TreeSpec("pushpins", ["a", "b"], single={"a": 2, "b": 2}, multi=[(("a", "b"), 1)]))


def test_valid_tree_reads_labels_from_masks(root) -> None:
    found = scan_loco_scenario(root, "pushpins")
    logical = {im.image_id: im.labels for im in found.images if im.loco_folder == "test/logical_anomalies"}
    assert logical["pushpins/test/logical_anomalies/000"] == ("a",)
    assert logical["pushpins/test/logical_anomalies/004"] == ("a", "b")
    assert not found.excluded


def test_types_not_files_are_counted(root) -> None:
    extra = root / "pushpins/ground_truth/logical_anomalies/000/001.png"
    shutil.copy(root / "pushpins/ground_truth/logical_anomalies/000/000.png", extra)
    images = scan_loco_scenario(root, "pushpins").images
    image = next(im for im in images if im.image_id.endswith("logical_anomalies/000"))
    assert image.labels == ("a",) and image.n_defect_types == 1 and len(image.mask_paths) == 2


def test_missing_root(tmp_path) -> None:
    with pytest.raises(LocoFormatError, match=r"Folder missing: .*nowhere/pushpins.*LOGICLS_DATA_ROOT"):
        scan_loco_scenario(tmp_path / "nowhere", "pushpins")


@pytest.mark.parametrize("folder", ["train/good", "test/good", "test/logical_anomalies",
                                    "ground_truth/logical_anomalies"])
def test_missing_folder(root, folder: str) -> None:
    shutil.rmtree(root / "pushpins" / folder)
    with pytest.raises(LocoFormatError, match=rf"Folder missing: .*pushpins/{folder}\. An MVTec LOCO AD root"):
        scan_loco_scenario(root, "pushpins")


def test_anomalous_image_without_mask_folder(root) -> None:
    shutil.rmtree(root / "pushpins/ground_truth/logical_anomalies/001")
    with pytest.raises(LocoFormatError, match=r"Anomalous image .*logical_anomalies/001\.png has no mask folder "
                                              r".*ground_truth/logical_anomalies/001.*restore the folder"):
        scan_loco_scenario(root, "pushpins")


def test_empty_mask_folder(root) -> None:
    for f in (root / "pushpins/ground_truth/logical_anomalies/001").iterdir():
        f.unlink()
    with pytest.raises(LocoFormatError, match=r"logical_anomalies/001 holds no PNG files"):
        scan_loco_scenario(root, "pushpins")


def test_mask_size_differs_from_image(root) -> None:
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(root / "pushpins/ground_truth/logical_anomalies/002/000.png")
    with pytest.raises(LocoFormatError, match=r"Mask .*002/000\.png is 5x5 but its image .*002\.png is 12x8"):
        scan_loco_scenario(root, "pushpins")


IMAGE_003 = "test/logical_anomalies/003.png"
TARGETS = {"image": IMAGE_003, "mask": "ground_truth/logical_anomalies/003/000.png", "good": "train/good/001.png"}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bomb"])
@pytest.mark.parametrize("which", ["image", "mask", "good"])
def test_a_file_that_does_not_decode_is_left_out_with_reason_and_fix(root, which: str, damage: str) -> None:
    target = root / "pushpins" / TARGETS[which]
    if damage == "garbage":
        target.write_bytes(b"not a png at all")
    elif damage == "truncated":
        truncate(target)
    else:
        png_header_only(target, 20000, 20000)
    found = scan_loco_scenario(root, "pushpins")
    [excluded] = found.excluded
    image = target if which != "mask" else root / "pushpins" / IMAGE_003
    assert excluded.image_path == image and excluded.unreadable_file == target
    assert str(target) in excluded.reason
    if damage == "bomb":
        assert "is too large to decode safely" in excluded.reason and "downscale it" in excluded.reason
    else:
        assert "does not decode" in excluded.reason and "restore it from the archive" in excluded.reason
    assert (f"its image {image} is left out" if which == "mask" else "it is left out") in excluded.reason
    assert image not in {im.image_path for im in found.images}
    assert len(found.images) == 3 + 2 + 5 - 1


def test_a_16_bit_mask_says_masks_must_be_8_bit(root) -> None:
    mask = root / "pushpins/ground_truth/logical_anomalies/002/000.png"
    Image.fromarray(np.asarray(Image.open(mask)).astype(np.uint16) << 8).save(mask)
    assert Image.open(mask).mode.startswith("I")
    with pytest.raises(LocoFormatError, match=rf"Mask {mask} is a 16-bit PNG \(mode I;16\): masks must be 8-bit"):
        scan_loco_scenario(root, "pushpins")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("saturation_threshold", "high", "saturation_threshold must be a number, got 'high'"),
    ("relative_saturation", "yes", "relative_saturation must be true or false, got 'yes'"),
])
def test_defects_config_values_name_the_file_and_entry(root, field: str, value: str, message: str) -> None:
    path = root / "pushpins/defects_config.json"
    config = json.loads(path.read_text())
    config[1][field] = value
    path.write_text(json.dumps(config))
    with pytest.raises(LocoFormatError, match=rf"{path}, entry 1 \(b\): {message}"):
        scan_loco_scenario(root, "pushpins")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"is not valid JSON"),
        ('{"defect_name": "a"}', r"must hold a non-empty list"),
        ('[{"defect_name": "a"}]', r"entry 0 lacks pixel_value"),
        ('[{"defect_name": "a", "pixel_value": 300}]', r"pixel_value must be an integer 1-255, got 300"),
        ('[{"defect_name": "a", "pixel_value": 1}, {"defect_name": "a", "pixel_value": 2}]',
         r"duplicate name a"),
    ],
)
def test_malformed_defects_config(root, content: str, message: str) -> None:
    path = root / "pushpins/defects_config.json"
    path.write_text(content)
    with pytest.raises(LocoFormatError, match=rf"{path}.*{message}"):
        read_defects_config(path)
    with pytest.raises(LocoFormatError, match=message):
        scan_loco_scenario(root, "pushpins")


def test_unknown_pixel_value_warns_and_excludes(root, caplog) -> None:
    path = root / "pushpins/defects_config.json"
    config = [e for e in json.loads(path.read_text()) if e["defect_name"] != "b"]
    path.write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="models.loco"):
        found = scan_loco_scenario(root, "pushpins")
    excluded = {e.image_path.name: e.unknown_pixel_values for e in found.excluded}
    assert excluded == {"002.png": (254,), "003.png": (254,), "004.png": (254,)}
    assert "pixel value(s) [254] are not in defects_config.json" in caplog.text
    assert "logical_anomalies/002" in caplog.text
    assert {im.image_path.name for im in found.images if im.loco_folder == "test/logical_anomalies"} == {
        "000.png", "001.png"}

"""Each bad input of the LOCO reader gets a clear message naming the file and the fix."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from models.loco import LocoFormatError, read_defects_config, scan_category
from tests.loco_tree import TreeSpec, build_tree


@pytest.fixture
def root(tmp_path):
    return build_tree(tmp_path, TreeSpec("pushpins", ["a", "b"], single={"a": 2, "b": 2}, multi=[(("a", "b"), 1)]))


def test_valid_tree_reads_labels_from_masks(root) -> None:
    category = scan_category(root, "pushpins")
    logical = {im.image_id: im.labels for im in category.images if im.source == "test/logical_anomalies"}
    assert logical["pushpins/test/logical_anomalies/000"] == ("a",)
    assert logical["pushpins/test/logical_anomalies/004"] == ("a", "b")
    assert not category.excluded


def test_types_not_files_are_counted(root) -> None:
    extra = root / "pushpins/ground_truth/logical_anomalies/000/001.png"
    shutil.copy(root / "pushpins/ground_truth/logical_anomalies/000/000.png", extra)
    image = next(im for im in scan_category(root, "pushpins").images if im.image_id.endswith("logical_anomalies/000"))
    assert image.labels == ("a",) and image.n_defect_types == 1 and len(image.mask_paths) == 2


def test_missing_root(tmp_path) -> None:
    with pytest.raises(LocoFormatError, match=r"Folder missing: .*nowhere/pushpins.*LOGICLS_DATA_ROOT"):
        scan_category(tmp_path / "nowhere", "pushpins")


@pytest.mark.parametrize("folder", ["train/good", "test/good", "test/logical_anomalies",
                                    "ground_truth/logical_anomalies"])
def test_missing_folder(root, folder: str) -> None:
    shutil.rmtree(root / "pushpins" / folder)
    with pytest.raises(LocoFormatError, match=rf"Folder missing: .*pushpins/{folder}\. An MVTec LOCO AD root"):
        scan_category(root, "pushpins")


def test_anomalous_image_without_mask_folder(root) -> None:
    shutil.rmtree(root / "pushpins/ground_truth/logical_anomalies/001")
    with pytest.raises(LocoFormatError, match=r"Anomalous image .*logical_anomalies/001\.png has no mask folder "
                                              r".*ground_truth/logical_anomalies/001.*restore the folder"):
        scan_category(root, "pushpins")


def test_empty_mask_folder(root) -> None:
    for f in (root / "pushpins/ground_truth/logical_anomalies/001").iterdir():
        f.unlink()
    with pytest.raises(LocoFormatError, match=r"logical_anomalies/001 holds no PNG files"):
        scan_category(root, "pushpins")


def test_mask_size_differs_from_image(root) -> None:
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(root / "pushpins/ground_truth/logical_anomalies/002/000.png")
    with pytest.raises(LocoFormatError, match=r"Mask .*002/000\.png is 5x5 but its image .*002\.png is 12x8"):
        scan_category(root, "pushpins")


@pytest.mark.parametrize("which", ["image", "mask"])
def test_unreadable_png(root, which: str) -> None:
    target = ("test/logical_anomalies/003.png" if which == "image"
              else "ground_truth/logical_anomalies/003/000.png")
    (root / "pushpins" / target).write_bytes(b"not a png at all")
    with pytest.raises(LocoFormatError, match=rf"Unreadable {which} .*{target.replace('.', r'[.]')}"):
        scan_category(root, "pushpins")


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
        scan_category(root, "pushpins")


def test_unknown_pixel_value_warns_and_excludes(root, caplog) -> None:
    path = root / "pushpins/defects_config.json"
    config = [e for e in json.loads(path.read_text()) if e["defect_name"] != "b"]
    path.write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="models.loco"):
        category = scan_category(root, "pushpins")
    excluded = {e.image_path.name: e.unknown_pixel_values for e in category.excluded}
    assert excluded == {"002.png": (254,), "003.png": (254,), "004.png": (254,)}
    assert "pixel value(s) [254] are not in defects_config.json" in caplog.text
    assert "logical_anomalies/002" in caplog.text
    assert {im.image_path.name for im in category.images if im.source == "test/logical_anomalies"} == {
        "000.png", "001.png"}

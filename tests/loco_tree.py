"""Builds small MVTec LOCO AD trees for tests: the real layout with tiny images."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# The logical defect types of MVTec LOCO AD (../shared/loco/README.md).
LOGICAL_CLASSES: dict[str, list[str]] = {
    "breakfast_box": [
        "missing_almonds", "missing_bananas", "missing_toppings", "missing_cereals",
        "missing_cereals_and_toppings", "2_nectarines_1_tangerine", "1_nectarine_1_tangerine",
        "0_nectarines_2_tangerines", "0_nectarines_3_tangerines", "3_nectarines_0_tangerines",
        "0_nectarines_1_tangerine", "0_nectarines_0_tangerines", "0_nectarines_4_tangerines",
        "compartments_swapped", "overflow", "underflow", "wrong_ratio",
    ],
    "juice_bottle": [
        "missing_top_label", "missing_bottom_label", "swapped_labels", "misplaced_label_top",
        "misplaced_label_bottom", "empty_bottle", "wrong_fill_level_too_much", "wrong_fill_level_not_enough",
        "misplaced_fruit_icon", "missing_fruit_icon", "wrong_juice_type",
    ],
    "pushpins": ["1_additional_pushpin", "2_additional_pushpins", "missing_pushpin", "missing_separator"],
    "screw_bag": [
        "screw_too_long", "screw_too_short", "1_very_short_screw", "2_very_short_screws",
        "1_additional_long_screw", "1_additional_short_screw", "1_additional_nut", "2_additional_nuts",
        "1_additional_washer", "2_additional_washers", "1_missing_long_screw", "1_missing_short_screw",
        "1_missing_nut", "2_missing_nuts", "1_missing_washer", "2_missing_washers",
    ],
    "splicing_connectors": [
        "wrong_connector_type_5_2", "wrong_connector_type_5_3", "wrong_connector_type_3_2",
        "cable_too_short_T2", "cable_too_short_T3", "cable_too_short_T5", "missing_connector",
        "missing_connector_and_cable", "missing_cable", "extra_cable", "cable_color", "cable_cut",
        "wrong_cable_location",
    ],
}

MULTI_COMBOS: dict[str, list[tuple[str, str]]] = {
    "juice_bottle": [("missing_top_label", "missing_bottom_label")],
    "pushpins": [("1_additional_pushpin", "missing_pushpin")],
    "screw_bag": [
        ("1_additional_nut", "1_missing_washer"),
        ("1_additional_washer", "1_missing_nut"),
        ("1_additional_long_screw", "1_missing_short_screw"),
        ("1_additional_short_screw", "1_missing_long_screw"),
    ],
}

# Table I of the paper and the folder sizes of ../shared/loco/README.md.
TABLE_I = {
    "breakfast_box": {"train_normal": 351, "train_single": 66, "test_normal": 102, "test_single": 17, "test_multi": 0},
    "juice_bottle": {"train_normal": 335, "train_single": 104, "test_normal": 94, "test_single": 26, "test_multi": 12},
    "screw_bag": {"train_normal": 360, "train_single": 90, "test_normal": 122, "test_single": 23, "test_multi": 24},
    "pushpins": {"train_normal": 372, "train_single": 32, "test_normal": 138, "test_single": 48, "test_multi": 11},
    "splicing_connectors": {
        "train_normal": 360, "train_single": 86, "test_normal": 119, "test_single": 22, "test_multi": 0,
    },
}
VALIDATION_GOOD = {"breakfast_box": 62, "juice_bottle": 54, "pushpins": 69, "screw_bag": 60, "splicing_connectors": 60}
STRUCTURAL = {"breakfast_box": 90, "juice_bottle": 94, "pushpins": 81, "screw_bag": 82, "splicing_connectors": 85}


@dataclass
class TreeSpec:
    """What to put into one category folder."""

    scenario: str
    classes: list[str]
    train_good: int = 3
    validation_good: int = 1
    test_good: int = 2
    single: dict[str, int] = field(default_factory=dict)
    multi: list[tuple[Sequence[str], int]] = field(default_factory=list)
    structural: int = 1
    size: tuple[int, int] = (12, 8)  # width, height


def defects_config(classes: Sequence[str]) -> list[dict[str, object]]:
    """A defects_config.json listing the logical classes (values 255 down) and one structural type."""
    entries = [
        {"defect_name": name, "pixel_value": 255 - i, "saturation_threshold": 1.0, "relative_saturation": True}
        for i, name in enumerate(classes)
    ]
    entries.append({"defect_name": "contamination", "pixel_value": 255 - len(classes),
                    "saturation_threshold": 1.0, "relative_saturation": True})
    return entries


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def build_tree(root: Path, spec: TreeSpec) -> Path:
    """Write ``root/<scenario>`` in the MVTec LOCO AD layout; returns ``root``."""
    cat = root / spec.scenario
    w, h = spec.size
    config = defects_config(spec.classes)
    value = {e["defect_name"]: e["pixel_value"] for e in config}
    (cat).mkdir(parents=True, exist_ok=True)
    (cat / "defects_config.json").write_text(json.dumps(config, indent=2))
    image = np.full((h, w, 3), 128, dtype=np.uint8)
    for folder, n in (("train/good", spec.train_good), ("validation/good", spec.validation_good),
                      ("test/good", spec.test_good)):
        (cat / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(cat / folder / f"{i:03d}.png", image)
    logical: list[Sequence[str]] = [[c] for c, n in spec.single.items() for _ in range(n)]
    logical += [combo for combo, n in spec.multi for _ in range(n)]
    (cat / "test/logical_anomalies").mkdir(parents=True, exist_ok=True)
    (cat / "ground_truth/logical_anomalies").mkdir(parents=True, exist_ok=True)
    for i, labels in enumerate(logical):
        _png(cat / "test/logical_anomalies" / f"{i:03d}.png", image)
        for j, label in enumerate(labels):
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[j % h, :] = value[label]
            _png(cat / "ground_truth/logical_anomalies" / f"{i:03d}" / f"{j:03d}.png", mask)
    for i in range(spec.structural):
        _png(cat / "test/structural_anomalies" / f"{i:03d}.png", image)
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[0, 0] = value["contamination"]
        _png(cat / "ground_truth/structural_anomalies" / f"{i:03d}" / "000.png", mask)
    return root


def spread(total: int, keys: Sequence[object]) -> list[int]:
    """``total`` split over ``keys`` as evenly as possible (earlier keys get the remainder)."""
    base, extra = divmod(total, len(keys))
    return [base + (1 if i < extra else 0) for i in range(len(keys))]


def real_sized_spec(scenario: str) -> TreeSpec:
    """A tree with the real folder sizes and defect types of MVTec LOCO AD (tiny images)."""
    row = TABLE_I[scenario]
    classes = LOGICAL_CLASSES[scenario]
    singles = dict(zip(classes, spread(row["train_single"] + row["test_single"], classes), strict=True))
    combos = MULTI_COMBOS.get(scenario, [])
    multi = list(zip(combos, spread(row["test_multi"], combos), strict=True)) if combos else []
    return TreeSpec(
        scenario=scenario, classes=classes, train_good=row["train_normal"],
        validation_good=VALIDATION_GOOD[scenario], test_good=row["test_normal"], single=singles,
        multi=multi, structural=STRUCTURAL[scenario], size=(8, 6),
    )


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a share of its bytes, as an interrupted copy leaves it (the header still reads)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that announces ``width`` × ``height`` grey pixels and holds none: a decompression bomb's header
    (PIL refuses it when the file is opened), written without allocating the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path

"""The instance annotations tell the truth about every image, as the design's rendering table says."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from models.objects import OBJECT_COLUMNS, ImageObject
from models.synth import SCENARIOS
from models.synth.canvas import dilate
from models.synth.scenes.screw_bag import LENGTHS
from tests.synth.synth_helpers import Generated

# Pairs that may overlap because one lies on the other; everything else keeps a gap.
NESTED = {
    ("box", "pushpin"),
    ("bottle", "juice"),
    ("bottle", "fruit label"),
    ("bottle", "text label"),
    ("bottle", "fruit icon"),
    ("juice", "fruit label"),
    ("juice", "text label"),
    ("juice", "fruit icon"),
    ("fruit label", "fruit icon"),
    ("cereals", "banana chip"),
    ("cereals", "almond"),
    ("connector", "cable"),  # a cable is plugged into its connectors: they touch, never overlap
}
NORMAL_COUNTS = {
    "breakfast_box": {"nectarine": 1, "tangerine": 2, "cereals": 1},
    "juice_bottle": {"bottle": 1, "juice": 1, "fruit label": 1, "text label": 1, "fruit icon": 1},
    "pushpins": {"box": 1, "pushpin": 15},
    "screw_bag": {"screw": 2, "nut": 2, "washer": 2},
    "splicing_connectors": {"connector": 2, "cable": 1},
}


def _by_class(generated: Generated, scenario: str) -> dict[str, list[tuple[str, list[ImageObject]]]]:
    """Class name → [(image_id, objects)] for good and single-anomaly logical images."""
    images = generated.images(scenario)
    objects = generated.objects(scenario)
    out: dict[str, list[tuple[str, list[ImageObject]]]] = {}
    for row in images.itertuples():
        if row.loco_folder.endswith("structural_anomalies"):
            continue
        out.setdefault("+".join(sorted(row.labels)), []).append((row.image_id, objects.get(row.image_id, [])))
    return out


def _count(objs: list[ImageObject], label: str) -> int:
    return sum(o.label == label for o in objs)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_annotation_tables_follow_the_object_schema(generated: Generated, scenario: str) -> None:
    frame = pd.read_parquet(generated.out / "annotations" / f"{scenario}.parquet")
    assert list(frame.columns) == OBJECT_COLUMNS
    images = generated.images(scenario)
    assert set(frame.image_id) <= set(images.image_id)
    assert all(i.startswith(f"{scenario}/") for i in images.image_id)
    h, w = images.loc[0, ["height", "width"]]
    for objs in generated.objects(scenario).values():
        for o in objs:
            m = o.mask()
            assert m.shape == (h, w) and m.sum() == o.area
            ys, xs = np.nonzero(m)
            assert o.bbox == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_normal_images_have_the_normal_counts(generated: Generated, scenario: str) -> None:
    normal = _by_class(generated, scenario)["normal"]
    assert len(normal) == 5  # train 2 + validation 1 + test 2
    for image_id, objs in normal:
        counts = Counter(o.label for o in objs)
        for label, n in NORMAL_COUNTS[scenario].items():
            assert counts[label] == n, f"{image_id}: {label}"
    if scenario == "breakfast_box":
        for image_id, objs in normal:
            chips, almonds = _count(objs, "banana chip"), _count(objs, "almond")
            assert 4 <= chips <= 6 and 4 <= almonds <= 6, image_id


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_objects_keep_apart_unless_one_lies_on_the_other(generated: Generated, scenario: str) -> None:
    for objs in generated.objects(scenario).values():
        masks = [(o.label, o.mask()) for o in objs]
        for (la, ma), (lb, mb) in combinations(masks, 2):
            if (la, lb) in NESTED or (lb, la) in NESTED:
                continue
            assert not (dilate(ma, 2) & mb).any(), f"{la} and {lb} touch"


def test_annotated_masks_are_the_drawn_pixels(generated: Generated) -> None:
    """Each pin's pixels have the pin colour, the pixels around them do not."""
    objects = generated.objects("pushpins")
    image_id = "pushpins/train/good/000"
    image = np.asarray(Image.open(generated.loco / f"{image_id}.png")).astype(int)
    for pin in (o for o in objects[image_id] if o.label == "pushpin"):
        m = pin.mask()
        ring = dilate(m, 2) & ~m
        inside, around = image[m], image[ring]
        yellow = lambda px: (px[:, 0] > 120) & (px[:, 2] < 90)  # noqa: E731
        assert yellow(inside).mean() > 0.95 and yellow(around).mean() < 0.05


def _cell_of(box: ImageObject, cx: float, cy: float) -> tuple[int, int]:
    """The compartment of a point: the box's bbox split into 3 equal rows and 5 equal columns."""
    x0, y0, x1, y1 = box.bbox
    return int((cy - y0) * 3 // (y1 - y0)), int((cx - x0) * 5 // (x1 - x0))


def _cells(objs: list[ImageObject]) -> np.ndarray:
    """Pins per compartment, from each pin's centroid."""
    box = next(o for o in objs if o.label == "box")
    grid = np.zeros((3, 5), int)
    for pin in (o for o in objs if o.label == "pushpin"):
        r, c = _cell_of(box, *pin.centroid)
        assert [r, c] == pin.attributes["cell"]
        grid[r, c] += 1
    return grid


def test_pushpins_rendering_table(generated: Generated) -> None:
    expected = {
        "normal": (0, 0),
        "missing_separator": (0, 0),
        "1_additional_pushpin": (1, 0),
        "2_additional_pushpins": (2, 0),
        "missing_pushpin": (0, 1),
        "1_additional_pushpin+missing_pushpin": (1, 1),
    }
    by_class = _by_class(generated, "pushpins")
    assert set(by_class) == set(expected)
    for cls, items in by_class.items():
        for image_id, objs in items:
            grid = _cells(objs)
            box = next(o for o in objs if o.label == "box")
            assert box.attributes["separators_complete"] == (cls != "missing_separator"), image_id
            extra, empty = int(np.maximum(grid - 1, 0).sum()), int((grid == 0).sum())
            assert (extra, empty) == expected[cls], f"{image_id}: {grid.tolist()}"
            if "missing_pushpin" in cls:
                ys, xs = np.nonzero(generated.defect_mask("pushpins", image_id, "missing_pushpin"))
                assert grid[_cell_of(box, xs.mean(), ys.mean())] == 0, (
                    "the marked compartment is the empty one"
                )
            if "additional" in cls:
                defect = cls.split("+")[0]
                region = generated.defect_mask("pushpins", image_id, defect)
                marked = [o for o in objs if o.label == "pushpin" and (o.mask() & region).any()]
                assert len(marked) == expected[cls][0], "the extra pins are marked"


SCREW_TABLE = {
    # class: (long or too long, short or too short, very short, nuts, washers)
    "normal": (1, 1, 0, 2, 2),
    "screw_too_long": (1, 1, 0, 2, 2),
    "screw_too_short": (1, 1, 0, 2, 2),
    "1_very_short_screw": (1, 0, 1, 2, 2),
    "2_very_short_screws": (0, 0, 2, 2, 2),
    "1_additional_long_screw": (2, 1, 0, 2, 2),
    "1_additional_short_screw": (1, 2, 0, 2, 2),
    "1_additional_nut": (1, 1, 0, 3, 2),
    "2_additional_nuts": (1, 1, 0, 4, 2),
    "1_additional_washer": (1, 1, 0, 2, 3),
    "2_additional_washers": (1, 1, 0, 2, 4),
    "1_missing_long_screw": (0, 1, 0, 2, 2),
    "1_missing_short_screw": (1, 0, 0, 2, 2),
    "1_missing_nut": (1, 1, 0, 1, 2),
    "2_missing_nuts": (1, 1, 0, 0, 2),
    "1_missing_washer": (1, 1, 0, 2, 1),
    "2_missing_washers": (1, 1, 0, 2, 0),
    "1_additional_nut+1_missing_washer": (1, 1, 0, 3, 1),
    "1_additional_washer+1_missing_nut": (1, 1, 0, 1, 3),
    "1_additional_long_screw+1_missing_short_screw": (2, 0, 0, 2, 2),
    "1_additional_short_screw+1_missing_long_screw": (0, 2, 0, 2, 2),
}


def test_screw_bag_rendering_table(generated: Generated) -> None:
    by_class = _by_class(generated, "screw_bag")
    assert set(by_class) == set(SCREW_TABLE)
    unit = 430 * generated.config.scale  # the normal long screw length L in pixels
    for cls, items in by_class.items():
        for image_id, objs in items:
            classes = [o.attributes["length_class"] for o in objs if o.label == "screw"]
            row = (
                sum(c in ("long", "too long") for c in classes),
                sum(c in ("short", "too short") for c in classes),
                classes.count("very short"),
                _count(objs, "nut"),
                _count(objs, "washer"),
            )
            assert row == SCREW_TABLE[cls], image_id
            assert ("too long" in classes) == (cls == "screw_too_long")
            assert ("too short" in classes) == (cls == "screw_too_short")
            for screw in (o for o in objs if o.label == "screw"):
                nominal = LENGTHS[screw.attributes["length_class"]]
                assert abs(screw.attributes["length_px"] / unit / nominal - 1) < 0.06, image_id
                # The drawn pixels span that length along the screw's axis.
                ys, xs = np.nonzero(screw.mask())
                a = np.deg2rad(screw.attributes["angle_deg"])
                along = xs * np.cos(a) + ys * np.sin(a)
                assert abs(np.ptp(along) - screw.attributes["length_px"]) <= 2.5, (
                    f"{image_id}: {screw.attributes}"
                )


def test_screw_bag_missing_parts_leave_their_place_empty(generated: Generated) -> None:
    for cls, items in _by_class(generated, "screw_bag").items():
        for defect in cls.split("+"):
            if "_missing_" not in defect:
                continue
            for image_id, objs in items:
                region = generated.defect_mask("screw_bag", image_id, defect)
                for o in objs:
                    assert not (o.mask() & region).any(), f"{image_id}: {o.label} lies in the {defect} region"


def _juice_facts(objs: list[ImageObject]) -> dict[str, ImageObject]:
    return {o.label: o for o in objs}


def test_juice_bottle_rendering_table(generated: Generated) -> None:
    scale = generated.config.scale
    for cls, items in _by_class(generated, "juice_bottle").items():
        for image_id, objs in items:
            o = _juice_facts(objs)
            assert len(o) == len(objs), f"{image_id}: one object per kind"
            top = "missing_top_label" not in cls
            bottom = "missing_bottom_label" not in cls
            assert ("fruit label" in o) == top and ("text label" in o) == bottom, image_id
            assert ("fruit icon" in o) == (top and cls != "missing_fruit_icon"), image_id
            assert ("juice" in o) == (cls != "empty_bottle"), image_id
            if top and bottom:
                fruit_above = o["fruit label"].centroid[1] < o["text label"].centroid[1]
                assert fruit_above == (cls != "swapped_labels"), image_id
            if "fruit icon" in o:
                icon, label = o["fruit icon"], o["fruit label"]
                if "juice" in o:
                    matches = icon.attributes["fruit"] == o["juice"].attributes["fruit"]
                    assert matches == (cls != "wrong_juice_type"), image_id
                offset = abs(icon.centroid[0] - label.centroid[0]) / label.width
                assert (offset > 0.15) == (cls == "misplaced_fruit_icon"), f"{image_id}: {offset:.2f}"
            if "fruit label" in o:
                assert o["fruit label"].attributes["centred"] == (cls != "misplaced_label_top")
            if "text label" in o:
                assert o["text label"].attributes["centred"] == (cls != "misplaced_label_bottom")
            if "juice" in o:
                level = o["juice"].bbox[1] - o["bottle"].attributes["neck_base_y"]
                expected = {
                    "wrong_fill_level_too_much": "too much",
                    "wrong_fill_level_not_enough": "too little",
                }
                assert o["juice"].attributes["fill"] == expected.get(cls, "just right")
                if cls == "wrong_fill_level_too_much":
                    assert level < -100 * scale, image_id
                elif cls == "wrong_fill_level_not_enough":
                    assert level > 200 * scale, image_id
                else:
                    assert abs(level) <= 12 * scale + 2, f"{image_id}: level {level}"


def test_breakfast_box_rendering_table(generated: Generated) -> None:
    fruit = {
        "2_nectarines_1_tangerine": (2, 1),
        "1_nectarine_1_tangerine": (1, 1),
        "0_nectarines_2_tangerines": (0, 2),
        "0_nectarines_3_tangerines": (0, 3),
        "3_nectarines_0_tangerines": (3, 0),
        "0_nectarines_1_tangerine": (0, 1),
        "0_nectarines_0_tangerines": (0, 0),
        "0_nectarines_4_tangerines": (0, 4),
    }
    by_class = _by_class(generated, "breakfast_box")
    normal_area = np.mean([_juice_facts(objs)["cereals"].area for _, objs in by_class["normal"]])
    for cls, items in by_class.items():
        for image_id, objs in items:
            counts = (_count(objs, "nectarine"), _count(objs, "tangerine"))
            assert counts == fruit.get(cls, (1, 2)), image_id
            chips, almonds = _count(objs, "banana chip"), _count(objs, "almond")
            assert (chips == 0) == (
                cls in ("missing_bananas", "missing_toppings", "missing_cereals_and_toppings")
            )
            assert (almonds == 0) == (
                cls in ("missing_almonds", "missing_toppings", "missing_cereals_and_toppings")
            )
            if chips and almonds:
                assert (max(chips, almonds) >= 3 * min(chips, almonds)) == (cls == "wrong_ratio"), image_id
            cereals = [o for o in objs if o.label == "cereals"]
            assert (not cereals) == (cls in ("missing_cereals", "missing_cereals_and_toppings")), image_id
            if not cereals:
                continue
            heap = cereals[0]
            for topping in (o for o in objs if o.label in ("banana chip", "almond")):
                assert not (topping.mask() & ~heap.mask()).any(), f"{image_id}: toppings lie on the cereals"
            fruit_x = [o.centroid[0] for o in objs if o.label in ("nectarine", "tangerine")]
            if fruit_x:
                left = max(fruit_x) < heap.centroid[0]
                assert left == (cls != "compartments_swapped"), image_id
            amount = {"overflow": "too much", "underflow": "too little"}.get(cls, "just right")
            assert heap.attributes["amount"] == amount
            if cls == "underflow":
                assert heap.area < 0.5 * normal_area, image_id
            elif cls == "overflow":
                assert heap.area > 1.1 * normal_area, image_id


def test_splicing_connectors_rendering_table(generated: Generated) -> None:
    colour_of = {2: "yellow", 3: "blue", 5: "red"}
    width = generated.images("splicing_connectors").loc[0, "width"]
    for cls, items in _by_class(generated, "splicing_connectors").items():
        for image_id, objs in items:
            connectors = [o for o in objs if o.label == "connector"]
            cables = [o for o in objs if o.label == "cable"]
            n_conn = 1 if cls.startswith("missing_connector") else 2
            n_cables = {
                "missing_connector_and_cable": 0,
                "missing_cable": 0,
                "extra_cable": 2,
                "cable_cut": 2,
            }
            assert len(connectors) == n_conn and len(cables) == n_cables.get(cls, 1), image_id
            clamps = sorted(c.attributes["clamps"] for c in connectors)
            if cls.startswith("wrong_connector_type"):
                assert clamps == sorted(int(k) for k in cls.split("_")[-2:]), image_id
            elif n_conn == 2:
                assert clamps[0] == clamps[1], image_id
            if cls.startswith("cable_too_short"):
                assert clamps == [int(cls[-1])] * 2
            if n_conn == 2:
                gap = abs(connectors[0].centroid[0] - connectors[1].centroid[0]) / width
                assert (gap < 0.45) == cls.startswith("cable_too_short"), f"{image_id}: {gap:.2f}"
            for cable in cables:
                matches = cable.attributes["colour"] in {colour_of[k] for k in clamps}
                assert matches == (cls != "cable_color"), image_id
            if cls == "cable_cut":
                assert sorted(c.attributes["piece"] for c in cables) == [1, 2]
            for cable in cables:  # terminals count from 1 at the top; a free end is None
                assert all(t is None or 1 <= t <= min(clamps) for t in cable.attributes["terminals"]), image_id
            if cls == "wrong_cable_location":
                left, right = cables[0].attributes["terminals"]
                assert left != right
            elif n_conn == 2 and cables and cls != "cable_cut":
                assert all(c.attributes["terminals"][0] == c.attributes["terminals"][1] for c in cables), image_id
            if cls == "cable_cut":
                assert sorted(c.attributes["terminals"].count(None) for c in cables) == [1, 1], image_id

"""The inverse with grounded objects: measured answers, grid cells, and contradictions."""

from __future__ import annotations

import pytest

from models.spec import NORMAL, aggregate, contradictions, inverse, measure, spec_from_dict
from tests.spec.helpers import make_object

BOX = (100, 100, 1600, 700)  # x0, y0, x1, y1: cells of 300 x 200 pixels


def pushpin_scene(counts: list[list[int]], box: tuple[int, int, int, int] = BOX) -> list:
    """A box and, per cell, that many pins spread inside the cell."""
    x0, y0, x1, y1 = box
    cw, ch = (x1 - x0) / 5, (y1 - y0) / 3
    objects = [make_object("box", (x0 + x1) / 2, (y0 + y1) / 2, w=x1 - x0, h=y1 - y0)]
    for r, row in enumerate(counts):
        for c, n in enumerate(row):
            for k in range(n):
                cx = x0 + cw * c + cw * (k + 1) / (n + 1)
                objects.append(make_object("pushpin", cx, y0 + ch * r + ch / 2))
    return objects


FULL = [[1] * 5 for _ in range(3)]


def test_grid_measure_of_a_normal_box(specs):
    assert measure(specs["pushpins"], pushpin_scene(FULL)) == {f"row_{i}": [1] * 5 for i in (1, 2, 3)}


def test_missing_pushpin_takes_the_cell_grounding_finds_empty(specs):
    counts = [[1] * 5, [1, 1, 0, 1, 1], [1] * 5]
    result = inverse(specs["pushpins"], {"missing_pushpin"}, pushpin_scene(counts))
    assert result.consistent
    assert result.answers["row_2"] == [1, 1, 0, 1, 1]
    assert result.answers["row_3"] == [1] * 5  # not the canonical cell of the label-only answer
    assert aggregate(specs["pushpins"], result.answers).labels == {"missing_pushpin"}


def test_additional_and_missing_pin_in_the_same_row(specs):
    counts = [[2, 1, 0, 1, 1], [1] * 5, [1] * 5]
    result = inverse(specs["pushpins"], {"1_additional_pushpin", "missing_pushpin"}, pushpin_scene(counts))
    assert result.consistent and result.answers["row_1"] == [2, 1, 0, 1, 1]


def test_normal_box_where_grounding_finds_fourteen_pins(specs):
    counts = [[1] * 5, [1] * 5, [1, 1, 1, 0, 1]]
    result = inverse(specs["pushpins"], {NORMAL}, pushpin_scene(counts))
    assert not result.consistent
    assert result.answers == specs["pushpins"].normal_answers()  # the label answers are kept
    assert result.measured["row_3"] == [1, 1, 1, 0, 1]
    assert any("row_3: objects give [1, 1, 1, 0, 1]" in c for c in result.contradictions)
    assert any("{missing_pushpin}" in c for c in result.contradictions)
    assert contradictions(specs["pushpins"], {NORMAL}, pushpin_scene(counts)) == list(result.contradictions)


def test_pins_outside_a_slightly_small_box_count_in_the_nearest_cell(specs, obj):
    objects = pushpin_scene(FULL)
    objects.append(obj("pushpin", 1605, 110))  # just right of the box, top row
    assert measure(specs["pushpins"], objects)["row_1"] == [1, 1, 1, 1, 2]


def test_without_a_box_the_rows_are_not_measured(specs):
    objects = [o for o in pushpin_scene(FULL) if o.label != "box"]
    result = inverse(specs["pushpins"], {NORMAL}, objects)
    assert result.consistent and result.measured == {}
    assert "no 'box' object" in result.unmeasured["row_1"]


def screws(*length_classes: str) -> list:
    return [make_object("screw", 200 + 150 * i, 300, length_class=lc) for i, lc in enumerate(length_classes)]


def parts(nuts: int = 2, washers: int = 2) -> list:
    return [make_object("nut", 100 + 60 * i, 600) for i in range(nuts)] + [
        make_object("washer", 900 + 60 * i, 600) for i in range(washers)
    ]


@pytest.mark.parametrize(
    ("labels", "scene", "expected"),
    [
        ({NORMAL}, screws("long", "short") + parts(), {"long_screws": 1, "short_screws": 1, "nuts": 2}),
        ({"screw_too_long"}, screws("too long", "short") + parts(), {"screw_length": "too long"}),
        ({"1_very_short_screw"}, screws("long", "very_short") + parts(), {"very_short_screws": 1}),
        ({"1_missing_nut"}, screws("long", "short") + parts(nuts=1), {"nuts": 1}),
        (
            {"1_additional_nut", "1_missing_washer"},
            screws("long", "short") + parts(nuts=3, washers=1),
            {"nuts": 3, "washers": 1},
        ),
    ],
)
def test_screw_bag_measures_from_annotations(specs, labels, scene, expected):
    result = inverse(specs["screw_bag"], labels, scene)
    assert result.consistent, result.contradictions
    assert {k: result.answers[k] for k in expected} == expected


def test_screws_without_length_class_are_not_measured(specs, obj):
    scene = [obj("screw", 100, 100), obj("screw", 300, 100), *parts(washers=1)]
    result = inverse(specs["screw_bag"], {"1_missing_washer"}, scene)
    assert result.consistent
    assert set(result.measured) == {"nuts", "washers"}
    assert "no 'length_class' attribute" in result.unmeasured["long_screws"]


def test_washer_missed_by_grounding_contradicts_a_normal_label(specs):
    result = inverse(specs["screw_bag"], {NORMAL}, screws("long", "short") + parts(washers=1))
    assert not result.consistent and result.answers["washers"] == 2


def test_connector_sizes_come_from_the_objects(specs, obj):
    scene = [
        obj("connector", 300, 400, clamps=3),
        obj("connector", 1300, 420, clamps=3),
        obj("cable", 800, 400),
    ]
    normal = inverse(specs["splicing_connectors"], {NORMAL}, scene)
    assert normal.consistent and normal.answers["clamps"] == [3, 3]
    short = inverse(specs["splicing_connectors"], {"cable_too_short_T3"}, scene)
    assert short.consistent and short.answers["clamps"] == [3, 3]
    wrong = inverse(specs["splicing_connectors"], {"cable_too_short_T5"}, scene)
    assert not wrong.consistent  # the label says 5-clamp connectors, the objects say 3


def test_breakfast_box_layout_and_ratio(specs, obj):
    fruit = [obj("nectarine", 300, 500), obj("tangerine", 300, 300), obj("tangerine", 400, 700)]
    cereals = [obj("cereals", 1200, 600, w=500, h=900)]
    toppings = [obj("banana chip", 1100 + 20 * i, 500) for i in range(12)] + [
        obj("almond", 1300 + 20 * i, 500) for i in range(2)
    ]
    result = inverse(specs["breakfast_box"], {"wrong_ratio"}, fruit + cereals + toppings)
    assert result.consistent and result.measured["topping_ratio_ok"] is False
    swapped = [obj(o.label, 1700 - o.centroid[0], o.centroid[1]) for o in fruit + cereals]
    assert measure(specs["breakfast_box"], swapped)["fruit_left_cereals_right"] is False
    assert "topping_ratio_ok" not in measure(specs["breakfast_box"], fruit + cereals)


def test_juice_bottle_label_order(specs, obj):
    scene = [
        obj("bottle", 400, 800),
        obj("juice", 400, 900),
        obj("text label", 400, 600),
        obj("fruit label", 400, 1200),
        obj("fruit icon", 400, 1200),
    ]
    result = inverse(specs["juice_bottle"], {"swapped_labels"}, scene)
    assert result.consistent and result.measured["labels_in_order"] is False
    no_icon = inverse(specs["juice_bottle"], {"swapped_labels"}, scene[:-1])
    assert not no_icon.consistent  # grounding finds no icon: h would add missing_fruit_icon


def test_user_spec_measures_colours_and_slots(tray, obj):
    tray_obj = obj("tray", 700, 300, w=1200, h=200)
    colours = ["red", "red", "blue", "red", "red", "blue"]
    caps = [obj("cap", 200 + 200 * i, 300, colour=c) for i, c in enumerate(colours)]
    result = inverse(tray, {"wrong_cap_colour_position"}, [tray_obj, *caps])
    assert result.consistent
    assert result.measured == {
        "red_caps": 4,
        "blue_caps": 2,
        "caps_per_slot": [1] * 6,
        "colours_in_place": False,
    }


def test_clamps_fall_back_to_the_cable_colour(specs, obj):
    spec = specs["splicing_connectors"]
    connectors = [obj("connector", 300, 400), obj("connector", 1300, 420)]
    assert measure(spec, [*connectors, obj("cable", 800, 400, colour="yellow")])["clamps"] == [2, 2]
    with_attributes = [obj("connector", 300, 400, clamps=3), obj("connector", 1300, 420, clamps=3)]
    assert measure(spec, [*with_attributes, obj("cable", 800, 400, colour="yellow")])["clamps"] == [3, 3]
    result = inverse(spec, {NORMAL}, [*connectors, obj("cable", 800, 400)])
    assert result.consistent and result.answers["clamps"] == [5, 5]  # nothing measurable: canonical
    assert result.unmeasured["clamps"] == (
        "a 'connector' object has no 'clamps' attribute; a 'cable' object has no 'colour' attribute"
    )


def test_a_measure_that_fails_on_some_objects_is_not_measurable(tray):
    data = tray.model_dump(by_alias=True)
    data["subqueries"][0]["measure"] = 'max(attribute_values("cap", "size"))'
    data["objects"][0]["attributes"] = ["colour", "size"]

    spec = spec_from_dict(data)
    result = inverse(spec, {NORMAL}, [])
    assert "red_caps" not in result.measured
    assert "raised ValueError: max() arg is an empty sequence" in result.unmeasured["red_caps"]

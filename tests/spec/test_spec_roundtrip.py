"""Coverage and the round trip h(inverse(labels)) == labels for every shipped class and combination."""

from __future__ import annotations

import itertools
import pickle

import pytest

from models.spec import NORMAL, SHIPPED_SCENARIOS, aggregate, inverse, shipped_specs
from tests.loco_tree import LOGICAL_CLASSES

# The logical defect types of MVTec LOCO AD (shared/loco/README.md): the classes of LOCO FC.
LOCO_CLASSES = LOGICAL_CLASSES

# Subquery ids fixed by docs/design.md.
DESIGN_SUBQUERIES = {
    "pushpins": ["row_1", "row_2", "row_3", "separators_complete"],
    "screw_bag": ["long_screws", "short_screws", "very_short_screws", "screw_length", "nuts", "washers"],
    "juice_bottle": [
        "fill_level", "juice_present", "top_label_present", "bottom_label_present", "labels_in_order",
        "top_label_centred", "bottom_label_centred", "fruit_icon_present", "fruit_icon_centred",
        "juice_matches_icon",
    ],
    "breakfast_box": [
        "nectarines", "tangerines", "fruit_left_cereals_right", "cereals_present", "banana_chips_present",
        "almonds_present", "cereal_amount", "topping_ratio_ok",
    ],
    "splicing_connectors": [
        "connectors", "clamps", "cables", "cable_colour_matches", "cable_intact", "cable_long_enough",
        "positions_correspond",
    ],
}  # fmt: skip

# Multi-anomaly combinations of the real test set (docs/design.md).
REAL_COMBINATIONS = [
    ("juice_bottle", {"missing_top_label", "missing_bottom_label"}),
    ("pushpins", {"1_additional_pushpin", "missing_pushpin"}),
    ("screw_bag", {"1_additional_nut", "1_missing_washer"}),
    ("screw_bag", {"1_additional_washer", "1_missing_nut"}),
    ("screw_bag", {"1_additional_long_screw", "1_missing_short_screw"}),
    ("screw_bag", {"1_additional_short_screw", "1_missing_long_screw"}),
]

ALL_CLASSES = [(s, c) for s, classes in LOCO_CLASSES.items() for c in classes]


def test_shipped_scenarios_and_class_counts(specs):
    assert tuple(specs) == SHIPPED_SCENARIOS
    for name, classes in LOCO_CLASSES.items():
        assert sorted(specs[name].class_names) == sorted(classes), name
    assert [len(LOCO_CLASSES[s]) for s in SHIPPED_SCENARIOS] == [17, 11, 4, 16, 13]


def test_subquery_ids_follow_the_design(specs):
    for name, ids in DESIGN_SUBQUERIES.items():
        assert specs[name].subquery_ids == ids


def test_every_class_has_a_rule(specs):
    for spec in specs.values():
        ruled = {r.class_ for r in spec.rules}
        assert set(spec.class_names) <= ruled, spec.scenario


@pytest.mark.parametrize("scenario", SHIPPED_SCENARIOS)
def test_normal_round_trip(specs, scenario):
    spec = specs[scenario]
    result = inverse(spec, {NORMAL})
    assert result.consistent and result.answers == spec.normal_answers()
    assert aggregate(spec, result.answers).labels == {NORMAL}


@pytest.mark.parametrize(("scenario", "label"), ALL_CLASSES)
def test_single_class_round_trip(specs, scenario, label):
    spec = specs[scenario]
    result = inverse(spec, {label})
    assert result.consistent, result.contradictions
    assert aggregate(spec, result.answers).labels == {label}


@pytest.mark.parametrize(("scenario", "labels"), REAL_COMBINATIONS)
def test_real_combinations_round_trip(specs, scenario, labels):
    spec = specs[scenario]
    result = inverse(spec, labels)
    assert result.consistent, result.contradictions
    assert aggregate(spec, result.answers).labels == labels


def test_declared_combinations_are_the_real_ones(specs):
    declared = {(s, frozenset(c)) for s, spec in specs.items() for c in spec.combinations}
    assert declared == {(s, frozenset(c)) for s, c in REAL_COMBINATIONS}


@pytest.mark.parametrize("scenario", SHIPPED_SCENARIOS)
def test_no_two_classes_share_their_answers(specs, scenario):
    spec = specs[scenario]
    vectors = {c: inverse(spec, {c}).answers for c in [NORMAL, *spec.class_names]}
    for a, b in itertools.combinations(vectors, 2):
        assert vectors[a] != vectors[b], (a, b)


def test_examples_from_the_issue(specs):
    assert inverse(specs["screw_bag"], {"1_missing_nut"}).answers["nuts"] == 1
    pins = inverse(specs["pushpins"], ["missing_pushpin"]).answers
    assert 0 in pins["row_1"] + pins["row_2"] + pins["row_3"]


def test_missing_top_label_does_not_fire_missing_fruit_icon(specs):
    spec = specs["juice_bottle"]
    answers = inverse(spec, {"missing_top_label"}).answers
    assert answers["fruit_icon_present"] is False
    assert aggregate(spec, answers).labels == {"missing_top_label"}


def test_inverse_rejects_bad_label_sets(specs):
    spec = specs["pushpins"]
    with pytest.raises(ValueError, match="unknown labels"):
        inverse(spec, {"missing_washer"})
    with pytest.raises(ValueError, match="cannot be combined"):
        inverse(spec, {NORMAL, "missing_pushpin"})
    with pytest.raises(ValueError, match="empty label set"):
        inverse(spec, set())
    with pytest.raises(ValueError, match="collection of labels"):
        inverse(spec, "normal")


def test_contradictory_labels_are_reported_not_raised(specs):
    result = inverse(specs["screw_bag"], {"1_missing_nut", "2_missing_nuts"})
    assert not result.consistent
    assert any("need different answers to nuts" in c for c in result.contradictions)


def test_user_spec_round_trips(tray):
    for label in tray.class_names:
        result = inverse(tray, {label})
        assert result.consistent and aggregate(tray, result.answers).labels == {label}
    assert aggregate(tray, inverse(tray, {"missing_red_cap", "extra_blue_cap"}).answers).labels == {
        "missing_red_cap",
        "extra_blue_cap",
    }


def test_specs_pickle(specs):
    spec = pickle.loads(pickle.dumps(specs["juice_bottle"]))
    assert spec == specs["juice_bottle"]
    assert aggregate(spec, inverse(spec, {"wrong_juice_type"}).answers).labels == {"wrong_juice_type"}
    assert set(spec.measures) == set(specs["juice_bottle"].measures)


def test_specs_are_shared_and_immutable():
    first, second = shipped_specs(), shipped_specs()
    assert first["pushpins"] is second["pushpins"]
    with pytest.raises(ValueError, match="frozen"):
        first["pushpins"].scenario = "x"

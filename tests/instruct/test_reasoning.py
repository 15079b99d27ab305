"""The chain of thought carries the evidence (issue 13): the terminals of Fig. 4a, the missing separator,
what the attribute stage read on each object; and it never claims a count a measure could not make."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from models.instruct.reasoning import nth, think
from models.spec import get_spec, inverse
from tests.instruct.instruct_helpers import scene

TERMINAL = re.compile(r"is connected to the (\d+)(?:st|nd|rd|th) terminal of the (\d)-terminal connector at \[")


def _chain(scenario: str, subquery: str, seed: int = 0, defects: tuple[str, ...] = (), strip: bool = False) -> str:
    spec, drawn = get_spec(scenario), scene(scenario, seed, defects)
    objects = [replace(o, attributes={}) for o in drawn.objects] if strip else list(drawn.objects)
    truth = inverse(spec, list(defects) or ["normal"], objects)
    return think(spec, spec.subquery(subquery), truth.answers[subquery], objects)


@pytest.mark.parametrize("subquery", ["long_screws", "short_screws", "very_short_screws"])
def test_no_count_is_claimed_where_the_measure_cannot_count(subquery: str) -> None:
    """Screws without a length class (a backend without the attribute stage): not "0 of them are among
    the long screws. So the answer is 1." but the screws and the answer."""
    text = _chain("screw_bag", subquery, strip=True)
    assert "among the" not in text and "0 of them" not in text
    assert text.startswith("I see screws at [") and text.endswith(".")


def test_screw_counts_cite_the_length_classes() -> None:
    text = _chain("screw_bag", "long_screws")
    assert "(long)" in text and "(short)" in text and "1 of them is among the long screws at [" in text


@pytest.mark.parametrize(("seed", "defects"), [(0, ()), (1, ()), (3, ("wrong_cable_location",)),
                                               (4, ("wrong_cable_location",)), (5, ("cable_too_short_T5",))])
def test_the_positions_chain_names_both_terminals_as_fig_4a(seed: int, defects: tuple[str, ...]) -> None:
    drawn = scene("splicing_connectors", seed, defects)
    cable = next(o for o in drawn.objects if o.label == "cable")
    left, right = cable.attributes["terminals"]
    text = _chain("splicing_connectors", "positions_correspond", seed, defects)
    found = TERMINAL.findall(text)
    clamps = sorted(o.attributes["clamps"] for o in drawn.objects if o.label == "connector")
    assert [int(t) for t, _ in found] == [left, right], text
    assert sorted(int(k) for _, k in found) == clamps
    assert "runs from position (" in text
    match = "match" if left == right else "do not match"
    assert f"The connection positions on both ends {match} ({nth(left)} and {nth(right)})." in text
    assert text.endswith("So the answer is Yes." if left == right else "So the answer is No.")


def test_a_cut_cable_shows_its_free_ends() -> None:
    text = _chain("splicing_connectors", "cable_intact", 2, ("cable_cut",))
    assert "free on the right" in text and "free on the left" in text and text.endswith("No.")


def test_the_separators_chain_states_the_missing_one() -> None:
    spec = get_spec("pushpins")
    drawn = scene("pushpins", 0, ("missing_separator",))
    (box,) = [o for o in drawn.objects if o.label == "box"]
    ((r1, c1), (r2, c2)), = box.attributes["missing_separators"]
    text = _chain("pushpins", "separators_complete", 0, ("missing_separator",))
    where = (f"the {nth(c1 + 1)} and {nth(c2 + 1)} compartments of the {nth(r1 + 1)} row" if r1 == r2
             else f"the {nth(r1 + 1)} and {nth(r2 + 1)} rows in the {nth(c1 + 1)} column")  # fmt: skip
    assert f"The box is missing the separator between {where}." in text and text.endswith("No.")
    normal = _chain("pushpins", "separators_complete")
    assert "The box is complete, with every separator in place." in normal and normal.endswith("Yes.")
    assert spec.measures["separators_complete"]


def test_a_subquery_without_a_measure_states_its_observation() -> None:
    """top_label_centred has no measure: the chain says the label is off centre, not only where it is."""
    assert "top_label_centred" not in get_spec("juice_bottle").measures
    text = _chain("juice_bottle", "top_label_centred", 0, ("misplaced_label_top",))
    assert "The fruit label is at [" in text and "off centre" in text and text.endswith("No.")
    assert "centred)" in _chain("juice_bottle", "top_label_centred")


def test_fill_level_and_juice_type_are_observed() -> None:
    assert "The juice is filled too high." in _chain("juice_bottle", "fill_level", 0, ("wrong_fill_level_too_much",))
    text = _chain("juice_bottle", "juice_matches_icon", 1, ("wrong_juice_type",))
    juice, icon = re.search(r"The juice is (\w+)\. The fruit icon is (\w+)\.", text).groups()
    assert juice != icon and text.endswith("No.")

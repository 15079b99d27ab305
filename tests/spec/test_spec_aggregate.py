"""The aggregator's evidence trail and its handling of unparseable answers; paraphrase invariants."""

from __future__ import annotations

import json

import pytest

from models.instruct.paraphrase import rejection_reason
from models.spec import (
    NORMAL,
    ParsedAnswer,
    UnparseableAnswerError,
    aggregate,
    inverse,
    missing_invariants,
    paraphrase_invariants,
    parse_answer,
)


def test_evidence_names_the_rule_and_the_answers_it_read(specs):
    spec = specs["pushpins"]
    answers = inverse(spec, {"missing_pushpin"}).answers
    result = aggregate(spec, answers)
    assert result.labels == {"missing_pushpin"}
    (evidence,) = result.evidence
    assert evidence.values == {"row_1": [1] * 5, "row_2": [1] * 5, "row_3": [1, 1, 1, 1, 0]}
    assert evidence.text() == (
        "missing_pushpin: a compartment is empty (row_1 = [1, 1, 1, 1, 1]; row_2 = [1, 1, 1, 1, 1]; "
        "row_3 = [1, 1, 1, 1, 0]; rule: deficit(row_1 + row_2 + row_3, 1) >= 1)"
    )
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict  # a report can store it as JSON
    assert as_dict["labels"] == ["missing_pushpin"] and as_dict["evidence"][0]["rule_index"] == 2


def test_normal_answers_give_normal(specs):
    for spec in specs.values():
        result = aggregate(spec, spec.normal_answers())
        assert result.is_normal and result.evidence == () and result.lines() == ["normal: no rule fired"]


def test_parsed_answers_are_accepted(specs):
    spec = specs["screw_bag"]
    outputs = {sid: "<answer>1</answer>" for sid in ("long_screws", "short_screws")}
    outputs |= {"very_short_screws": "None.", "screw_length": "Right", "nuts": "two", "washers": "0"}
    parsed = {sid: parse_answer(spec.subquery(sid), text) for sid, text in outputs.items()}
    assert aggregate(spec, parsed).labels == {"2_missing_washers"}


def bad(reason: str = "no number in the answer") -> ParsedAnswer:
    return ParsedAnswer(None, reason, "garbage")


def test_policy_normal_assumes_the_normal_answer(specs):
    spec = specs["breakfast_box"]
    answers = spec.normal_answers() | {"cereals_present": False, "banana_chips_present": bad()}
    result = aggregate(spec, answers)  # default policy: normal
    assert result.policy == "normal"
    assert result.labels == {"missing_cereals"}  # chips assumed present: toppings without cereals
    assert result.evidence[0].assumed == ("banana_chips_present",)
    assert result.unparseable == {"banana_chips_present": "no number in the answer"}
    assert "assumed normal: banana_chips_present" in result.evidence[0].text()


def test_policy_ignore_skips_rules_that_read_it(specs):
    spec = specs["breakfast_box"]
    answers = spec.normal_answers() | {"cereals_present": False, "banana_chips_present": bad()}
    result = aggregate(spec, answers, policy="ignore")
    assert result.labels == {NORMAL}
    assert any("missing_cereals)" in line and "banana_chips_present" in line for line in result.skipped)
    assert "unparseable banana_chips_present: no number in the answer" in result.lines()


def test_policy_error_raises(specs):
    spec = specs["screw_bag"]
    with pytest.raises(UnparseableAnswerError, match="nuts: no answer given"):
        aggregate(spec, {k: v for k, v in spec.normal_answers().items() if k != "nuts"}, policy="error")


def test_missing_and_none_answers_are_unparseable(specs):
    spec = specs["screw_bag"]
    answers = spec.normal_answers() | {"nuts": None}
    del answers["washers"]
    result = aggregate(spec, answers)
    assert result.is_normal and result.unparseable == {
        "nuts": "no answer given",
        "washers": "no answer given",
    }


def test_caller_bugs_raise(specs):
    spec = specs["screw_bag"]
    with pytest.raises(ValueError, match=r"unknown subqueries \['bolts'\]"):
        aggregate(spec, spec.normal_answers() | {"bolts": 1})
    with pytest.raises(ValueError, match="answer to nuts: expected an integer, got '2'"):
        aggregate(spec, spec.normal_answers() | {"nuts": "2"})
    with pytest.raises(ValueError, match="'sometimes' is not a valid UnparseablePolicy"):
        aggregate(spec, spec.normal_answers(), policy="sometimes")


def test_every_class_names_its_evidence(specs):
    for spec in specs.values():
        for label in spec.class_names:
            result = aggregate(spec, inverse(spec, {label}).answers)
            assert [e.label for e in result.evidence] == [label]
            assert result.evidence[0].text().startswith(f"{label}: ")


def missing_invariants_of(subquery, text):
    return missing_invariants(text, paraphrase_invariants(subquery))


def test_paraphrase_invariants(specs):
    row = specs["pushpins"].subquery("row_1")
    assert paraphrase_invariants(row) == [
        "yellow pushpins",
        "first row",
        "pushpin",
        "box",
        "three",
        "five",
        "first",
        "[n1, n2, n3, n4, n5]",
    ]
    good = (
        "Split the box into 3 rows and 5 columns. How many yellow pushpins does each cell of the first "
        "row hold [n1, n2, n3, n4, n5]?"
    )
    assert missing_invariants_of(row, good) == []
    assert missing_invariants_of(row, "How are the pins spread over the top row of the box?") == [
        "yellow pushpins",
        "first row",
        "pushpin",
        "three",
        "five",
        "first",
        "[n1, n2, n3, n4, n5]",
    ]
    fill = specs["juice_bottle"].subquery("fill_level")
    assert paraphrase_invariants(fill)[-3:] == ["just right", "too much", "too little"]
    assert missing_invariants_of(fill, "Does the bottle hold too much or too little juice?") == ["just right"]
    washers = specs["screw_bag"].subquery("washers")
    assert paraphrase_invariants(washers) == ["washer"]
    assert missing_invariants_of(washers, "Count the washers.") == []
    long_screws = specs["screw_bag"].subquery("long_screws")
    assert missing_invariants_of(long_screws, "How many screws are in the bag?") == ["long screws"]
    colour = specs["splicing_connectors"].subquery("cable_colour_matches")
    assert {"2", "3", "5"} <= set(paraphrase_invariants(colour))
    assert "3" in missing_invariants_of(colour, "Is the cable yellow for two clamps, blue for 4, red for five?")
    assert (
        missing_invariants_of(
            colour,
            "Is the cable's colour right for the connectors: yellow on 2-clamp, blue on 3-clamp, "
            "red on 5-clamp?",
        )
        == []
    )


def test_one_checker_for_paraphrases_and_its_plural_rule(specs):
    """The spec's check and the paraphraser's validator disagreed on this sentence: one stemmed
    every word (accepted), the other allowed only an added plural (rejected). There is one checker
    now, and its rule: an invariant may gain a plural ending, never lose one."""
    long_screws = specs["screw_bag"].subquery("long_screws")
    candidate = "How many long screw are in the bag?"
    assert missing_invariants_of(long_screws, candidate) == ["long screws"]
    assert rejection_reason(long_screws.text, candidate, paraphrase_invariants(long_screws)) == "lost 'long screws'"
    assert missing_invariants("Count the long screws in the bag.", ["long screws"]) == []
    assert missing_invariants("How many washers are there?", ["washer"]) == []  # a plural may be added
    assert missing_invariants("Are the batteries in?", ["battery"]) == []
    assert missing_invariants("Are the boxes closed?", ["box"]) == []
    assert missing_invariants("Is the washer there?", ["washers"]) == ["washers"]  # never dropped

"""Free-form model output → typed answers, and the canonical answer text read back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.spec import format_answer, inverse, parse_answer, shipped_specs

U = "UNPARSEABLE"

# The paper's Fig. 4, verbatim: (a) cable positions, (b) pushpin grid, (c) washers, (d) fill level.
FIG4_A_GPT = (
    "<think>In the image, there are two terminal blocks, each with five connection points. A single red "
    "cable connects the topmost position (first slot) on the left terminal block to the topmost position "
    "(first slot) on the right terminal block. The positions of the cable connections on both sides "
    "correspond to each other (first to first). </think>\n <answer>Yes, the positions of the cable "
    "connections correspond.</answer>"
)
FIG4_A_GEMINI = (
    "<think>To determine if the cable connection positions correspond, I need to compare the slot where "
    "the red wire is inserted on the left connector with the slot where it is inserted on the right "
    "connector.\n 1. I will mentally number the connection slots on each connector from top to bottom, "
    "1 through 5.\n 2. On the left connector, the red wire is inserted into the second slot from the top "
    "(position 2).\n 3. On the right connector, the red wire is inserted into the third slot from the top "
    "(position 3).\n 4. Since the wire connects to position 2 on the left and position 3 on the right, the "
    "positions do not correspond. </think><answer>No, the positions of the cable connections do not "
    "correspond. The cable is connected to the second port from the top on the left connector and the "
    "third port from the top on the right connector.</answer>"
)
FIG4_A_OURS = (
    "<think>Carefully observe one end of the cable: in the image, the cable runs from position (189, 387) "
    "to (802, 394). It is connected to the 3rd terminal of a 5-terminal connector, and the other end is "
    "connected to the 2nd terminal of a 5-terminal connector. The connection positions on both ends do "
    "not match. </think><answer> Different </answer>"
)
FIG4_B_GPT = (
    "<think>The box is divided into three rows and five columns, making 15 cells in total. To find the "
    "distribution of yellow pushpins in the first row, I will count the number of yellow pushpins in each "
    "of the first five cells from left to right in the top row. The counts are as follows: first cell has "
    "2, second cell has 2, third cell has 1, fourth cell has 2, and fifth cell has 1 yellow pushpin. "
    "</think>\n <answer>[2, 2, 1, 2, 1]</answer>"
)
FIG4_B_GEMINI = (
    "<think>The user wants to find the number of yellow pushpins in each cell of the first row of the "
    "partitioned box.\n 1. **Identify the grid:** The image shows a box divided into a 3x5 grid (3 rows, "
    "5 columns).\n 5. **Combine the counts:** The distribution is [1, 2, 1, 1, 1]. "
    "</think><answer>[1, 2, 1, 1, 1]</answer>"
)
FIG4_B_OURS = (
    "<think>Observe carefully, there are 6 yellow pushpins in the first row of the box in the picture. "
    "The positions of each pushpin are respectively [65,78,249,191],[104,280,327,373],[403,290,627,365],"
    "[831,163,974,357],[1059,153,1162,367],[1347,168,1506,350]. The distribution is [2,1,1,1,1]. "
    "</think>\n <answer>[2,1,1,1,1]</answer>"
)
FIG4_C_GPT = (
    "<think>In the image, there are two bolts, two hex nuts, and two flat, round metal pieces with holes "
    "in the center that are characteristic of washers. The washers are distinct from the nuts and bolts. "
    "</think>\n <answer>There are 2 washers in the picture.</answer>"
)
FIG4_C_GEMINI = (
    "<think>To answer the question, I need to identify and count the washers in the provided image. "
    "By counting the items that fit the description of a washer, I find there are exactly two of them. "
    "Therefore, the total number of washers in the picture is 2. </think><answer>There are 2 washers in "
    "the picture.</answer>"
)
FIG4_C_OURS = (
    "<think>There are four nuts and two screws in the plastic bag, with no washers. </think>"
    "<answer>0</answer>"
)
FIG4_D_GPT = (
    "<think>The juice level in the bottle is filled up to just below the neck, which is typical for "
    "bottled beverages to allow for some air space and prevent spillage when opening. This is considered "
    "the standard and appropriate fill level for such bottles. </think>\n <answer>Just right</answer>"
)
FIG4_D_GEMINI = (
    "<think>3. **Assess the options:**\n * **Too much:** would mean the bottle is filled to the brim.\n "
    "* **Too little:** would suggest the bottle is noticeably underfilled.\n * **Just right:** implies a "
    'standard, acceptable fill level. 4. **Conclusion:** Therefore, the amount of juice is "just right". '
    "</think><answer>Just right</answer>"
)
FIG4_D_OURS = (
    "<think>The juice level is at the middle of the bottle's neck. </think><answer>Just right</answer>"
)

CASES = [
    # --- Fig. 4, baselines and ours ---
    ("splicing_connectors", "positions_correspond", FIG4_A_GPT, True),
    ("splicing_connectors", "positions_correspond", FIG4_A_GEMINI, False),
    ("splicing_connectors", "positions_correspond", FIG4_A_OURS, False),
    ("pushpins", "row_1", FIG4_B_GPT, [2, 2, 1, 2, 1]),
    ("pushpins", "row_1", FIG4_B_GEMINI, [1, 2, 1, 1, 1]),
    ("pushpins", "row_1", FIG4_B_OURS, [2, 1, 1, 1, 1]),
    ("screw_bag", "washers", FIG4_C_GPT, 2),
    ("screw_bag", "washers", FIG4_C_GEMINI, 2),
    ("screw_bag", "washers", FIG4_C_OURS, 0),
    ("juice_bottle", "fill_level", FIG4_D_GPT, "just right"),
    ("juice_bottle", "fill_level", FIG4_D_GEMINI, "just right"),
    ("juice_bottle", "fill_level", FIG4_D_OURS, "just right"),
    # --- yes / no ---
    ("splicing_connectors", "positions_correspond", "Yes, the positions … correspond.", True),
    ("splicing_connectors", "positions_correspond", "Same", True),
    ("splicing_connectors", "positions_correspond", "Match", True),
    ("splicing_connectors", "positions_correspond", "<answer>different</answer>", False),
    ("splicing_connectors", "positions_correspond", "The positions of the connections are identical.", True),
    ("splicing_connectors", "positions_correspond", "**No**", False),
    ("splicing_connectors", "positions_correspond", "YES.", True),
    ("splicing_connectors", "cable_colour_matches", "The colour doesn't match the connectors.", False),
    ("splicing_connectors", "cable_colour_matches", "It is red, which matches the 5-clamp connectors.", True),
    ("splicing_connectors", "cable_intact", "The cable is cut into two pieces.", False),
    ("splicing_connectors", "cable_long_enough", "The cable is long enough.", True),
    ("splicing_connectors", "cable_long_enough", "The cable is too short and taut.", False),
    ("juice_bottle", "fruit_icon_centred", "The fruit icon is not centred on its label.", False),
    ("juice_bottle", "fruit_icon_centred", "The icon is off-centre, shifted to the left.", False),
    ("juice_bottle", "fruit_icon_present", "There is a fruit icon on the label.", True),
    ("juice_bottle", "fruit_icon_centred", "Off-centre.", False),
    ("juice_bottle", "juice_present", "There is no juice in the bottle; it is empty.", False),
    ("juice_bottle", "labels_in_order", "The labels are not swapped, they are in the correct order.", True),
    ("juice_bottle", "top_label_centred", "Yes and no: it is centred but tilted.", U),
    ("juice_bottle", "top_label_centred", "It is centred but slightly tilted.", U),
    ("juice_bottle", "juice_present", "Hard to tell from this angle.", U),
    ("pushpins", "separators_complete", "All separators are intact and complete.", True),
    ("pushpins", "separators_complete", "One separator is missing between two compartments.", False),
    # --- integers ---
    ("screw_bag", "washers", "two", 2),
    ("screw_bag", "washers", "none", 0),
    ("screw_bag", "washers", "No washers.", 0),
    ("screw_bag", "washers", "There are no washers in the bag.", 0),
    ("screw_bag", "washers", "I count 2 washers and 2 nuts.", 2),
    ("screw_bag", "nuts", "There are 3 nuts and 1 washer.", 3),
    ("screw_bag", "washers", "There are 3 nuts and 1 washer.", 1),
    ("screw_bag", "long_screws", "One long screw and one short screw.", 1),
    ("screw_bag", "short_screws", "2 long screws and 0 short screws", 0),
    ("screw_bag", "washers", "There are twelve washers.", 12),
    ("screw_bag", "washers", "Zero.", 0),
    ("screw_bag", "washers", "2 or 3", U),
    ("screw_bag", "washers", "There are 1.5 washers.", U),
    ("screw_bag", "washers", "I cannot see any.", U),
    ("screw_bag", "washers", "Let me count.</think> 2", 2),
    ("splicing_connectors", "connectors", "There are two splicing connectors, each with five clamps.", 2),
    ("splicing_connectors", "connectors", "There are two 5-clamp connectors.", 2),
    ("breakfast_box", "nectarines", "There is one nectarine and two tangerines.", 1),
    ("breakfast_box", "tangerines", "There is one nectarine and two tangerines.", 2),
    # --- choices ---
    ("juice_bottle", "fill_level", "Too little", "too little"),
    ("juice_bottle", "fill_level", "The juice level is too high; the bottle is overfilled.", "too much"),
    ("juice_bottle", "fill_level", "Not too full, not too low: the level is just right.", "just right"),
    ("juice_bottle", "fill_level", "Too much or too little, hard to say.", U),
    ("juice_bottle", "fill_level", "The fill level looks perfect.", U),
    ("screw_bag", "screw_length", "Right.", "right"),
    ("screw_bag", "screw_length", "One screw is too long.", "too long"),
    ("breakfast_box", "cereal_amount", "The cereals are heaped over the divider: too much.", "too much"),
    # --- lists ---
    ("pushpins", "row_1", "[2, 1,1, 1,1]", [2, 1, 1, 1, 1]),
    ("pushpins", "row_3", "Answer: [1, 1, 1, 1, 0]", [1, 1, 1, 1, 0]),
    ("pushpins", "row_1", "The first row contains 1, 1, 1, 1, 1 pushpins.", [1, 1, 1, 1, 1]),
    ("pushpins", "row_1", "[n1, n2, n3, n4, n5] = [1, 2, 1, 1, 1]", [1, 2, 1, 1, 1]),
    ("pushpins", "row_2", "[one, one, zero, one, one]", [1, 1, 0, 1, 1]),
    ("pushpins", "row_1", "[1, 1, 1, 1]", U),
    ("pushpins", "row_1", "[1, 1, 1, 1, 1] or maybe [2, 1, 1, 1, 1]", U),
    ("splicing_connectors", "clamps", "<answer>[5, 3]</answer>", [5, 3]),
    # --- structure ---
    ("screw_bag", "washers", "", U),
    ("screw_bag", "washers", "<think>Let me count the washers: one, two", U),
    ("screw_bag", "washers", "<answer></answer>", U),
    ("splicing_connectors", "positions_correspond", "<answer>Yes</answer> <answer>No</answer>", U),
    ("splicing_connectors", "positions_correspond", "<answer>Yes</answer> then <answer>yes.", True),
]  # fmt: skip


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("scenario", "sid", "output", "expected"), CASES)
def test_free_form_outputs(scenario, sid, output, expected):
    parsed = parse_answer(shipped_specs()[scenario].subquery(sid), output)
    if expected == U:
        assert not parsed.ok and parsed.value is None and parsed.reason, parsed
    else:
        assert parsed.ok, parsed.reason
        assert parsed.value == expected and type(parsed.value) is type(expected)


def test_reasons_say_what_is_wrong(specs):
    row = specs["pushpins"].subquery("row_1")
    assert "expected a list of 5 integers, found 4" in parse_answer(row, "[1, 1, 1, 1]").reason
    washers = specs["screw_bag"].subquery("washers")
    assert "several different numbers (2, 3)" in parse_answer(washers, "2 or 3").reason
    assert parse_answer(washers, "  ").reason == "empty answer"
    assert parse_answer(washers, None).reason == "expected text, got NoneType"


def _answers_of_every_class():
    for spec in shipped_specs().values():
        for label in ["normal", *spec.class_names]:
            for sid, value in inverse(spec, {label}).answers.items():
                yield spec.subquery(sid), value


def test_canonical_answers_read_back_exactly():
    for sub, value in _answers_of_every_class():
        text = format_answer(sub, value)
        for output in (text, f"<think>Looking at the image.</think><answer>{text}</answer>"):
            parsed = parse_answer(sub, output)
            assert parsed.ok and parsed.value == value, (sub.id, output, parsed)


def test_canonical_forms(specs):
    assert format_answer(specs["screw_bag"].subquery("washers"), 2) == "2"
    assert format_answer(specs["pushpins"].subquery("separators_complete"), False) == "No"
    assert format_answer(specs["juice_bottle"].subquery("fill_level"), "just right") == "Just right"
    assert format_answer(specs["pushpins"].subquery("row_1"), [1, 1, 1, 1, 1]) == "[1, 1, 1, 1, 1]"
    with pytest.raises(ValueError, match="expected an integer"):
        format_answer(specs["screw_bag"].subquery("washers"), "2")


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([("pushpins", "row_2"), ("splicing_connectors", "clamps"), ("screw_bag", "nuts")]),
    st.lists(st.integers(0, 999), min_size=1, max_size=5),
)
def test_any_integer_answer_reads_back(key, numbers):
    sub = shipped_specs()[key[0]].subquery(key[1])
    value = numbers[0] if sub.answer_type == "integer" else (numbers * 5)[: sub.length]
    assert parse_answer(sub, format_answer(sub, value)).value == value

"""Paraphrase validation and the offline paraphraser, on the paper's and the specs' subqueries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.instruct.paraphrase import (
    Paraphrase,
    dedup_key,
    offline_paraphrases,
    paraphrase_subquery,
    parse_paraphrase_list,
    rejection_reason,
    select_valid,
)
from models.spec.invariants import normalise

PUSHPINS = (
    "The box can be divided into three rows and five columns. What is the distribution of yellow "
    "pushpins in the first row [n1, n2, n3, n4, n5]? (where ni represents the number of yellow "
    "pushpins in the i-th cell)"
)
JUICE = "Is the juice in the bottle just right/too much/too little?"
SUBQUERIES = [
    ("How many washers?", ["washers"]),
    (PUSHPINS, ["three rows", "five columns", "yellow pushpins", "first row", "[n1, n2, n3, n4, n5]"]),
    ("Do the positions of the cable connections correspond?", ["positions", "cable connections"]),
    (JUICE, ["juice", "bottle", "just right/too much/too little"]),
    ("Are there almonds on the cereals?", ["almonds", "cereals"]),
    ("Is there juice in the bottle?", ["juice", "bottle"]),
    ("How many long screws are in the bag?", ["long screws"]),
    ("How many splicing connectors are there?", ["splicing connectors"]),
    ("Are all the separators between the compartments of the box complete?", ["separators"]),
    ("Is the fruit icon centred on its label?", ["fruit icon", "centred"]),
    (
        "Does the juice match the fruit icon (orange juice with an orange, pale yellow juice with a banana)?",
        ["juice", "fruit icon"],
    ),
    (
        "Compared with normal screws, are the screws the right length, too long or too short?",
        ["screws", "the right length, too long or too short"],
    ),
    (
        "How many clamps do the splicing connectors have, from left to right [n1, n2]? (where ni "
        "represents the number of clamps of the i-th connector)",
        ["clamps", "splicing connectors"],
    ),
    (
        "Does the colour of the cable match the connectors (yellow for 2 clamps, blue for 3 clamps, red "
        "for 5 clamps)?",
        ["colour", "cable"],
    ),
    (
        "Do the positions of the cable connections correspond in the uploaded image?",
        ["positions", "cable connections"],
    ),
]


@pytest.mark.parametrize(("text", "invariants"), SUBQUERIES, ids=[t[:40] for t, _ in SUBQUERIES])
def test_offline_gives_10_to_20_valid_distinct_paraphrases(text, invariants):
    paraphrases = paraphrase_subquery(text, invariants, seed=0)

    assert 10 <= len(paraphrases) <= 20
    assert all(p == Paraphrase(p.text, "offline", None) for p in paraphrases)
    texts = [p.text for p in paraphrases]
    assert len({dedup_key(t) for t in texts} | {dedup_key(text)}) == len(texts) + 1
    for paraphrase in texts:
        assert rejection_reason(text, paraphrase, invariants) is None
        for invariant in invariants:  # verbatim, not merely equal after normalisation
            assert invariant.lower() in paraphrase.lower(), (invariant, paraphrase)
        assert paraphrase[0].isupper() and paraphrase[-1] in "?.)"
        assert "  " not in paraphrase


def test_offline_is_deterministic_for_a_seed_across_processes():
    text, invariants = SUBQUERIES[1]
    here = offline_paraphrases(text, invariants, seed=3)
    code = (
        "import json, sys; from models.instruct.paraphrase import offline_paraphrases as o; "
        "print(json.dumps(o(sys.argv[1], json.loads(sys.argv[2]), seed=3)))"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, text, json.dumps(invariants)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    assert json.loads(out.stdout) == here
    assert offline_paraphrases(text, invariants, seed=4) != here


def test_offline_reaches_n_max_and_respects_exclude():
    text, invariants = SUBQUERIES[0]
    first = offline_paraphrases(text, invariants, n_max=20, seed=0)
    assert len(first) == 20
    rest = offline_paraphrases(text, invariants, n_max=20, seed=0, exclude=first)
    assert not {dedup_key(t) for t in rest} & {dedup_key(t) for t in first}


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (
            "The box has 3 rows and 5 columns. In the 1st row, what is the distribution of yellow pushpins "
            "[n1,n2,n3,n4,n5]? (ni: yellow pushpins in the i-th cell)",
            None,
        ),
        (
            "The box has four rows and five columns. In the first row, what is the distribution of yellow "
            "pushpins [n1, n2, n3, n4, n5]?",
            "lost 'three rows'",
        ),
        (
            "The box has three rows and five columns. In the second row, what is the distribution of "
            "yellow pushpins [n1, n2, n3, n4, n5]?",
            "lost 'first row'",
        ),
        (
            "The box has three rows and five columns. In the first row, what is the distribution of red "
            "pins [n1, n2, n3, n4, n5]?",
            "lost 'yellow pushpins'",
        ),
        (
            "The box has three rows and five columns. In the first row, how many yellow pushpins are in "
            "each cell?",
            "lost '[n1, n2, n3, n4, n5]'",
        ),
        (
            "The box has three rows and five columns. In the first row, what is the distribution of yellow "
            "pushpins [n1, n2, n3, n4]?",
            "lost '[n1, n2, n3, n4, n5]'",
        ),
        (
            "The box has three rows and five columns (15 cells). In the first row, what is the distribution "
            "of yellow pushpins [n1, n2, n3, n4, n5]?",
            "numbers changed",
        ),
        (PUSHPINS.upper().replace("  ", " "), "the original"),
        ("What is it?\nAnd this?", "not a single line"),
    ],
)
def test_validation_keeps_numbers_objects_and_format(candidate, reason):
    invariants = ["three rows", "five columns", "yellow pushpins", "first row"]
    assert rejection_reason(PUSHPINS, candidate, invariants) == reason


@pytest.mark.parametrize(
    ("candidate", "valid"),
    [
        ("Would you say the bottle's juice is just right, too much or too little?", True),
        ("Is the amount of juice in the bottle: just right / too much / too little?", True),
        ("How full is the bottle (just right, too much, or too little) with juice?", True),
        ("Is the juice in the bottle 'just right', 'too much' or 'too little'?", True),
        ("Is the juice in the bottle just right or too much?", False),
        ("Is the juice in the bottle too much/just right/too little?", False),
        ("Is the bottle just right/too much/too little?", False),
    ],
)
def test_choice_list_may_be_repunctuated_but_not_cut_or_reordered(candidate, valid):
    assert (
        rejection_reason(JUICE, candidate, ["juice", "bottle", "just right/too much/too little"]) is None
    ) is valid


def test_select_valid_drops_duplicates_and_counts_reasons():
    kept, dropped = select_valid(
        "How many washers?",
        [
            "How many washers are there?",
            "how many washers are there",
            "How many nuts?",
            "How many washers?",
            "What is the number of washers?",
        ],
        ["washers"],
        exclude=["What is the number of washers?"],
    )
    assert kept == ["How many washers are there?"]
    assert dropped == {"duplicate": 2, "lost": 1, "the original": 1}


def test_normalisation_equates_number_words_case_and_spacing():
    assert normalise("The FIRST row [n1,n2]  has three  cells") == normalise(
        "the 1st row [ n1, n2 ] has 3 cells"
    )
    assert normalise(normalise(PUSHPINS)) == normalise(PUSHPINS)


def test_invariant_missing_from_the_subquery_is_an_error():
    with pytest.raises(ValueError, match="'nuts' does not occur"):
        paraphrase_subquery("How many washers?", ["nuts"])
    with pytest.raises(ValueError, match="n_min"):
        paraphrase_subquery("How many washers?", [], n_min=21, n_max=20)


@pytest.mark.parametrize(
    "reply",
    [
        '["How many washers are there?", "Count the washers."]',
        'Sure!\n```json\n["How many washers are there?", "Count the washers."]\n```',
        '{"paraphrases": [{"text": "How many washers are there?"}, "Count the washers."]}',
        'Here you go:\n1. How many washers are there?\n2) "Count the washers."\n',
        "- How many washers are there?\n* Count the washers.",
    ],
)
def test_reply_parsing_is_robust(reply):
    assert parse_paraphrase_list(reply) == ["How many washers are there?", "Count the washers."]


def test_reply_with_brackets_inside_strings_and_prose_before():
    reply = 'Note [draft]: ["What is the first row [n1, n2, n3, n4, n5]?"]'
    assert parse_paraphrase_list(reply) == ["What is the first row [n1, n2, n3, n4, n5]?"]
    assert parse_paraphrase_list("1. Row as [n1, n2]?\n2. Other [1, 2]?") == [
        "Row as [n1, n2]?",
        "Other [1, 2]?",
    ]


@pytest.mark.parametrize("reply", ["I cannot help with that.", "[1, 2, 3]", "{}", ""])
def test_reply_without_a_list_is_malformed(reply):
    with pytest.raises(ValueError, match="no JSON array"):
        parse_paraphrase_list(reply)


NOUNS = ["washers", "nuts", "long screws", "yellow pushpins", "banana chips", "cables", "tangerines"]
PLACES = ["", " in the bag", " on the cereals", " in the left compartment", " inside the box"]


@settings(max_examples=40, deadline=None)
@given(
    form=st.sampled_from(
        [
            "How many {n}{p}?",
            "Are there {n}{p}?",
            "How many {n} are there{p}?",
            "Are the {n}{p} complete?",
            "Do the {n}{p} touch?",
        ]
    ),
    noun=st.sampled_from(NOUNS),
    place=st.sampled_from(PLACES),
    seed=st.integers(0, 10_000),
)
def test_offline_always_reaches_ten_on_spec_like_questions(form, noun, place, seed):
    text = form.format(n=noun, p=place)
    paraphrases = offline_paraphrases(text, [noun], seed=seed)
    assert 10 <= len(paraphrases) <= 20
    assert all(noun in p for p in paraphrases)

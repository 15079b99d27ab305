"""The answer envelope is read one way by everyone: parser, answer checker, difficulty score, table."""

from __future__ import annotations

import pytest

from models.envelope import format_answer_only, format_target, split_envelope
from models.evaluation.predict import ICLExample, Question, predict
from models.spec import get_spec, parse_answer
from models.vlm.prompt import exact_answer_match
from models.vlm.scoring import answer_positions


def test_targets_round_trip():
    envelope = split_envelope(format_target("two rows", "[2, 1, 1, 1, 1]"))
    assert (envelope.think, envelope.answer, envelope.answers, envelope.reason) == (
        "two rows", "[2, 1, 1, 1, 1]", ("[2, 1, 1, 1, 1]",), None)
    envelope = split_envelope(format_answer_only("Yes"))
    assert (envelope.think, envelope.answer) == (None, "Yes")


@pytest.mark.parametrize(
    ("text", "think", "answer", "answers", "reason"),
    [
        ("<think>x</think><answer>yes", "x", "yes", ("yes",), None),  # unclosed answer: to the end
        ("<think>cut", "cut", None, (), "only reasoning: <think> is never closed and there is no <answer>"),
        ("There are 2 nuts.", None, None, ("There are 2 nuts.",), None),
        ("<think>count</think> 2 nuts", "count", None, ("2 nuts",), None),
        ("<THINK>a</THINK><Answer> 3 </Answer>", "a", " 3 ", ("3",), None),  # tags in any case
        ("<answer>1</answer> and <answer>one</answer>", None, "1", ("1", "one"), None),
    ],
)
def test_reading_rules(text, think, answer, answers, reason):
    envelope = split_envelope(text)
    assert (envelope.think, envelope.answer, envelope.answers, envelope.reason) == (think, answer, answers, reason)


def test_an_answer_quoted_in_the_reasoning_is_not_the_answer_for_anyone():
    """Before, the checker and the difficulty score read the first ``<answer>`` anywhere (here the
    quoted 3), the parser the one after the reasoning (2), and the table stored the 3."""
    output = "<think>I first wrote <answer>3</answer>, then counted again.</think><answer>2</answer>"
    envelope = split_envelope(output)
    assert envelope.answer == "2"
    assert output[slice(*envelope.answer_span)] == "2"
    spec = get_spec("screw_bag")
    assert parse_answer(spec.subquery("nuts"), output).value == 2
    assert exact_answer_match({"target": format_target("two nuts", "2")}, output)
    mask = answer_positions(list(output), ends_with_stop=False)
    assert "".join(c for c, m in zip(output, mask.tolist(), strict=True) if m) == "2"
    question = Question("screw_bag/test/good/000", "a.png", "nuts", "How many nuts?",
                        ICLExample("screw_bag/train/good/000", "b.png", format_target("two nuts", "2")))
    row = predict(spec, [question], lambda qs: [output], method="icl", model="m", true_labels=None).iloc[0]
    assert (row.answer_text, row.answer_value) == ("2", "2")

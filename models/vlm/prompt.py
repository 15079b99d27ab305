"""The paper's in-context prompt (Fig. 3), used verbatim for training, scoring and inference.

Fine-tuning and evaluation must see the same text: the model learns the Fig. 3 scaffold (system
prompt, subquery, one normal example image with its reasoning and answer, the test image) and is
asked in exactly that scaffold later. Keeping the format in one module makes that impossible to
break by accident.

The system prompt is copied from the paper's Fig. 3. The PDF extraction renders the tags in
monospace as Markdown back-ticks; those back-ticks are typesetting, not prompt text, and are left
out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from models.envelope import split_envelope

SYSTEM_PROMPT = (
    "- Task: You need to answer questions based on the image uploaded.\n"
    "- Format: Your response should include a concise reasoning process and an accurate answer, "
    "with the reasoning and answer enclosed separately using <think> and </think>, and <answer> and "
    "</answer> tags, for example:\n"
    "<think>This is the reasoning process</think><answer>This is the answer</answer>."
)
CASE_HEADER = "Case:\n- Input Image: "
CASE_OUTPUT = "\n- Output: "
INSTRUCTION = "On the test image, provide a concise reasoning and the corresponding answer."
TEST_HEADER = "Test:\n- Input: "
TEST_OUTPUT = "\n- Output:"

_WHITESPACE_RE = re.compile(r"\s+")


def build_messages(question: str, example_image: Any, example_target: str, test_image: Any) -> list[dict]:
    """Chat messages of Fig. 3 with two images (the normal example first, the test image second).

    The image entries carry whatever the caller passes (PIL images or paths); the chat template only
    needs their position, and the images themselves go to the processor in the same order.
    """
    user_content = [
        {"type": "text", "text": f"{question}\n{CASE_HEADER}"},
        {"type": "image", "image": example_image},
        {"type": "text", "text": f"{CASE_OUTPUT}{example_target}\n{INSTRUCTION}\n{TEST_HEADER}"},
        {"type": "image", "image": test_image},
        {"type": "text", "text": TEST_OUTPUT},
    ]
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": user_content},
    ]


def normalise_answer(answer: str) -> str:
    """Lower case, no whitespace, no trailing full stop: ``"[2, 1, 1]"`` equals ``"[2,1,1]"``."""
    return _WHITESPACE_RE.sub("", answer).lower().rstrip(".")


def exact_answer_match(sample: Mapping[str, Any], generated: str) -> bool:
    """Default answer checker: the normalised ``<answer>`` contents of output and ``target`` agree.

    The lead plugs in the scenario's spec parser instead; this default keeps training usable without
    one. An output without an ``<answer>`` block is wrong.
    """
    predicted = split_envelope(generated).answer
    expected = split_envelope(str(sample["target"])).answer
    if predicted is None or expected is None:
        return False
    return normalise_answer(predicted) == normalise_answer(expected)

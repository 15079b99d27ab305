"""The paper's in-context prompt (Fig. 3), used verbatim for training, scoring and inference.

Fine-tuning and evaluation must see the same text: the model learns the Fig. 3 scaffold (system
prompt, subquery, one normal example image with its reasoning and answer, the test image) and is
asked in exactly that scaffold later. Keeping the format in one module makes that impossible to
break by accident: the trainer and inference take :func:`build_messages`, the LLaMA-Factory export
(`models.instruct.cot`) takes :func:`sharegpt_messages`, and both come from :func:`user_content`, so a
model fine-tuned with LLaMA-Factory on the export is evaluated on the prompt it learned (the same
tokens under the Qwen2.5-VL chat template; `tests/vlm/test_export_prompt.py`).

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

IMAGE_PLACEHOLDER = "<image>"
"""Where an image goes in plain-text messages: LLaMA-Factory's image token (``mm_plugin`` expands it to
``<|vision_start|><|image_pad|>…<|vision_end|>``, as the chat template renders an image entry)."""

_WHITESPACE_RE = re.compile(r"\s+")


def user_content(question: str, example_image: Any, example_target: str, test_image: Any) -> list[dict]:
    """The user turn of Fig. 3 as chat content: the subquery, the example image with its output, the test image.

    The one home of the prompt's text: :func:`build_messages` and :func:`sharegpt_messages` both read it.
    """
    return [
        {"type": "text", "text": f"{question}\n{CASE_HEADER}"},
        {"type": "image", "image": example_image},
        {"type": "text", "text": f"{CASE_OUTPUT}{example_target}\n{INSTRUCTION}\n{TEST_HEADER}"},
        {"type": "image", "image": test_image},
        {"type": "text", "text": TEST_OUTPUT},
    ]


def build_messages(question: str, example_image: Any, example_target: str, test_image: Any) -> list[dict]:
    """Chat messages of Fig. 3 with two images (the normal example first, the test image second).

    The image entries carry whatever the caller passes (PIL images or paths); the chat template only
    needs their position, and the images themselves go to the processor in the same order.
    """
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": user_content(question, example_image, example_target, test_image)},
    ]


def sharegpt_messages(question: str, example_target: str, target: str) -> list[dict]:
    """The same conversation as plain-text messages with the assistant's target (LLaMA-Factory's sharegpt
    format in OpenAI roles): each image entry becomes :data:`IMAGE_PLACEHOLDER`, the images are listed
    beside the messages in the same order (example first)."""
    user = "".join(part["text"] if part["type"] == "text" else IMAGE_PLACEHOLDER
                   for part in user_content(question, None, example_target, None))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user},
        {"role": "assistant", "content": target},
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

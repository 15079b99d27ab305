"""The Fig. 3 prompt and the answer helpers."""

from models.envelope import format_target
from models.vlm.prompt import SYSTEM_PROMPT, build_messages, exact_answer_match, normalise_answer


def test_system_prompt_is_the_papers_fig3_text():
    assert SYSTEM_PROMPT.startswith(
        "- Task: You need to answer questions based on the image uploaded.\n- Format: Your response should")
    assert SYSTEM_PROMPT.endswith(
        "for example:\n<think>This is the reasoning process</think><answer>This is the answer</answer>.")
    assert "`" not in SYSTEM_PROMPT


def test_messages_follow_fig3_with_example_image_first():
    example_target = "<think>t</think><answer>2</answer>"
    messages = build_messages("How many nuts?", "example.png", example_target, "test.png")
    assert [m["role"] for m in messages] == ["system", "user"]
    content = messages[1]["content"]
    assert [c["type"] for c in content] == ["text", "image", "text", "image", "text"]
    assert content[1]["image"] == "example.png" and content[3]["image"] == "test.png"
    text = "".join(c.get("text", "<IMG>") for c in content)
    assert text == (
        "How many nuts?\nCase:\n- Input Image: <IMG>\n- Output: <think>t</think><answer>2</answer>\n"
        "On the test image, provide a concise reasoning and the corresponding answer.\n"
        "Test:\n- Input: <IMG>\n- Output:"
    )


def test_default_checker():
    target = format_target("two rows", "[2, 1, 1, 1, 1]")
    assert normalise_answer(" Just  Right. ") == "justright"
    row = {"target": target}
    assert exact_answer_match(row, "<think>other</think><answer>[2,1,1,1,1]</answer>")
    assert not exact_answer_match(row, "<think>x</think><answer>[1,1,1,1,1]</answer>")
    assert not exact_answer_match(row, "[2,1,1,1,1]")

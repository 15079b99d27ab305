"""One prompt everywhere: a row of the LLaMA-Factory export, rendered with the Qwen2.5-VL chat template the way
LLaMA-Factory reads it, is token for token what the trainer encodes (`models.vlm.encoding`)."""

from __future__ import annotations

import json

import torch

from models.instruct.cot import write_jsonl
from models.vlm.encoding import PromptEncoder, load_image, request_from_row
from models.vlm.model import LoadedVLM
from models.vlm.prompt import IMAGE_PLACEHOLDER


def _chat_from_export(record: dict, media_dir) -> tuple[list[dict], list]:
    """What LLaMA-Factory does with a sharegpt line: image paths joined to media_dir, each ``<image>`` in the
    text an image at that place, in the listed order; here as the chat template's content entries."""
    images = [load_image(media_dir / path) for path in record["images"]]
    messages, queue = [], iter(images)
    for message in record["messages"]:
        parts = message["content"].split(IMAGE_PLACEHOLDER)
        content = [{"type": "text", "text": parts[0]}]
        for text in parts[1:]:
            content += [{"type": "image", "image": next(queue)}, {"type": "text", "text": text}]
        messages.append({"role": message["role"], "content": [c for c in content if c.get("text") != ""]})
    return messages, images


def test_an_exported_row_is_the_trainers_tokens(tiny_model_dir, samples, tmp_path) -> None:
    processor = LoadedVLM.from_pretrained(tiny_model_dir).processor
    export = write_jsonl(tmp_path / "export.jsonl", samples)
    records = [json.loads(line) for line in (tmp_path / "export.jsonl").read_text().splitlines()]
    assert export.lines == len(samples) == len(records)
    encoder = PromptEncoder(processor)
    for record, row in zip(records, samples.to_dict("records"), strict=True):
        messages, images = _chat_from_export(record, export.media_dir)
        text = processor.apply_chat_template(messages, tokenize=False)
        exported = processor(text=[text], images=images, return_tensors="pt")["input_ids"][0]
        trained = encoder.encode_example(request_from_row(row), row["target"])
        ours = torch.cat([trained.prompt.input_ids, trained.target_ids])
        assert torch.equal(ours, exported[:-1]), row["sample_id"]  # the template's trailing newline is not trained

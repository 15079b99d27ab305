"""Collation: token types reach the model, labels cover only the assistant target, padding is inert."""

import pytest
import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from models.vlm.encoding import (
    IGNORE_INDEX,
    EncodedExample,
    PromptEncoder,
    collate_for_generation,
    collate_for_loss,
    load_image,
    request_from_row,
)
from models.vlm.model import LoadedVLM
from models.vlm.prompt import build_messages
from models.vlm.scoring import TargetTokenNLL


@pytest.fixture(scope="module")
def vlm(tiny_model_dir):
    return LoadedVLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def encoder(vlm):
    return PromptEncoder(vlm.processor)


def _examples(encoder, samples, n=2):
    rows = samples.to_dict("records")[:n]
    return [encoder.encode_example(request_from_row(r), r["target"]) for r in rows]


def test_prompt_plus_target_equals_the_rendered_chat(vlm, encoder, samples):
    row = samples.iloc[1]
    example = _examples(encoder, samples.iloc[1:2], n=1)[0]
    request = request_from_row(row)
    images = [load_image(request.example_image), load_image(request.test_image)]
    messages = build_messages(request.question, images[0], request.example_target, images[1])
    messages.append({"role": "assistant", "content": [{"type": "text", "text": row["target"]}]})
    text = vlm.processor.apply_chat_template(messages, tokenize=False)
    full = vlm.processor(text=[text], images=images, return_tensors="pt")["input_ids"][0]
    ours = torch.cat([example.prompt.input_ids, example.target_ids])
    assert text.endswith("<|im_end|>\n")
    assert torch.equal(ours, full[:-1])  # the template's trailing newline is not trained


def test_labels_cover_only_the_assistant_target_and_its_end_token(encoder, samples):
    examples = _examples(encoder, samples)
    batch = collate_for_loss(examples, encoder.pad_token_id)
    for i, ex in enumerate(examples):
        prompt_len, target_len = ex.prompt.input_ids.numel(), ex.target_ids.numel()
        labels = batch["labels"][i]
        assert (labels[:prompt_len] == IGNORE_INDEX).all()
        assert torch.equal(labels[prompt_len:prompt_len + target_len], ex.target_ids)
        assert labels[prompt_len + target_len - 1] == encoder.end_token_id
        assert (labels[prompt_len + target_len:] == IGNORE_INDEX).all()  # right padding
        assert batch["attention_mask"][i].sum() == prompt_len + target_len


def test_collators_pad_token_types_with_zero_and_keep_image_order(encoder, samples):
    examples = _examples(encoder, samples)
    for batch, left in ((collate_for_loss(examples, encoder.pad_token_id), False),
                        (collate_for_generation([e.prompt for e in examples], encoder.pad_token_id), True)):
        types = batch["mm_token_type_ids"]
        assert types.shape == batch["input_ids"].shape
        image_tokens = batch["input_ids"] == encoder.processor.image_token_id
        assert torch.equal(types.bool(), image_tokens)
        padding = batch["attention_mask"] == 0
        assert (types[padding] == 0).all() and (batch["input_ids"][padding] == encoder.pad_token_id).all()
        assert padding[:, 0].any() if left else padding[:, -1].any()
        grid = torch.cat([e.prompt.image_grid_thw for e in examples])
        assert torch.equal(batch["image_grid_thw"], grid)
        assert batch["pixel_values"].shape[0] == int(grid.prod(-1).sum())


def test_token_types_reach_forward_and_generate(vlm, encoder, samples, monkeypatch):
    """Without mm_token_type_ids mRoPE silently degrades to 1-D positions; check they arrive."""
    seen = []
    original = Qwen2_5_VLModel.get_rope_index

    def spy(self, input_ids, mm_token_type_ids, *args, **kwargs):
        seen.append(mm_token_type_ids)
        return original(self, input_ids, mm_token_type_ids, *args, **kwargs)

    monkeypatch.setattr(Qwen2_5_VLModel, "get_rope_index", spy)
    examples = _examples(encoder, samples)
    batch = collate_for_loss(examples, encoder.pad_token_id)
    with torch.no_grad():
        TargetTokenNLL(vlm.model)(**batch)
    assert len(seen) == 1 and torch.equal(seen[0], batch["mm_token_type_ids"])
    generation = collate_for_generation([e.prompt for e in examples], encoder.pad_token_id)
    with torch.no_grad():
        vlm.model.generate(**generation, max_new_tokens=2, do_sample=False)
    assert torch.equal(seen[1], generation["mm_token_type_ids"])


def test_per_sample_nll_does_not_depend_on_batch_padding(vlm, encoder, samples):
    examples = _examples(encoder, samples)
    assert examples[0].num_tokens != examples[1].num_tokens
    nll = TargetTokenNLL(vlm.model)
    with torch.no_grad():
        together, rows = nll(**collate_for_loss(examples, encoder.pad_token_id))
        for i, ex in enumerate(examples):
            alone, _ = nll(**collate_for_loss([ex], encoder.pad_token_id))
            torch.testing.assert_close(together[rows == i], alone, rtol=1e-5, atol=1e-5)


def test_max_length_cuts_the_target_never_the_image_tokens(vlm, samples):
    row = samples.to_dict("records")[0]
    full = PromptEncoder(vlm.processor).encode_example(request_from_row(row), row["target"])
    prompt_len = full.prompt.input_ids.numel()
    request = request_from_row(row)
    cut = PromptEncoder(vlm.processor, max_length=prompt_len + 3).encode_example(request, row["target"])
    assert isinstance(cut, EncodedExample) and cut.target_ids.numel() == 3
    with pytest.raises(ValueError, match="lower max_pixels"):
        PromptEncoder(vlm.processor, max_length=prompt_len - 1).encode_example(request, row["target"])


def test_an_image_the_processor_would_refuse_is_named(tmp_path):
    from PIL import Image

    thin = tmp_path / "thin.png"
    Image.new("RGB", (3, 4000)).save(thin)
    with pytest.raises(ValueError, match=r"image .*thin\.png is 3x4000 pixels, an aspect ratio of 1333:1; .*200:1"):
        load_image(thin)
    Image.new("RGB", (20, 4000)).save(thin)
    assert load_image(thin).size == (20, 4000)


def test_the_model_sees_the_pixels_grounding_measured(tmp_path):
    """One reader: a photo with an EXIF rotation was upright for grounding (OpenCV applies the
    orientation) but on its side for the model (PIL does not), so cited boxes pointed elsewhere."""
    import numpy as np
    from PIL import Image

    from models.images import read_rgb

    photo = tmp_path / "photo.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(np.arange(20 * 40 * 3, dtype=np.uint8).reshape(20, 40, 3)).save(photo, exif=exif)
    assert np.array_equal(np.asarray(load_image(photo)), read_rgb(photo))
    assert load_image(photo).size == (20, 40)

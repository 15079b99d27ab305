"""The tiny model builder and the checkpoint wrapper: the same load path as a real checkpoint."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2_5_VLForConditionalGeneration

from models.devices import resolve_device, resolve_dtype
from models.vlm.encoding import PromptEncoder, PromptRequest, collate_for_generation
from models.vlm.model import LoadedVLM, VLMConfig
from models.vlm.tiny import QWEN_SPECIAL_TOKENS, create_tiny_qwen25vl


def _request(image_dir):
    return PromptRequest("How many nuts?", image_dir / "example.png", "<think>a</think><answer>2</answer>",
                         image_dir / "test_1.png")


def test_tiny_checkpoint_layout_and_special_tokens(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    tokenizer = vlm.tokenizer
    ids = tokenizer.convert_tokens_to_ids(list(QWEN_SPECIAL_TOKENS))
    assert ids == list(range(len(QWEN_SPECIAL_TOKENS)))  # Qwen's relative order, all single tokens
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config["vision_start_token_id"] == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    text = "<think>[65,78,249,191]</think>"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert isinstance(vlm.model, Qwen2_5_VLForConditionalGeneration)
    assert vlm.model.dtype == torch.float32 and vlm.device.type == "cpu"


def test_build_save_load_round_trip(tiny_model_dir, image_dir):
    """The model in memory and the one from_pretrained loads from its saved directory agree exactly."""
    in_memory, processor = create_tiny_qwen25vl(seed=0)
    loaded = LoadedVLM.from_pretrained(tiny_model_dir)
    assert processor.tokenizer.get_vocab() == loaded.tokenizer.get_vocab()
    encoder = PromptEncoder(loaded.processor)
    batch = collate_for_generation([encoder.encode_prompt(_request(image_dir))], encoder.pad_token_id)
    in_memory_ids = PromptEncoder(processor).encode_prompt(_request(image_dir)).input_ids
    assert torch.equal(in_memory_ids, batch["input_ids"][0])
    with torch.no_grad():
        assert torch.equal(in_memory(**batch).logits, loaded.model(**batch).logits)


# A hub id is read as a local path that does not exist: refused with a clear error, no network access.
HUB_ID = "Qwen/Qwen2.5-VL-3B-Instruct"


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"huggingface-cli download Qwen/Qwen2\.5-VL-3B-Instruct"):
        LoadedVLM.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not found"):
        LoadedVLM.from_pretrained(HUB_ID)


def test_wrong_architecture_is_a_clear_error(tiny_model_dir, tmp_path):
    other = tmp_path / "llama"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "llama"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'llama' model; expected a Qwen2\.5-VL"):
        LoadedVLM.from_pretrained(other)
    (other / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        LoadedVLM.from_pretrained(other)


def test_pixel_bounds_and_dtype_resolution(tiny_model_dir):
    config = VLMConfig(min_pixels=28 * 28, max_pixels=56 * 56)
    vlm = LoadedVLM.from_pretrained(tiny_model_dir, config)
    size = vlm.processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (28 * 28, 56 * 56)
    assert vlm.base_model.dtype == torch.float32  # auto on CPU


def test_one_device_and_dtype_rule_for_the_vlm_and_grounding(monkeypatch):
    """The VLM and grounding resolved ``auto`` with different rules (cuda:LOCAL_RANK or cuda; bf16
    always or bf16 only where supported); both use models.devices now."""
    from models.grounding import clip_sam
    from models.vlm import model

    assert model.resolve_device is clip_sam.resolve_device is resolve_device
    assert model.resolve_dtype is clip_sam.resolve_dtype is resolve_dtype
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda", 3)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="'cuda:1' was asked for but CUDA is not available: use 'auto' or 'cpu'"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        resolve_dtype("half", torch.device("cpu"))


def test_load_adapter_rejects_a_directory_without_adapter(tiny_model_dir, tmp_path):
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        vlm.load_adapter(tmp_path)


def _write_hub_layout(src, dst):
    """Re-save the tiny checkpoint the way Qwen/Qwen2.5-VL-3B-Instruct is published (transformers 4
    layout: flat text config with ``rope_scaling``, ``model.layers.*`` / ``visual.*`` weight names,
    ``preprocessor_config.json``, ``chat_template.json``, v4 ``tokenizer_config.json``)."""
    dst.mkdir()
    nested = json.loads((src / "config.json").read_text())
    text, vision = nested.pop("text_config"), nested.pop("vision_config")
    rope = text.pop("rope_parameters")
    for key in ("model_type", "layer_types", "dtype"):
        text.pop(key, None)
    vision.pop("rope_parameters")
    vision["model_type"] = "qwen2_5_vl"  # old checkpoints carry this wrong type in vision_config
    config = {**nested, **text, "vision_config": vision, "rope_theta": rope["rope_theta"],
              "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]},
              "torch_dtype": "float32", "transformers_version": "4.49.0"}
    config.pop("dtype")
    (dst / "config.json").write_text(json.dumps(config))
    weights = load_file(src / "model.safetensors")
    renamed = {key.replace("model.language_model.", "model.").replace("model.visual.", "visual."): value
               for key, value in weights.items() if key != "lm_head.weight"}
    save_file(renamed, dst / "model.safetensors", metadata={"format": "pt"})
    processor = json.loads((src / "processor_config.json").read_text())["image_processor"]
    size = processor.pop("size")
    processor.update(min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"],
                     processor_class="Qwen2_5_VLProcessor")
    (dst / "preprocessor_config.json").write_text(json.dumps(processor))
    template = (src / "chat_template.jinja").read_text()
    (dst / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    shutil.copy(src / "tokenizer.json", dst / "tokenizer.json")
    (dst / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "bos_token": None, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None}))


def test_a_checkpoint_in_the_published_hub_layout_loads_the_same(tiny_model_dir, image_dir, tmp_path):
    hub = tmp_path / "Qwen2.5-VL-tiny-hub-layout"
    _write_hub_layout(tiny_model_dir, hub)
    ours, theirs = (LoadedVLM.from_pretrained(d) for d in (tiny_model_dir, hub))
    assert theirs.tokenizer.get_vocab() == ours.tokenizer.get_vocab()
    batch_ours, batch_theirs = (
        collate_for_generation([PromptEncoder(vlm.processor).encode_prompt(_request(image_dir))], 0)
        for vlm in (ours, theirs))
    for key in batch_ours:
        assert torch.equal(batch_ours[key], batch_theirs[key]), key
    with torch.no_grad():
        assert torch.equal(ours.model(**batch_ours).logits, theirs.model(**batch_theirs).logits)

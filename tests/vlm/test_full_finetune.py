"""Full fine-tuning (``TrainConfig.method="full"``): every weight trains, the result is a whole checkpoint that
loads like a base one, resume is exact, and the loaders tell it from a LoRA adapter."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from models.storage import StorageLayout
from models.vlm import LoadedVLM, TrainConfig, train_lora, trained_kind
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel

FULL_CONFIG = TrainConfig(
    method="full", num_epochs=3, samples_per_epoch=6, per_device_batch_size=2, gradient_accumulation_steps=1,
    learning_rate=2e-3, max_new_tokens=12, score_batch_size=4, lr_schedule="cosine", warmup_steps=1,
    log_every_steps=1, lora_targets=(),
)


class Crash(RuntimeError):
    pass


def _crash_in_epoch_2(step, model):
    if step == 5:  # epoch 2 runs steps 4-6
        raise Crash("simulated kill")


def _weights(directory) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in sorted(directory.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def test_full_run_trains_every_weight_and_resumes_exactly(tiny_model_dir, sample_factory, tmp_path):
    samples = sample_factory(6)
    reference = train_lora(tiny_model_dir, samples, FULL_CONFIG, tmp_path / "reference")
    assert trained_kind(reference.adapter_dir) == "full"
    assert not (reference.adapter_dir / "adapter_config.json").exists()
    base, trained = _weights(tiny_model_dir), _weights(reference.adapter_dir)
    assert base.keys() == trained.keys()  # the same layout as a base checkpoint: no LoRA keys
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    assert any(k.startswith("visual.") for k in changed), "the vision tower did not train"
    assert any(k.startswith("model.layers.") for k in changed), "the language model did not train"
    assert (tmp_path / "reference" / "epoch_001" / "model").is_dir()
    assert not (tmp_path / "reference" / "epoch_001" / "adapter").exists()

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        train_lora(tiny_model_dir, samples, FULL_CONFIG, crashed, step_callback=_crash_in_epoch_2)
    resumed = train_lora(tiny_model_dir, samples, FULL_CONFIG, crashed)
    assert resumed.resumed_from_epoch == 1
    again = _weights(resumed.adapter_dir)
    for key in trained:
        assert torch.equal(trained[key], again[key]), key  # bit-identical on CPU
    assert resumed.epoch_losses == reference.epoch_losses

    # the published folder loads through the same path as a base checkpoint, and the resource picks that path
    loaded = LoadedVLM.from_pretrained(reference.adapter_dir)
    assert torch.equal(loaded.model.get_input_embeddings().weight, trained["model.embed_tokens.weight"])
    assert torch.equal(loaded.model.model.visual.patch_embed.proj.weight, trained["visual.patch_embed.proj.weight"])
    resource = VisionLanguageModel(storage=StorageResource(root=str(tmp_path / "store")),
                                   checkpoint_dir=str(tiny_model_dir))
    via_resource = resource.load(reference.adapter_dir)
    assert via_resource.path == reference.adapter_dir
    swapped = LoadedVLM.from_pretrained(tiny_model_dir)
    swapped.load_trained(reference.adapter_dir)
    assert swapped.path == reference.adapter_dir
    assert isinstance(StorageLayout(tmp_path).adapter_dir("pushpins"), type(tmp_path))

    # a damaged full checkpoint is one ValueError naming the folder and the fix, on both loading paths
    damaged = tmp_path / "damaged"
    shutil.copytree(reference.adapter_dir, damaged)
    weights = next(damaged.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])
    base_model = LoadedVLM.from_pretrained(tiny_model_dir)
    for load in (lambda: resource.load(damaged), lambda: base_model.load_trained(damaged)):
        with pytest.raises(ValueError, match=rf"fully fine-tuned checkpoint in {damaged} does not load .*: train it"):
            load()


def test_trained_kind_refuses_a_folder_without_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"neither adapter_config\.json"):
        trained_kind(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert trained_kind(tmp_path) == "lora"
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="both"):
        trained_kind(tmp_path)


def test_method_is_validated_and_full_needs_no_lora_targets():
    with pytest.raises(ValueError, match=r"TrainConfig\.method must be one of lora, full"):
        TrainConfig(method="qlora")
    with pytest.raises(ValueError, match="no LoRA targets"):
        TrainConfig(lora_targets=())
    assert TrainConfig(method="full", lora_targets=()).result_settings()["method"] == "full"


def test_cached_pixel_values_equal_fresh_ones(tiny_model_dir, samples):
    from models.vlm.encoding import PromptEncoder, cache_pixel_values, request_from_row

    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    fresh = [PromptEncoder(vlm.processor).encode_prompt(request_from_row(r)) for r in samples.to_dict("records")]
    cache_pixel_values(vlm.processor, max_images=3)
    encoder = PromptEncoder(vlm.processor)
    for _ in range(2):  # the second pass reads the cache (and evicts: 5 images, 3 kept)
        cached = [encoder.encode_prompt(request_from_row(r)) for r in samples.to_dict("records")]
        for a, b in zip(fresh, cached, strict=True):
            assert torch.equal(a.pixel_values, b.pixel_values) and torch.equal(a.image_grid_thw, b.image_grid_thw)
            assert torch.equal(a.input_ids, b.input_ids)
    assert len(vlm.processor.image_processor.cache) == 3

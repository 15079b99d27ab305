"""Training: the loss falls, the per-epoch tables follow the contract, resume is exact."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from models.vlm.checkpoint import COMPLETE
from models.vlm.train import DIFFICULTY_COLUMNS, TrainConfig, train_lora


def test_loss_falls_and_greedy_output_learns_the_targets(overfit_run):
    result, events = overfit_run
    curve = [e["loss"] for e in events if e["event"] == "step"]
    print("loss every 10 steps:", [round(x, 3) for x in curve])
    assert len(curve) == 30
    assert curve[-1] < 0.2 * curve[0]
    assert result.epoch_losses[1] < 0.5 * result.epoch_losses[0]
    last = result.difficulty[result.difficulty["epoch"] == 2]
    assert last["correct"].mean() >= 0.75  # the answer is a count only the image's colour tells


def test_per_epoch_tables_follow_the_contract(overfit_run, samples):
    result, events = overfit_run
    assert tuple(result.difficulty.columns) == DIFFICULTY_COLUMNS
    assert len(result.difficulty) == 2 * len(samples)
    assert set(result.difficulty["sample_id"]) == set(samples["sample_id"])
    recomputed = (~result.difficulty["correct"]).astype(float) + 0.2 * result.difficulty["perplexity"]
    np.testing.assert_allclose(result.difficulty["difficulty"], recomputed)
    assert (result.difficulty["perplexity"] >= 1.0).all()
    probs = result.probabilities
    assert list(probs.columns) == ["epoch", "subquery_id", "probability"]
    np.testing.assert_allclose(probs.groupby("epoch")["probability"].sum(), 1.0)
    epoch_events = [e for e in events if e["event"] == "epoch_end"]
    assert [e["epoch"] for e in epoch_events] == [1, 2]
    assert epoch_events[0]["probabilities"] == pytest.approx(
        dict(zip(probs[probs.epoch == 1].subquery_id, probs[probs.epoch == 1].probability, strict=True)))
    for name in ("epoch_001", "epoch_002"):
        checkpoint = result.output_dir / name
        assert (checkpoint / COMPLETE).is_file()
        assert (checkpoint / "adapter" / "adapter_model.safetensors").is_file()
        state = json.loads((checkpoint / "state.json").read_text())
        assert state["config"]["learning_rate"] == 5e-3
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


RESUME_CONFIG = TrainConfig(
    num_epochs=3, samples_per_epoch=6, per_device_batch_size=2, gradient_accumulation_steps=1,
    learning_rate=5e-3, lora_dropout=0.1, lora_r=4, lora_alpha=8, max_new_tokens=12, score_batch_size=4,
    lr_schedule="cosine", warmup_steps=1, log_every_steps=1,
)


class Crash(RuntimeError):
    pass


def _crash_in_epoch_2(step, model):
    if step == 5:  # epoch 2 runs steps 4-6
        raise Crash("simulated kill")


def test_resume_after_a_crash_equals_the_uninterrupted_run(tiny_model_dir, sample_factory, tmp_path):
    samples = sample_factory(6)
    reference = train_lora(tiny_model_dir, samples, RESUME_CONFIG, tmp_path / "reference")

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        train_lora(tiny_model_dir, samples, RESUME_CONFIG, crashed, step_callback=_crash_in_epoch_2)
    assert [p.name for p in sorted(crashed.glob("epoch_*"))] == ["epoch_001"]
    (crashed / ".epoch_002.tmp-1").mkdir()  # debris of a kill during a checkpoint write
    events = []
    resumed = train_lora(tiny_model_dir, samples, RESUME_CONFIG, crashed, progress_callback=events.append)

    assert resumed.resumed_from_epoch == 1 and events[0]["event"] == "resumed"
    assert not (crashed / ".epoch_002.tmp-1").exists()
    a = load_file(reference.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key  # bit-identical on CPU
    assert resumed.epoch_losses == reference.epoch_losses
    pd.testing.assert_frame_equal(resumed.difficulty, reference.difficulty)
    pd.testing.assert_frame_equal(resumed.probabilities, reference.probabilities)
    assert resumed.global_step == reference.global_step == 9


def test_resume_refuses_another_config(tiny_model_dir, sample_factory, tmp_path):
    samples = sample_factory(4)
    config = TrainConfig(num_epochs=1, samples_per_epoch=2, per_device_batch_size=2,
                         gradient_accumulation_steps=1, max_new_tokens=4, lora_r=2)
    train_lora(tiny_model_dir, samples, config, tmp_path)
    with pytest.raises(ValueError, match="another config or other data"):
        other = TrainConfig.from_dict({**config.to_dict(), "learning_rate": 1.0})
        train_lora(tiny_model_dir, samples, other, tmp_path)
    fresh = train_lora(tiny_model_dir, samples.iloc[:3], config, tmp_path, resume=False)
    assert fresh.resumed_from_epoch == 0 and len(fresh.difficulty) == 3


def test_samples_contract_is_checked(tiny_model_dir, samples, tmp_path):
    with pytest.raises(ValueError, match="example_target"):
        train_lora(tiny_model_dir, samples.drop(columns="example_target"), TrainConfig(), tmp_path)
    with pytest.raises(ValueError, match="unique"):
        train_lora(tiny_model_dir, pd.concat([samples, samples]), TrainConfig(), tmp_path)


def test_lora_targets_hit_only_the_named_layers(tiny_model_dir):
    from models.vlm.model import LoadedVLM
    from models.vlm.train import lora_config

    def targeted(config: TrainConfig) -> set[str]:
        vlm = LoadedVLM.from_pretrained(tiny_model_dir)
        vlm.add_lora(lora_config(config))
        return {name.removeprefix("base_model.model.").rsplit(".lora_A", 1)[0]
                for name, _ in vlm.model.named_parameters() if ".lora_A." in name}

    default = targeted(TrainConfig())
    assert default == {f"model.language_model.layers.{i}.self_attn.{p}_proj" for i in (0, 1) for p in "qkvo"}
    with_mlp = targeted(TrainConfig(lora_targets=("gate_proj", "down_proj")))
    # the vision blocks' gate_proj/down_proj stay untouched
    names = ("gate_proj", "down_proj")
    assert with_mlp == {f"model.language_model.layers.{i}.mlp.{p}" for i in (0, 1) for p in names}
    vision = targeted(TrainConfig(lora_targets=(), vision_lora_targets=("qkv",)))
    assert vision == {f"model.visual.blocks.{i}.attn.qkv" for i in (0, 1)}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir, sample_factory, tmp_path):
    samples = sample_factory(2)
    grads = {}

    def keep(flag):
        def callback(step, model):
            assert model.get_base_model().is_activation_checkpointing == flag
            grads[flag] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return callback

    for flag in (False, True):
        config = TrainConfig(num_epochs=1, per_device_batch_size=2, gradient_accumulation_steps=1, lora_r=4,
                             lora_dropout=0.0, max_new_tokens=2, gradient_checkpointing=flag)
        train_lora(tiny_model_dir, samples, config, tmp_path / str(flag), step_callback=keep(flag))
    assert grads[True].keys() == grads[False].keys()
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, rtol=1e-5, atol=1e-8)

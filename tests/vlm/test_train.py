"""Training: the loss falls, the per-epoch tables follow the contract, resume is exact."""

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from models.vlm.checkpoint import COMPLETE
from models.vlm.resampling import DIFFICULTY_COLUMNS
from models.vlm.train import RUNTIME_SETTINGS, TrainConfig, train_lora
from tests.vlm.conftest import OVERFIT_CONFIG


def test_loss_falls_and_greedy_output_learns_the_targets(overfit_run):
    result, events = overfit_run
    curve = [e["loss"] for e in events if e["event"] == "step"]
    print(f"loss every {OVERFIT_CONFIG['log_every_steps']} steps:", [round(x, 3) for x in curve])
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
        assert state["config"]["learning_rate"] == OVERFIT_CONFIG["learning_rate"]
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


def _crash_in_epoch_2_of_2_steps(step, model):
    if step == 3:  # two steps per epoch: epoch 2 runs steps 3-4
        raise Crash("simulated kill")


def test_changing_a_runtime_setting_resumes(tiny_model_dir, sample_factory, tmp_path):
    """The scoring batch size and the logging interval change speed, not the result: the run goes on."""
    samples = sample_factory(4)
    config = TrainConfig(num_epochs=2, samples_per_epoch=4, per_device_batch_size=2, gradient_accumulation_steps=1,
                         lora_r=2, lora_alpha=4, max_new_tokens=4, score_batch_size=4, log_every_steps=1)
    with pytest.raises(Crash):
        train_lora(tiny_model_dir, samples, config, tmp_path, step_callback=_crash_in_epoch_2_of_2_steps)
    faster = dataclasses.replace(config, score_batch_size=1, log_every_steps=5)
    resumed = train_lora(tiny_model_dir, samples, faster, tmp_path)
    assert resumed.resumed_from_epoch == 1 and len(resumed.epoch_losses) == 2
    assert json.loads((tmp_path / "epoch_002" / "state.json").read_text())["config"]["score_batch_size"] == 1


def test_train_config_fields_carry_help() -> None:
    missing = [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("help")]
    assert missing == []
    assert {"num_workers", "score_batch_size", "score_token_budget", "log_every_steps",
            "gradient_checkpointing", "pixel_cache_images"} == RUNTIME_SETTINGS
    assert TrainConfig(lora_targets=["q_proj"], adam_betas=[0.8, 0.9]).lora_targets == ("q_proj",)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("lr_schedule", "cosin", "TrainConfig.lr_schedule must be one of constant, linear, cosine, got 'cosin'"),
    ("num_epochs", 0, "TrainConfig.num_epochs must be an integer >= 1, got 0"),
    ("per_device_batch_size", 2.0, "TrainConfig.per_device_batch_size must be an integer >= 1, got 2.0"),
    ("gradient_accumulation_steps", True, "TrainConfig.gradient_accumulation_steps must be an integer >= 1"),
    ("seed", -1, "TrainConfig.seed must be an integer >= 0"),
    ("warmup_steps", -1, "TrainConfig.warmup_steps must be an integer >= 0"),
    ("samples_per_epoch", 0, "TrainConfig.samples_per_epoch must be an integer >= 1"),
    ("score_max_samples", 0, "TrainConfig.score_max_samples must be an integer >= 1"),
    ("score_batch_size", 0, "TrainConfig.score_batch_size must be an integer >= 1"),
    ("score_token_budget", 0, "TrainConfig.score_token_budget must be an integer >= 1"),
    ("max_new_tokens", 0, "TrainConfig.max_new_tokens must be an integer >= 1"),
    ("max_length", 0, "TrainConfig.max_length must be an integer >= 1"),
    ("lora_r", 0, "TrainConfig.lora_r must be an integer >= 1"),
    ("learning_rate", 0.0, "TrainConfig.learning_rate must be a number > 0"),
    ("learning_rate", float("nan"), "TrainConfig.learning_rate must be a number > 0"),
    ("weight_decay", -0.1, "TrainConfig.weight_decay must be a number >= 0"),
    ("max_grad_norm", 0.0, "TrainConfig.max_grad_norm must be a number > 0 (or None: no clipping)"),
    ("lora_dropout", 1.0, "TrainConfig.lora_dropout must be a number in [0, 1)"),
    ("adam_betas", (0.9, 1.0), "TrainConfig.adam_betas must be two numbers in [0, 1)"),
    ("adam_betas", (0.9,), "TrainConfig.adam_betas must be two numbers in [0, 1)"),
    ("alpha", -1.0, "TrainConfig.alpha must be a number >= 0"),
    ("beta", -0.2, "TrainConfig.beta must be a number >= 0"),
    ("gamma", 0.0, "TrainConfig.gamma must be a number > 0"),
    ("lora_targets", ("q_proj", "qkv"), "TrainConfig.lora_targets has unknown layers ['qkv']; allowed: q_proj"),
    ("vision_lora_targets", ("q_proj",), "TrainConfig.vision_lora_targets has unknown layers ['q_proj']"),
    ("lora_targets", (), "TrainConfig: no LoRA targets; set lora_targets or vision_lora_targets"),
    ("resampling", "yes", "TrainConfig.resampling must be true or false, got 'yes'"),
    ("method", "qlora", "TrainConfig.method must be one of lora, full, got 'qlora'"),
    ("pixel_cache_images", -1, "TrainConfig.pixel_cache_images must be an integer >= 0"),
    ("group_key", "", "TrainConfig.group_key must name a sample column"),
])
def test_train_config_refuses_a_bad_value_naming_the_field(name, value, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**{name: value})
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict({name: list(value) if isinstance(value, tuple) else value})  # as JSON has it

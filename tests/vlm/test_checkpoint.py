"""Resume files are data, never code: crafted files are refused by name, and nothing they hold runs."""

from __future__ import annotations

import json
import os
import random
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from models.vlm.checkpoint import RNG_STATE, STATE, TRAINER_STATE, capture_rng_state, restore_rng_state
from models.vlm.train import TrainConfig, train_lora

CONFIG = TrainConfig(num_epochs=2, samples_per_epoch=2, per_device_batch_size=2, gradient_accumulation_steps=1,
                     max_new_tokens=4, lora_r=2, score_batch_size=4)


class Crash(RuntimeError):
    pass


def _crash_in_epoch_2(step, model):
    if step == 2:  # one step per epoch
        raise Crash("simulated kill")


class RunsACommand:
    """Unpickling this (``torch.load(weights_only=False)`` does) runs a shell command creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture
def interrupted(tiny_model_dir, sample_factory, tmp_path):
    """A run killed in epoch 2: ``epoch_001/`` is the checkpoint the next run resumes from."""
    samples = sample_factory(4)
    with pytest.raises(Crash):
        train_lora(tiny_model_dir, samples, CONFIG, tmp_path / "run", step_callback=_crash_in_epoch_2)
    return samples, tmp_path / "run" / "epoch_001"


def _resume(tiny_model_dir, samples, checkpoint: Path):
    return train_lora(tiny_model_dir, samples, CONFIG, checkpoint.parent)


def test_a_crafted_pickle_in_a_checkpoint_never_runs(interrupted, tiny_model_dir, tmp_path):
    samples, checkpoint = interrupted
    marker = tmp_path / "command-ran"
    pickles = sorted(p for p in checkpoint.iterdir() if p.suffix == ".pt")
    assert pickles  # the torch-format file(s) of the checkpoint
    for path in pickles:
        torch.save(RunsACommand(marker), path)
    with pytest.raises(ValueError, match="is not a valid resume file") as error:
        _resume(tiny_model_dir, samples, checkpoint)
    assert not marker.exists()
    assert str(checkpoint / TRAINER_STATE) in str(error.value)
    assert "weights_only=False" not in str(error.value)  # never advise the unsafe way out
    assert f"delete {checkpoint} to start that epoch again" in str(error.value)


def test_a_planted_rng_pt_is_never_opened(interrupted, tiny_model_dir, tmp_path):
    samples, checkpoint = interrupted
    marker = tmp_path / "command-ran"
    torch.save(RunsACommand(marker), checkpoint / "rng.pt")
    result = _resume(tiny_model_dir, samples, checkpoint)
    assert result.resumed_from_epoch == 1
    assert not marker.exists()


def test_a_checkpoint_of_the_pickle_format_is_refused_unopened(interrupted, tiny_model_dir, tmp_path):
    samples, checkpoint = interrupted
    marker = tmp_path / "command-ran"
    for name in ("optimizer.pt", "rng.pt"):  # format 1's layout
        torch.save(RunsACommand(marker), checkpoint / name)
    (checkpoint / TRAINER_STATE).unlink()
    (checkpoint / RNG_STATE).unlink()
    state = json.loads((checkpoint / STATE).read_text())
    del state["checkpoint_format"]
    (checkpoint / STATE).write_text(json.dumps(state))
    with pytest.raises(ValueError, match="format 1") as error:
        _resume(tiny_model_dir, samples, checkpoint)
    assert not marker.exists()
    assert f"delete {checkpoint.parent} or train with resume=False" in str(error.value)
    fresh = train_lora(tiny_model_dir, samples, CONFIG, checkpoint.parent, resume=False)
    assert fresh.resumed_from_epoch == 0 and not marker.exists()


@pytest.mark.parametrize(("content", "reason"), [
    ("[{\"python\": 1", "JSONDecodeError"),
    ("[]", "one RNG state per rank"),
    ("[{\"python\": 1, \"numpy\": 2, \"torch\": 3}]", "python state malformed"),
])
def test_a_malformed_rng_file_is_refused_by_name(interrupted, tiny_model_dir, content, reason):
    samples, checkpoint = interrupted
    (checkpoint / RNG_STATE).write_text(content)
    with pytest.raises(ValueError, match=reason) as error:
        _resume(tiny_model_dir, samples, checkpoint)
    assert str(checkpoint / RNG_STATE) in str(error.value)


def test_a_state_file_that_is_not_json_is_refused_by_name(interrupted, tiny_model_dir):
    samples, checkpoint = interrupted
    (checkpoint / STATE).write_bytes(b"\x80\x04not json")
    with pytest.raises(ValueError, match="is not a valid resume file") as error:
        _resume(tiny_model_dir, samples, checkpoint)
    assert str(checkpoint / STATE) in str(error.value)


def test_a_torch_file_of_another_shape_is_refused_by_name(interrupted, tiny_model_dir):
    samples, checkpoint = interrupted
    torch.save({"optimizer": {"state": {}, "param_groups": []}, "scheduler": {"x": 1}}, checkpoint / TRAINER_STATE)
    with pytest.raises(ValueError, match="scheduler state of another kind") as error:
        _resume(tiny_model_dir, samples, checkpoint)
    assert str(checkpoint / TRAINER_STATE) in str(error.value)


def test_rng_state_survives_json_exactly():
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0.0, 1.0)  # leaves a cached gaussian in python's state
    np.random.standard_normal()  # and in numpy's
    saved = json.loads(json.dumps(capture_rng_state()))

    def draws():
        return random.random(), random.gauss(0.0, 1.0), np.random.standard_normal(2).tolist(), torch.rand(3).tolist()

    expected = draws()
    restore_rng_state(saved)
    assert draws() == expected

"""The fine-tuning entry under torchrun: two gloo processes give the first-step gradients of one process.

Both processes are started with the command `FineTuningRun.command` builds, the one the asset runs.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.vlm.fine_tuning import FineTuningRun
from models.vlm.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]
BASE_TRAIN = {
    "num_epochs": 1, "samples_per_epoch": 4, "learning_rate": 1e-3, "lora_r": 4, "lora_alpha": 8,
    "lora_dropout": 0.0, "max_new_tokens": 6, "score_batch_size": 2, "log_every_steps": 1,
}


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _train(tmp_path: Path, name: str, tiny_model_dir: Path, samples, nproc: int, **train) -> list[dict]:
    """Train in a run folder under ``tmp_path/name``; the progress events rank 0 printed."""
    run = FineTuningRun.prepare(tmp_path / name, samples, TrainConfig.from_dict({**BASE_TRAIN, **train}),
                                model_dir=tiny_model_dir, base_model_hash="tiny")
    done = _run([*run.command(nproc), "--dump-first-step-grads", str(tmp_path / f"{name}.safetensors")])
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_two_process_gloo_gradients_equal_one_process(tiny_model_dir, sample_factory, tmp_path):
    samples = sample_factory(4)
    # the same global batch of 4: one process with 2 micro-batches of 2, two processes with 2 each
    events = _train(tmp_path, "single", tiny_model_dir, samples, 1, per_device_batch_size=2,
                    gradient_accumulation_steps=2)
    assert [e["event"] for e in events] == ["step", "epoch_end", "finished"]
    events = _train(tmp_path, "double", tiny_model_dir, samples, 2, per_device_batch_size=2,
                    gradient_accumulation_steps=1)
    assert [e["event"] for e in events] == ["step", "epoch_end", "finished"]  # rank 0 reports alone

    one, two = load_file(tmp_path / "single.safetensors"), load_file(tmp_path / "double.safetensors")
    assert one.keys() == two.keys() and len(one) == 16  # lora_A and lora_B of q/k/v/o in 2 layers
    for name in one:
        assert one[name].abs().sum() > 0 or "lora_A" in name  # B starts at zero, so A's grad is zero
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-7)
    both = [json.loads(next((tmp_path / n).glob("run-*/epoch_001/state.json")).read_text())
            for n in ("single", "double")]
    assert both[1]["world_size"] == 2 and both[0]["epoch_losses"] == pytest.approx(both[1]["epoch_losses"])
    for name in ("single", "double"):  # the result files the asset reads
        assert json.loads(next((tmp_path / name).glob("run-*/result.json")).read_text())["global_step"] == 1

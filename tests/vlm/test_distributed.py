"""The CLI under torchrun: two gloo processes give the first-step gradients of one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
BASE_TRAIN = {
    "num_epochs": 1, "samples_per_epoch": 4, "learning_rate": 1e-3, "lora_r": 4, "lora_alpha": 8,
    "lora_dropout": 0.0, "max_new_tokens": 6, "score_batch_size": 2, "log_every_steps": 1,
}


def _run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _write_run(tmp_path: Path, name: str, tiny_model_dir: Path, samples_file: Path, **train) -> Path:
    run = {
        "model_dir": str(tiny_model_dir), "samples": str(samples_file), "output_dir": str(tmp_path / name),
        "answer_checker": "models.vlm.prompt:exact_answer_match", "train": {**BASE_TRAIN, **train},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(run))
    return path


def test_two_process_gloo_gradients_equal_one_process(tiny_model_dir, sample_factory, tmp_path):
    samples_file = tmp_path / "samples.parquet"
    sample_factory(4).to_parquet(samples_file)
    # the same global batch of 4: one process with 2 micro-batches of 2, two processes with 2 each
    single = _write_run(tmp_path, "single", tiny_model_dir, samples_file,
                        per_device_batch_size=2, gradient_accumulation_steps=2)
    double = _write_run(tmp_path, "double", tiny_model_dir, samples_file,
                        per_device_batch_size=2, gradient_accumulation_steps=1)
    done = _run([sys.executable, "-m", "models.vlm.train", "--config", str(single),
                 "--dump-first-step-grads", str(tmp_path / "single.pt")], tmp_path)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["step", "epoch_end", "finished"]
    done = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 "-m", "models.vlm.train", "--config", str(double),
                 "--dump-first-step-grads", str(tmp_path / "double.pt")], tmp_path)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["step", "epoch_end", "finished"]  # rank 0 reports alone

    one, two = torch.load(tmp_path / "single.pt"), torch.load(tmp_path / "double.pt")
    assert one.keys() == two.keys() and len(one) == 16  # lora_A and lora_B of q/k/v/o in 2 layers
    for name in one:
        assert one[name].abs().sum() > 0 or "lora_A" in name  # B starts at zero, so A's grad is zero
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-7)
    both = [json.loads((tmp_path / n / "epoch_001" / "state.json").read_text()) for n in ("single", "double")]
    assert both[1]["world_size"] == 2 and both[0]["epoch_losses"] == pytest.approx(both[1]["epoch_losses"])

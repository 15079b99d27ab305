"""The run folder of `models.vlm.fine_tuning`: its key, its run file, its command, its adapter, without training."""

from __future__ import annotations

import dataclasses
import json
import sys

import pandas as pd
import pytest

from models.vlm import VLMConfig
from models.vlm.fine_tuning import (
    ENTRY_MODULE,
    FineTuningRun,
    RunFile,
    run_key,
    save_result,
    training_samples,
)
from models.vlm.presets import TINY
from models.vlm.train import TrainResult
from resources.fine_tuning import FineTuneConfig
from tests.training.test_fine_tuning_asset import _cot_rows


@pytest.fixture
def samples(tmp_path) -> pd.DataFrame:
    return training_samples(_cot_rows(tmp_path))


def test_runtime_settings_keep_the_run_key(samples) -> None:
    """Changing the scoring batch size in the launchpad resumes the run: the same folder."""
    room = 24
    first = FineTuneConfig(score_batch_size=12).train_config(tiny_model=True, max_new_tokens=room)
    second = FineTuneConfig(score_batch_size=2).train_config(tiny_model=True, max_new_tokens=room)
    assert run_key(first, samples, "base") == run_key(second, samples, "base")
    runtime = dataclasses.replace(first, num_workers=2, log_every_steps=1, gradient_checkpointing=True)
    assert run_key(runtime, samples, "base") == run_key(first, samples, "base")
    for changed in (dataclasses.replace(first, learning_rate=1e-3), dataclasses.replace(first, gamma=2.0),
                    dataclasses.replace(first, max_new_tokens=room + 1)):
        assert run_key(changed, samples, "base") != run_key(first, samples, "base")
    assert run_key(first, samples.iloc[1:], "base") != run_key(first, samples, "base")
    assert run_key(first, samples, "other base") != run_key(first, samples, "base")


def test_prepare_writes_the_run_file_that_the_process_reads(tmp_path, samples) -> None:
    model = VLMConfig(device="cpu", max_pixels=56 * 56)
    run = FineTuningRun.prepare(tmp_path / "runs", samples, TINY, model_dir="/models/base", base_model_hash="h",
                                model_config=model, scenario="pushpins", resume=False)
    assert run.directory.parent == tmp_path / "runs" and run.directory.name == f"run-{run_key(TINY, samples, 'h')}"
    spec = RunFile.read(run.run_file)
    assert spec == RunFile(model_dir="/models/base", samples=str(run.samples_file), output_dir=str(run.directory),
                           train=TINY, model=model, scenario="pushpins", resume=False)
    pd.testing.assert_frame_equal(pd.read_parquet(spec.samples), samples)
    again = FineTuningRun.prepare(tmp_path / "runs", samples, TINY, model_dir="/models/base", base_model_hash="h")
    assert again.directory == run.directory  # same settings, data and base: the same folder, so it resumes


def test_a_run_file_with_an_unknown_or_missing_key_names_the_file(tmp_path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model_dir": "m", "samples": "s", "output_dir": "o", "train": {}, "answer": "x"}))
    with pytest.raises(ValueError, match=r"run\.json: unknown run file keys \['answer'\]"):
        RunFile.read(path)
    path.write_text(json.dumps({"model_dir": "m", "samples": "s", "train": {}}))
    with pytest.raises(ValueError, match=r"run\.json: run file lacks \['output_dir'\]"):
        RunFile.read(path)


def test_one_entry_for_one_process_or_torchrun(tmp_path) -> None:
    run = FineTuningRun(tmp_path / "run-x")
    entry = ["-m", ENTRY_MODULE, "--run-file", str(tmp_path / "run-x" / "run.json")]
    assert run.command() == [sys.executable, *entry]
    assert run.command(4) == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
                              *entry]
    with pytest.raises(ValueError, match="nproc_per_node must be at least 1"):
        run.command(0)


def test_result_publish_and_cleanup(tmp_path, samples) -> None:
    runs = tmp_path / "runs"
    run = FineTuningRun.prepare(runs, samples, TINY, model_dir="m", base_model_hash="h")
    (run.adapter_dir).mkdir()
    (run.adapter_dir / "adapter_model.safetensors").write_bytes(b"new")
    difficulty = pd.DataFrame({"epoch": [1], "sample_id": ["a"], "correct": [True]})
    probabilities = pd.DataFrame({"epoch": [1], "subquery_id": ["q"], "probability": [1.0]})
    save_result(TrainResult(adapter_dir=run.adapter_dir, output_dir=run.directory, epoch_losses=[0.5],
                            difficulty=difficulty, probabilities=probabilities, global_step=3,
                            resumed_from_epoch=0, config=TINY), run.directory)
    result = run.result()
    assert (result.epoch_losses, result.global_step, result.resumed_from_epoch) == ([0.5], 3, 0)
    assert result.config == TINY
    pd.testing.assert_frame_equal(result.difficulty, difficulty)

    target = runs / "final"
    target.mkdir()
    (target / "adapter_model.safetensors").write_bytes(b"old")
    run.publish_adapter(target)
    assert (target / "adapter_model.safetensors").read_bytes() == b"new"
    assert sorted(p.name for p in runs.iterdir() if p.name.startswith(".")) == []  # no staging left

    other = runs / "run-other"
    other.mkdir()
    run.remove_other_runs()
    assert not other.exists() and run.directory.exists() and target.exists()

"""Interrupting a training run stops the Pipes worker; the next run resumes from the last complete epoch.

This is what cancelling a run in the web UI does to the step: Dagster interrupts it, and the Pipes
client forwards the termination to the training subprocess, which must not be left running on a GPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resources.parquet_io import write_parquet_atomic
from tests.training.test_fine_tuning_asset import _cot_rows

REPO = Path(__file__).resolve().parents[2]
SELECT = "vlm_adapter,difficulty_scores,resampling_probabilities"
CONFIG = {"ops": {"vlm_adapter": {"config": {
    "num_epochs": 3, "samples_per_epoch": 96, "per_device_batch_size": 4, "score_max_samples": 12,
    "score_batch_size": 12, "max_new_tokens": 16}}}}
WORKER = "models.vlm.fine_tuning"


def _workers(run_file: Path) -> list[int]:
    """Pids of live training workers of this test's run (by their command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if WORKER in cmdline and str(run_file) in cmdline:
                found.append(int(proc.name))
    return found


def _materialize(env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select", SELECT,
           "--partition", "pushpins", "--config-json", json.dumps(CONFIG)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker process")
def test_interrupted_training_stops_its_worker_and_resumes(tmp_path) -> None:
    storage = tmp_path / "storage"
    write_parquet_atomic(_cot_rows(tmp_path), storage / "cot_dataset" / "pushpins.parquet")
    (tmp_path / "home").mkdir()
    env = {**os.environ, "LOGICLS_STORAGE": str(storage), "DAGSTER_HOME": str(tmp_path / "home"),
           "OMP_NUM_THREADS": "1"}
    runs = storage / "checkpoints/vlm_adapter/pushpins"
    first = _materialize(env)
    try:
        _wait_for(lambda: list(runs.glob("run-*/epoch_001/COMPLETE")), 240, "the first epoch's checkpoint")
        run_file = next(runs.glob("run-*/run.json"))
        assert _workers(run_file), "the training worker should be running in epoch 2"
        first.send_signal(signal.SIGINT)  # what a cancel does to the run: the step is interrupted
        _wait_for(lambda: not _workers(run_file), 60, "the training worker to stop")
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not (run_file.parent / "final").exists()
    second = _materialize(env)
    assert second.wait(timeout=600) == 0
    result = json.loads((run_file.parent / "result.json").read_text())
    assert result["resumed_from_epoch"] >= 1 and len(result["epoch_losses"]) == 3
    assert (runs / "final" / "model.safetensors").is_file()  # the tiny preset trains every weight

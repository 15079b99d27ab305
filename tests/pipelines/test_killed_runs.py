"""A killed run never blocks the pipeline: runs killed with SIGKILL end failed and give back their `gpu`
slots, and a run waiting for the pool proceeds (the CLI path of the README, `dagster asset materialize`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
MODULE = "tests.pipelines.gpu_pool_defs"


class Runs:
    """`dagster asset materialize` of ``hold_gpu`` partitions, each in its own session (so that killing
    the session kills the whole run: the command and its step process)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, partition: str, hold_seconds: int) -> subprocess.Popen:
        command = [str(DAGSTER), "asset", "materialize", "-m", MODULE, "--select", "hold_gpu", "--partition", partition]
        with self.log(partition).open("w") as log:
            self.processes[partition] = subprocess.Popen(
                command, cwd=self.workdir, env={**self.env, "HOLD_GPU_SECONDS": str(hold_seconds)},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self.processes[partition]

    def log(self, partition: str) -> Path:
        return self.workdir / f"{partition}.log"

    def kill(self, partition: str) -> None:
        process = self.processes[partition]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        """Until ``condition``; fails at once, with its log, if a run ends on its own."""
        deadline = time.monotonic() + timeout
        while not condition():
            for partition, process in self.processes.items():
                assert process.poll() is None, f"run {partition} ended:\n{self.log(partition).read_text()[-3000:]}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not within {timeout:.0f} s")
            time.sleep(0.2)


def _home(tmp_path: Path) -> Path:
    """An instance like deploy/local/dagster.yaml's, with a `gpu` pool of 2 and a 1 s monitoring interval."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = {
        "telemetry": {"enabled": False},
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 1},
        "concurrency": {"pools": {"default_limit": 2}},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _run_of(instance: DagsterInstance, partition: str) -> DagsterRun | None:
    runs = instance.get_runs(RunsFilter(tags={"dagster/partition": partition}))
    return runs[0] if runs else None


def _waiting_for_a_slot(instance: DagsterInstance, partition: str) -> bool:
    run = _run_of(instance, partition)
    pending = instance.event_log_storage.get_concurrency_info("gpu").pending_steps
    return run is not None and any(p.run_id == run.run_id and p.assigned_timestamp is None for p in pending)


def test_runs_killed_hard_end_failed_and_the_waiting_run_proceeds(tmp_path: Path) -> None:
    home, holding = _home(tmp_path), tmp_path / "holding"
    holding.mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    # The working directory is tmp_path: the repository's .env would name another DAGSTER_HOME.
    env = {**os.environ, "DAGSTER_HOME": str(home), "HOLD_GPU_DIR": str(holding), "PYTHONPATH": pythonpath}
    runs = Runs(tmp_path, env)
    # The instance is made here first: two commands creating a new SQLite instance at once can collide.
    with DagsterInstance.from_config(str(home)) as instance:
        try:
            for partition in ("a", "b"):
                runs.start(partition, hold_seconds=600)
            runs.wait_for(lambda: (holding / "a").exists() and (holding / "b").exists(), 180, "runs holding the pool")
            waiting = runs.start("c", hold_seconds=0)
            runs.wait_for(lambda: _waiting_for_a_slot(instance, "c"), 120, "the third run waiting for the pool")
            runs.kill("a")
            runs.kill("b")
            assert waiting.wait(timeout=90) == 0, runs.log("c").read_text()[-3000:]
            assert (holding / "c").exists()
            for partition in ("a", "b"):
                run = _run_of(instance, partition)
                assert run is not None and run.status == DagsterRunStatus.FAILURE, partition
            info = instance.event_log_storage.get_concurrency_info("gpu")
            assert info.claimed_slots == [] and info.pending_steps == []
        finally:
            for partition in runs.processes:
                runs.kill(partition)

"""A stopped demo stops: SIGTERM or SIGINT to it ends its worker processes, and their runs end canceled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from pipelines.demo import STOP_GRACE_SECONDS

REPO = Path(__file__).resolve().parents[2]
# The demo's worker machinery on the pocket code location of tests/pipelines/gpu_pool_defs.py, three
# partitions on two workers: two runs hold the `gpu` pool (limit 2), the third waits for a worker.
DEMO = """
import sys
from pipelines.demo import DemoStopped, run_partitions
try:
    run_partitions("tests.pipelines.gpu_pool_defs", "hold_gpu_job", ["a", "b", "c"], workers=2)
except DemoStopped as stopped:
    sys.exit(128 + stopped.signum)
"""


def _in_session(session: int) -> list[psutil.Process]:
    """Live (not zombie) processes of the session ``session``."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_workers_and_cancels_their_runs(tmp_path: Path, signum: signal.Signals) -> None:
    home, holding = tmp_path / "dagster_home", tmp_path / "holding"
    home.mkdir()
    holding.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False}, "concurrency": {"pools": {"default_limit": 2}},
    }))
    env = {**os.environ, "DAGSTER_HOME": str(home), "HOLD_GPU_DIR": str(holding), "HOLD_GPU_SECONDS": "600",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "demo.log"
    with DagsterInstance.from_config(str(home)) as instance, log.open("w") as out:
        demo = subprocess.Popen([sys.executable, "-c", DEMO], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            started = _wait_until(lambda: (holding / "a").exists() and (holding / "b").exists(), 180)
            assert started and demo.poll() is None, log.read_text()[-3000:]
            demo.send_signal(signum)
            signalled = time.monotonic()
            assert demo.wait(timeout=STOP_GRACE_SECONDS + 30) == 128 + signum, log.read_text()[-3000:]
            assert _wait_until(lambda: not _in_session(demo.pid), 5), _in_session(demo.pid)
            # The workers ended their runs themselves; none had to be killed after the grace period.
            assert time.monotonic() - signalled < STOP_GRACE_SECONDS and "did not stop" not in log.read_text()
            statuses = {run.tags["dagster/partition"]: run.status for run in instance.get_runs()}
            assert statuses == {"a": DagsterRunStatus.CANCELED, "b": DagsterRunStatus.CANCELED}
            assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
        finally:
            if _in_session(demo.pid):
                os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()

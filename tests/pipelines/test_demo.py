"""`make demo` recovers from an earlier demo that was killed: its runs are closed and their pool slots freed."""

from __future__ import annotations

import subprocess
import sys

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from pipelines.demo import DEMO_PID_TAG, close_abandoned_runs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_runs_of_a_killed_demo_are_closed_and_free_their_slots() -> None:
    with DagsterInstance.ephemeral() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("gpu", 1)
        abandoned = DagsterRun(job_name="full_pipeline", run_id="a" * 36, status=DagsterRunStatus.STARTED,
                               tags={DEMO_PID_TAG: str(_dead_pid())})
        live = DagsterRun(job_name="full_pipeline", run_id="b" * 36, status=DagsterRunStatus.STARTED,
                          tags={DEMO_PID_TAG: "1"})
        foreign = DagsterRun(job_name="train", run_id="c" * 36, status=DagsterRunStatus.STARTED)
        for run in (abandoned, live, foreign):
            instance.add_run(run)
        assert storage.claim_concurrency_slot("gpu", abandoned.run_id, "grounding").is_claimed
        assert not storage.claim_concurrency_slot("gpu", live.run_id, "grounding").is_claimed
        assert close_abandoned_runs(instance) == 1
        assert instance.get_run_by_id(abandoned.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(foreign.run_id).status == DagsterRunStatus.STARTED
        assert storage.get_concurrency_info("gpu").active_slot_count == 0

"""Which runs `close_abandoned_runs` closes: those of this host of which no process is left, and no other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    build_sensor_context,
)
from dagster._core.events import EngineEventData

from pipelines.abandoned_runs import (
    HOST_TAG,
    LOCAL_EXECUTOR,
    PROCESS_TAG,
    RunProcess,
    abandoned_runs_sensor,
    close_abandoned_runs,
)

HOST = socket.gethostname()


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        instance.event_log_storage.set_concurrency_slots("gpu", 8)
        yield instance


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _run(instance: DagsterInstance, name: str, tags: dict[str, str],
         status: DagsterRunStatus = DagsterRunStatus.STARTED, step_pids: tuple[int, ...] = ()) -> str:
    """A run that holds a `gpu` slot, with step processes ``step_pids`` in its events."""
    run = DagsterRun(job_name="full_pipeline", run_id=name * 36, status=status, tags=tags)
    instance.add_run(run)
    for pid in step_pids:
        kind = DagsterEventType.STEP_WORKER_STARTED.value
        event = DagsterEvent(kind, run.job_name, event_specific_data=EngineEventData(), pid=pid)
        instance.report_dagster_event(event, run_id=run.run_id)
    assert instance.event_log_storage.claim_concurrency_slot("gpu", run.run_id, "grounding").is_claimed
    return run.run_id


def _status(instance: DagsterInstance, run_id: str) -> DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _holds_a_slot(instance: DagsterInstance, run_id: str) -> bool:
    return any(slot.run_id == run_id for slot in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots)


def test_only_runs_of_this_host_with_no_process_left_are_closed(instance: DagsterInstance) -> None:
    dead = _dead_pid()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as step:
        try:
            runs = {
                "killed": _run(instance, "a", RunProcess(HOST, dead).tags()),
                "live": _run(instance, "b", RunProcess.current().tags()),
                "other host": _run(instance, "c", RunProcess("elsewhere", dead).tags()),
                "no record": _run(instance, "d", {}),
                "step still running": _run(instance, "e", RunProcess(HOST, dead).tags(), step_pids=(step.pid,)),
                "being canceled": _run(instance, "f", RunProcess(HOST, dead).tags(), DagsterRunStatus.CANCELING),
            }
            assert sorted(close_abandoned_runs(instance)) == sorted([runs["killed"], runs["being canceled"]])
            assert _status(instance, runs["killed"]) == DagsterRunStatus.FAILURE
            assert _status(instance, runs["being canceled"]) == DagsterRunStatus.CANCELED
            for kept in ("live", "other host", "no record", "step still running"):
                assert _status(instance, runs[kept]) == DagsterRunStatus.STARTED, kept
                assert _holds_a_slot(instance, runs[kept]), kept
            assert not _holds_a_slot(instance, runs["killed"])
        finally:
            step.kill()
    # Its last process gone (and reaped), the run with the orphaned step is closed too.
    assert close_abandoned_runs(instance) == [runs["step still running"]]
    assert not _holds_a_slot(instance, runs["step still running"])


def test_a_reused_pid_or_a_restart_does_not_keep_a_run_alive(instance: DagsterInstance) -> None:
    me = RunProcess.current()
    if not me.started:
        pytest.skip("process start ticks need /proc (Linux)")
    boot, _, tick = me.started.partition("/")
    reused = _run(instance, "a", RunProcess(HOST, me.pid, f"{boot}/{int(tick) + 1}").tags())
    rebooted = _run(instance, "b", RunProcess(HOST, me.pid, f"another-boot/{tick}").tags())
    assert sorted(close_abandoned_runs(instance)) == sorted([reused, rebooted])


def test_a_run_that_ended_but_still_holds_slots_gives_them_back(instance: DagsterInstance) -> None:
    """E.g. `dagster dev`'s code server marks a run failed when its run worker dies, and leaves its slots."""
    ended = _run(instance, "a", RunProcess(HOST, _dead_pid()).tags(), DagsterRunStatus.FAILURE)
    assert close_abandoned_runs(instance) == [ended]
    assert not _holds_a_slot(instance, ended)


def test_the_record_is_read_back() -> None:
    me = RunProcess.current()
    assert RunProcess.from_tags(me.tags()) == me
    assert me.tags()[HOST_TAG] == HOST and me.tags()[PROCESS_TAG].split()[0] == str(os.getpid())
    assert RunProcess.from_tags({HOST_TAG: HOST, PROCESS_TAG: "not a pid"}) is None


def test_the_sensor_closes_them_where_the_daemon_runs(instance: DagsterInstance) -> None:
    """Under `dagster dev` a run that would wait for the pool stays queued: the daemon's sensor closes them."""
    killed = _run(instance, "a", RunProcess(HOST, _dead_pid()).tags())
    result = abandoned_runs_sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert not result.run_requests and killed in result.skip_message
    assert _status(instance, killed) == DagsterRunStatus.FAILURE


def test_every_job_of_the_project_closes_them_and_so_does_its_sensor() -> None:
    from pipelines.definitions import defs

    jobs = defs.resolve_all_job_defs()
    assert jobs and all(job.executor_def is LOCAL_EXECUTOR for job in jobs)
    sensor = defs.resolve_sensor_def(abandoned_runs_sensor.name)
    assert sensor.default_status == DefaultSensorStatus.RUNNING

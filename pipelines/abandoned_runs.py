"""Runs whose processes are gone end as failed (or canceled) and give back their concurrency slots.

A run killed hard (``kill -9``, the out-of-memory killer, a reboot) never records its end: it stays
STARTED and keeps its slots in the ``gpu`` pool, and once as many runs as the pool's limit have gone
that way, every GPU step of every later run waits forever. Dagster's run monitoring does not catch
this on one machine: it needs the daemon, which `dagster asset materialize` and `dagster job execute`
do not run, and it checks run workers only for run launchers that can (not the DefaultRunLauncher of
`dagster dev`). So the runs of this project do it themselves: `LOCAL_EXECUTOR` records on each run the
process that orchestrates it (`RunProcess`), and at the start of the run, then at the instance's
run-monitoring interval while the run lasts, closes the runs of this host of which no process is left:
neither the orchestrating one nor a step process named in the run's events (a step process outlives
a killed orchestrator and keeps its GPU until its step ends, so its slot is kept until then). Under
`dagster dev` a run that would wait for the pool stays queued instead of starting, so the sensor
`close_abandoned_runs`, which the daemon evaluates every 30 s in the code server, does the same there.

A run is judged only on the host that recorded it (same host name) and only with the record, so
runs of other machines, or of deployments with their own executor (Kubernetes, whose run launcher
run monitoring does check), are never touched.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    Executor,
    ExecutorDefinition,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    multi_or_in_process_executor,
    sensor,
)

if TYPE_CHECKING:
    from dagster import DagsterEvent, InitExecutorContext
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

HOST_TAG = "logicls/host"
PROCESS_TAG = "logicls/process"

IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
# Events whose ``pid`` is a process that worked on the run: a multiprocess step's own process, or the
# orchestrating process for in-process steps.
STEP_PROCESS_EVENTS = {DagsterEventType.STEP_WORKER_STARTED, DagsterEventType.STEP_START}

_PROC = Path("/proc")


def _boot_id() -> str:
    """This boot of the machine (Linux); empty where unknown."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """State letter and start time (clock ticks since boot) of ``pid`` from /proc; None if there is none.

    The start tick, unlike a wall-clock start time, does not move when the clock is set, so a recorded
    one tells a reused pid from the process that was recorded.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name in parentheses may hold spaces
    return fields[0], fields[19]


def _start_stamp(pid: int) -> str:
    """``<boot id>/<start tick>`` of a running ``pid`` (Linux); empty where unknown."""
    stat = _proc_stat(pid)
    boot = _boot_id()
    return f"{boot}/{stat[1]}" if stat and boot else ""


def _alive(pid: int, started: str = "") -> bool:
    """Whether ``pid`` is a live process (a zombie is not), and the one that ``started`` names when given."""
    if not _PROC.is_dir():  # no /proc (macOS): whether the pid exists is all there is to go by
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return not started or started == f"{_boot_id()}/{stat[1]}"


@dataclass(frozen=True)
class RunProcess:
    """The process that orchestrates a run, as its tags record it (``logicls/host``, ``logicls/process``)."""

    host: str
    pid: int
    started: str = ""  # "<boot id>/<start tick>" where known (Linux): a later process with the same pid differs

    @classmethod
    def current(cls) -> RunProcess:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_stamp(pid))

    def tags(self) -> dict[str, str]:
        return {HOST_TAG: self.host, PROCESS_TAG: f"{self.pid} {self.started}".strip()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> RunProcess | None:
        """The recorded process, None for a run without a (well-formed) record."""
        pid, _, started = tags.get(PROCESS_TAG, "").partition(" ")
        host = tags.get(HOST_TAG)
        return cls(host, int(pid), started) if host and pid.isdigit() else None

    @property
    def rebooted(self) -> bool:
        """The machine restarted since the run was recorded: none of its processes can be left."""
        return bool(self.started) and not self.started.startswith(f"{_boot_id()}/")


def _abandoned(instance: DagsterInstance, run: DagsterRun, process: RunProcess) -> bool:
    """No process of ``run`` is left on this host: not its orchestrator, not one of its step processes."""
    if _alive(process.pid, process.started):
        return False
    if process.rebooted:
        return True
    step_pids = {
        entry.dagster_event.pid
        for entry in instance.all_logs(run.run_id, of_type=STEP_PROCESS_EVENTS)
        if entry.dagster_event is not None and entry.dagster_event.pid is not None
    }
    return not any(_alive(pid) for pid in step_pids - {process.pid})


def _runs_of_this_host(instance: DagsterInstance, **filters: object) -> Iterator[tuple[DagsterRun, RunProcess]]:
    host = socket.gethostname()
    for run in instance.get_runs(RunsFilter(tags={HOST_TAG: host}, **filters)):
        process = RunProcess.from_tags(run.tags)
        if process is not None and process.host == host:
            yield run, process


def close_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """End this host's runs of which no process is left and free their concurrency slots; their run ids.

    A run in progress is marked failed (canceled if it was being canceled). A run that already ended
    but still holds slots (the code server of `dagster dev` marks a run failed when its run worker
    dies, and leaves the slots) has them freed once its step processes are gone too.
    """
    closed = []
    for run, process in _runs_of_this_host(instance, statuses=IN_PROGRESS):
        if _abandoned(instance, run, process):
            _close(instance, run.run_id, process)
            closed.append(run.run_id)
    holding = instance.event_log_storage.get_concurrency_run_ids()
    if holding:
        for run, process in _runs_of_this_host(instance, statuses=FINISHED, run_ids=sorted(holding)):
            if _abandoned(instance, run, process):
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                closed.append(run.run_id)
    return closed


def _close(instance: DagsterInstance, run_id: str, process: RunProcess) -> None:
    run = instance.get_run_by_id(run_id)  # read again: it may have ended since it was listed
    if run is None:
        return
    message = (
        f"No process of this run is left on {process.host} (orchestrator pid {process.pid}: killed, or the "
        "machine restarted); closed by a later run on the same host, which freed its concurrency slots."
    )
    if run.status == DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, message=message)
    elif not run.is_finished:
        instance.report_run_failed(run, message=message)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def _sweep(instance: DagsterInstance, log: logging.Logger | logging.LoggerAdapter) -> None:
    """One pass of `close_abandoned_runs`; a failure is logged, never raised into the run."""
    try:
        closed = close_abandoned_runs(instance)
    except Exception as error:
        log.warning(f"Could not check for runs whose processes are gone: {error}")
        return
    if closed:
        log.warning(f"Closed {len(closed)} runs whose processes are gone and freed their slots: {', '.join(closed)}")


@contextmanager
def _sweeping(instance: DagsterInstance, log: logging.Logger | logging.LoggerAdapter) -> Iterator[None]:
    """Sweep now, then at the run-monitoring interval until the block ends: a run already waiting for a
    slot gets it once the runs holding the pool are found dead."""
    _sweep(instance, log)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(instance.run_monitoring_poll_interval_seconds):
            _sweep(instance, log)

    thread = threading.Thread(target=loop, name="close-abandoned-runs", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


class _ClosingAbandonedRuns(Executor):
    """Dagster's executor ``inner``, recording the orchestrating process and sweeping while it runs."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        instance = plan_context.instance
        instance.add_run_tags(plan_context.run_id, RunProcess.current().tags())
        with _sweeping(instance, plan_context.log):
            yield from self._inner.execute(plan_context, execution_plan)


def closing_abandoned_runs(base: ExecutorDefinition) -> ExecutorDefinition:
    """``base`` under the same name and config, its runs recording their process and closing abandoned runs."""

    def create(init_context: InitExecutorContext) -> Executor:
        return _ClosingAbandonedRuns(base.executor_creation_fn(init_context))

    return ExecutorDefinition(
        name=base.name,
        config_schema=base.config_schema,
        requirements=base.get_requirements,
        executor_creation_fn=create,
        description=base.description,
    )


# Dagster's default executor (multiprocess, or in-process when the launchpad says so), closing abandoned runs.
LOCAL_EXECUTOR = closing_abandoned_runs(multi_or_in_process_executor)


@sensor(
    name="close_abandoned_runs",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks failed the runs of this machine of which no process is left (killed hard) and frees "
    "their concurrency slots. Needed under `dagster dev`, where a run that would wait for the `gpu` pool stays "
    "queued (so no run of the project is there to do it) and the code server leaves a dead run's slots claimed.",
)
def abandoned_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    """Runs in the code server, on the machine of `dagster dev`'s run workers; never requests a run."""
    closed = close_abandoned_runs(context.instance)
    return SkipReason(f"closed {len(closed)} runs: {', '.join(closed)}" if closed else "no abandoned run")

"""`make demo`: run the main job on every scenario of the default data and print what it made.

Runs go into the persistent Dagster instance (``DAGSTER_HOME``), so they appear in the web UI
(`make dev`) afterwards with their metadata, checks and lineage. Scenarios run side by side in
separate processes (one per CPU core, at most two; one on a GPU machine, where two trainings
would share the GPU), then the cross-scenario metrics run once. SIGTERM or Ctrl-C stops the demo
with its workers; their runs end canceled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, Definitions, RunsFilter

from pipelines.abandoned_runs import RunProcess, close_abandoned_runs

logger = logging.getLogger("logicls.demo")


def _summary_lines(result, scenario: str) -> list[str]:
    """One line per materialized asset: rows, Table I counts, and the time of the step that made it."""
    seconds = {e.step_key: e.event_specific_data.duration_ms / 1000
               for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    lines = []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = mat.metadata
        rows = meta.get("dagster/row_count")
        extra = f" rows={rows.value}" if rows is not None else ""
        if "table_i" in meta:
            extra += f" table_i={meta['table_i'].value}"
        step = f"{seconds[event.step_key]:7.1f} s" if event.step_key in seconds else " " * 9
        lines.append(f"  {mat.asset_key.to_user_string():<26}{step}{extra}")
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if failed:
        lines.append(f"  checks not passed: {', '.join(sorted(failed))}")
    return [f"[{scenario}]", *lines]


DEFINITIONS = "pipelines.definitions"
# Groups the runs of one `make demo` (filter on it in the UI); the demo cancels its own runs when stopped.
DEMO_TAG = "logicls/demo"
# How long the workers get to end their runs after SIGTERM or SIGINT before they are killed.
STOP_GRACE_SECONDS = 15.0

Outcome = tuple[bool, list[str]]  # a run's success and its summary lines

_stop_requested: Event | None = None  # in a worker: set once the demo is stopping


def _definitions(module: str) -> Definitions:
    """The ``defs`` of ``module``, imported where needed (the workers import it themselves)."""
    return importlib.import_module(module).defs


def _init_worker(stop: Event) -> None:
    """A worker leaves SIGINT to the demo process, which interrupts the runs it has to (Ctrl-C reaches the
    whole process group, and an idle worker would die with a traceback); Dagster catches it during a run."""
    global _stop_requested
    _stop_requested = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_partition(definitions: str, job_name: str, partition: str, demo: str) -> Outcome:
    """One partition's run of ``job_name`` (in a worker process); its summary lines."""
    job = _definitions(definitions).resolve_job_def(job_name)  # the first import takes a while: check after it
    if _stop_requested is not None and _stop_requested.is_set():
        return False, [f"[{partition}]", "  not run: the demo was stopped"]
    t0 = time.perf_counter()
    result = job.execute_in_process(
        partition_key=partition, instance=DagsterInstance.get(), raise_on_error=False,
        tags={**RunProcess.current().tags(), DEMO_TAG: demo},
    )
    status = "ok" if result.success else "FAILED (see the run in the web UI: make dev)"
    return result.success, [*_summary_lines(result, partition), f"  {status} in {time.perf_counter() - t0:.1f} s"]


class DemoStopped(Exception):
    """SIGTERM or SIGINT reached the demo; its runs were stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise DemoStopped(signum)


def run_partitions(definitions: str, job_name: str, partitions: list[str], workers: int) -> list[Outcome]:
    """Run ``job_name`` of ``definitions`` (a module) once per partition, ``workers`` at a time in processes.

    SIGTERM or SIGINT stops everything and raises `DemoStopped`: no further run starts, running ones are
    interrupted and end canceled, and a worker still there after ``STOP_GRACE_SECONDS`` is killed (its
    run is then closed as failed, its slots freed).
    """
    instance = DagsterInstance.get()  # opened now: stopping has no time to lose
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    demo = uuid.uuid4().hex
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(stop,))
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        outcomes = list(pool.map(run_partition, repeat(definitions), repeat(job_name), partitions, repeat(demo)))
    except DemoStopped:
        for signum in previous:  # a second signal must not interrupt the stopping
            signal.signal(signum, signal.SIG_IGN)
        _stop_workers(pool, stop, instance, demo)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    pool.shutdown()
    return outcomes


def _stop_workers(pool: ProcessPoolExecutor, stop: Event, instance: DagsterInstance, demo: str) -> None:
    """No new run; the running ones canceled and interrupted (SIGINT, which Dagster turns into a clean end);
    workers that do not end in time killed, and their runs closed.

    A worker's end is read from its sentinel, never by joining it: the pool's own thread reaps the workers,
    and two threads waiting for one child race.
    """
    stop.set()
    workers = {worker.sentinel: worker for worker in multiprocessing.active_children()}
    pool.shutdown(wait=False, cancel_futures=True)
    running = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    for run in instance.get_runs(RunsFilter(statuses=running, tags={DEMO_TAG: demo})):
        instance.report_run_canceling(run, message="The demo was stopped.")
    for worker in workers.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGINT)
    left, deadline = set(workers), time.monotonic() + STOP_GRACE_SECONDS
    while left and time.monotonic() < deadline:
        left -= set(wait(list(left), timeout=deadline - time.monotonic()))
    for sentinel in left:
        logger.warning(f"worker {workers[sentinel].pid} did not stop within {STOP_GRACE_SECONDS:.0f} s: killed")
        with contextlib.suppress(ProcessLookupError):
            os.kill(workers[sentinel].pid, signal.SIGKILL)
    pool.shutdown(wait=True)
    close_abandoned_runs(instance)


def default_parallelism() -> int:
    """Two CPU cores run two scenarios at once; a GPU runs one training at a time."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", default="full_pipeline")
    parser.add_argument("--scenarios", nargs="*", help="partitions to run (default: all)")
    parser.add_argument("--parallel", type=int, default=None, help="scenarios run at once (default: auto)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    defs = _definitions(DEFINITIONS)
    job = defs.resolve_job_def(args.job)
    scenarios = args.scenarios or job.partitions_def.get_partition_keys()
    workers = args.parallel or default_parallelism()
    closed = close_abandoned_runs(DagsterInstance.get())
    if closed:
        logger.info(f"closed {len(closed)} runs whose processes were gone (an interrupted demo or run)")
    started = time.perf_counter()
    try:
        outcomes = run_partitions(DEFINITIONS, args.job, scenarios, workers)
    except DemoStopped as stopped:
        print(f"demo {stopped}: its runs were canceled", file=sys.stderr)
        return 128 + stopped.signum
    report = [line for _, lines in outcomes for line in lines]
    if not all(ok for ok, _ in outcomes):
        print("\n".join(report))
        return 1
    if args.job == "full_pipeline" and set(scenarios) == set(job.partitions_def.get_partition_keys()):
        ok, lines = _metrics(defs, DagsterInstance.get())
        report += lines
        if not ok:
            print("\n".join(report))
            return 1
    print("\n".join(["", "LogiCls demo summary", *report, f"total {time.perf_counter() - started:.1f} s"]))
    return 0


def _metrics(defs: Definitions, instance: DagsterInstance) -> tuple[bool, list[str]]:
    """Run the unpartitioned metrics once every scenario is done; the Table II-shaped result as text."""
    t0 = time.perf_counter()
    result = defs.resolve_job_def("lac_metrics_job").execute_in_process(instance=instance, raise_on_error=False)
    lines = _summary_lines(result, "all scenarios")
    if result.success:
        table = next(m for m in result.asset_materializations_for_node("lac_metrics")
                     if m.asset_key == AssetKey("lac_metrics")).metadata["table_ii"].value
        lines += ["", "Table II (binary / macro F1, %):", table, ""]
    status = "ok" if result.success else "FAILED"
    return result.success, [*lines, f"  {status} in {time.perf_counter() - t0:.1f} s"]


if __name__ == "__main__":
    sys.exit(main())

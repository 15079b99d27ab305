"""`make demo`: run the main job on every scenario of the default data and print what it made.

Runs go into the persistent Dagster instance (``DAGSTER_HOME``), so they appear in the web UI
(`make dev`) afterwards with their metadata, checks and lineage. Scenarios run side by side in
separate processes (one per CPU core, at most two; one on a GPU machine, where two trainings
would share the GPU), then the cross-scenario metrics run once.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from dagster import AssetKey, DagsterInstance

from pipelines.abandoned_runs import RunProcess, close_abandoned_runs
from pipelines.definitions import defs

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


def run_partition(job_name: str, scenario: str) -> tuple[bool, list[str]]:
    """One scenario's run of ``job_name`` (in a worker process); its summary lines."""
    t0 = time.perf_counter()
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=scenario, instance=DagsterInstance.get(), raise_on_error=False,
        tags=RunProcess.current().tags(),
    )
    status = "ok" if result.success else "FAILED (see the run in the web UI: make dev)"
    return result.success, [*_summary_lines(result, scenario), f"  {status} in {time.perf_counter() - t0:.1f} s"]


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
    job = defs.resolve_job_def(args.job)
    scenarios = args.scenarios or job.partitions_def.get_partition_keys()
    workers = args.parallel or default_parallelism()
    closed = close_abandoned_runs(DagsterInstance.get())
    if closed:
        logger.info(f"closed {len(closed)} runs whose processes were gone (an interrupted demo or run)")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(run_partition, [args.job] * len(scenarios), scenarios))
    report = [line for _, lines in outcomes for line in lines]
    if not all(ok for ok, _ in outcomes):
        print("\n".join(report))
        return 1
    if args.job == "full_pipeline" and set(scenarios) == set(job.partitions_def.get_partition_keys()):
        ok, lines = _metrics(DagsterInstance.get())
        report += lines
        if not ok:
            print("\n".join(report))
            return 1
    print("\n".join(["", "LogiCls demo summary", *report, f"total {time.perf_counter() - started:.1f} s"]))
    return 0


def _metrics(instance: DagsterInstance) -> tuple[bool, list[str]]:
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

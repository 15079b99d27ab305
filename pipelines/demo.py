"""`make demo`: run the main job on every scenario of the default data and print what it made.

Runs go into the persistent Dagster instance (``DAGSTER_HOME``), so they appear in the web UI
(`make dev`) afterwards with their metadata, checks and lineage.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from dagster import AssetKey, DagsterInstance

from pipelines.definitions import defs

logger = logging.getLogger("logicls.demo")


def _summary_lines(result, scenario: str) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = mat.metadata
        rows = meta.get("dagster/row_count")
        extra = f" rows={rows.value}" if rows is not None else ""
        if "table_i" in meta:
            extra += f" table_i={meta['table_i'].value}"
        lines.append(f"  {mat.asset_key.to_user_string():<24}{extra}")
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if failed:
        lines.append(f"  checks not passed: {', '.join(sorted(failed))}")
    return [f"[{scenario}]", *lines]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", default="full_pipeline")
    parser.add_argument("--scenarios", nargs="*", help="partitions to run (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    job = defs.resolve_job_def(args.job)
    scenarios = args.scenarios or job.partitions_def.get_partition_keys()
    instance = DagsterInstance.get()
    report: list[str] = []
    started = time.perf_counter()
    for scenario in scenarios:
        t0 = time.perf_counter()
        result = job.execute_in_process(partition_key=scenario, instance=instance, raise_on_error=False)
        status = "ok" if result.success else "FAILED"
        report += [*_summary_lines(result, scenario), f"  {status} in {time.perf_counter() - t0:.1f} s"]
        if not result.success:
            print("\n".join(report))
            return 1
    if args.job == "full_pipeline" and set(scenarios) == set(job.partitions_def.get_partition_keys()):
        ok, lines = _metrics(instance)
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

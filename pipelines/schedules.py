"""Scheduled retraining: on its cron tick, run a job for each scenario whose inputs changed.

"Inputs changed" is read from Dagster's own lineage records. Every materialization carries its
code version and, per upstream asset, a pointer to the upstream event it consumed. For each asset
of the job and each partition the schedule compares

- the asset's code version now with the one its latest materialization recorded, and
- each upstream asset's latest data version (for the same partition where both are partitioned
  alike) with the version of the event that was consumed.

A partition never materialized is not a change: first runs are started on purpose (`make demo`,
the UI), not by a weekly tick. The schedule is off by default (switch it on in the UI or with
``dagster schedule start``); its cron comes from ``LOGICLS_RETRAIN_CRON``.

Point it at ONE job that selects training and evaluation together, so that evaluation runs on the
new adapter in the same run instead of racing it from a second schedule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultScheduleStatus,
    EventLogRecord,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from models import storage

if TYPE_CHECKING:  # the asset graph a repository exposes; only its public-looking fields are used
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph, AssetNode

DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # Mondays 03:00
CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_EVENT_POINTER_PREFIX = "dagster/input_event_pointer/"
MAX_TAG_LENGTH = 200


def retrain_cron() -> str:
    """``LOGICLS_RETRAIN_CRON``, or weekly on Monday at 03:00."""
    return storage.retrain_cron() or DEFAULT_RETRAIN_CRON


@dataclass(frozen=True)
class InputChange:
    """Why one asset partition needs a new run."""

    asset: AssetKey
    reason: str

    def __str__(self) -> str:
        return f"{self.asset.to_user_string()}: {self.reason}"


def _latest(
    instance: DagsterInstance, node: AssetNode, partition: str | None = None, storage_id: int | None = None
) -> EventLogRecord | None:
    """The latest materialization of ``node``, optionally restricted to one partition or one stored event."""
    records_filter = AssetRecordsFilter(
        asset_key=node.key,
        asset_partitions=[partition] if partition is not None else None,
        storage_ids=[storage_id] if storage_id is not None else None,
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    return records[0] if records else None


def _tags(record: EventLogRecord) -> dict[str, str]:
    event = record.asset_materialization
    return dict(event.tags or {}) if event else {}


def _upstream_partition(node: AssetNode, parent: AssetNode, partition: str) -> str | None:
    """The parent partition a scenario partition reads: the same key when both are partitioned alike;
    otherwise no filter (the parent's latest event of any partition)."""
    if parent.partitions_def is not None and parent.partitions_def == node.partitions_def:
        return partition
    return None


def _upstream_changes(
    instance: DagsterInstance, graph: AssetGraph, node: AssetNode, partition: str, tags: dict[str, str]
) -> Iterator[InputChange]:
    for parent_key in sorted(node.parent_keys - {node.key}, key=AssetKey.to_user_string):
        parent = graph.get(parent_key)
        latest = _latest(instance, parent, _upstream_partition(node, parent, partition))
        if latest is None:
            continue
        pointer = tags.get(INPUT_EVENT_POINTER_PREFIX + parent_key.to_user_string())
        if pointer is None:
            yield InputChange(node.key, f"{parent_key.to_user_string()} is new since the last run")
            continue
        if latest.storage_id == int(pointer):
            continue
        consumed = _latest(instance, parent, storage_id=int(pointer))
        same_partition = consumed is not None and consumed.partition_key == latest.partition_key
        if same_partition and _tags(consumed).get(DATA_VERSION_TAG) == _tags(latest).get(DATA_VERSION_TAG):
            continue  # re-materialized with identical content
        yield InputChange(node.key, f"{parent_key.to_user_string()} has a new data version")


def input_changes(
    instance: DagsterInstance, graph: AssetGraph, keys: set[AssetKey], partition: str
) -> list[InputChange]:
    """Every reason why the assets ``keys`` need a new run for ``partition`` (empty: nothing changed)."""
    changes: list[InputChange] = []
    for key in sorted(keys, key=AssetKey.to_user_string):
        node = graph.get(key)
        if node.partitions_def is None or partition not in node.partitions_def.get_partition_keys():
            continue  # unpartitioned aggregates follow their partitioned inputs
        record = _latest(instance, node, partition)
        if record is None:
            continue  # never materialized: not a change, see the module docstring
        tags = _tags(record)
        recorded = tags.get(CODE_VERSION_TAG)
        if node.code_version is not None and recorded != node.code_version:
            changes.append(InputChange(key, f"code version {recorded} -> {node.code_version}"))
        changes.extend(_upstream_changes(instance, graph, node, partition, tags))
    return changes


def build_retrain_schedule(
    job_name: str, cron_schedule: str | None = None, name: str | None = None
) -> ScheduleDefinition:
    """A schedule, off by default, that runs ``job_name`` for every scenario partition whose inputs changed."""

    @schedule(
        name=name or f"retrain_{job_name}",
        job_name=job_name,
        cron_schedule=cron_schedule or retrain_cron(),
        default_status=DefaultScheduleStatus.STOPPED,
        description=(
            f"Runs {job_name} for each scenario whose inputs (upstream data versions or code versions) "
            "changed since its last materialization. Cron from LOGICLS_RETRAIN_CRON."
        ),
    )
    def _schedule(context: ScheduleEvaluationContext) -> list[RunRequest] | SkipReason:
        repository = context.repository_def
        job = repository.get_job(job_name)
        if job.partitions_def is None:
            raise ValueError(f"{job_name} is not partitioned by scenario; the retraining schedule needs a job that is.")
        keys = set(job.asset_layer.selected_asset_keys)
        requests = []
        for partition in job.partitions_def.get_partition_keys():
            changes = input_changes(context.instance, repository.asset_graph, keys, partition)
            if changes:
                summary = "; ".join(str(c) for c in changes)
                context.log.info(f"{partition}: {summary}")
                requests.append(
                    RunRequest(
                        run_key=partition,
                        partition_key=partition,
                        tags={"logicls/trigger": "retrain", "logicls/changes": summary[:MAX_TAG_LENGTH]},
                    )
                )
        if requests:
            return requests
        return SkipReason(f"No inputs of {job_name} changed in any partition")

    return _schedule

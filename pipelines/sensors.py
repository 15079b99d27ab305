"""New-data sensor: labelled images added to a scenario's LOCO folders trigger a re-split and
everything downstream of it, one run per change.

The cursor keeps, per scenario, only the number of watched files and a hash of their sorted names
and sizes, so it stays a few hundred bytes however many thousand images a data root holds; the
folders themselves are rescanned each tick (a directory listing, no file is opened).

Choices worth knowing:

- The first time a scenario is seen (the sensor's first tick, or a scenario folder that appears
  later, e.g. when the generator writes the default data during a run) its files are recorded as
  the baseline and nothing is launched: whatever was there before is what the user already
  materialized, or will materialize on purpose, and re-running training because a sensor was
  switched on would be a surprise.
- A scenario whose watched files or folders changed within ``settle_seconds`` is left for a later
  tick, so a copy in progress is taken as one drop of data, not several.
- The run key is the scenario plus the hash of its new file set: one state of the data gives one
  run, and ticks that see the same state again request nothing new.
- Any change of the set counts (added, removed or resized files), because each changes the split.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from models.loco import GT_LOGICAL, IMAGE_SUFFIX, TEST_GOOD, TEST_LOGICAL, TRAIN_GOOD
from resources.loco import LocoDataset
from resources.partitions import scenario_partitions

# The folders whose images enter the LOCO FC split; validation and structural images do not.
WATCHED_IMAGE_DIRS = (TRAIN_GOOD, TEST_GOOD, TEST_LOGICAL)
CURSOR_VERSION = 1


@dataclass(frozen=True)
class FileSetState:
    """What one scenario's watched folders hold right now."""

    count: int
    digest: str
    newest_change: float  # latest mtime of a watched file or folder (seconds since the epoch)

    def fingerprint(self) -> dict[str, object]:
        return {"count": self.count, "digest": self.digest}


def _png_entries(folder: Path) -> Iterable[os.DirEntry[str]]:
    """Visible PNG files of ``folder``; hidden names are skipped (rsync and friends write temporaries so)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(IMAGE_SUFFIX) and not entry.name.startswith(".") and entry.is_file():
                yield entry


def _watched_folders(category_dir: Path) -> Iterable[Path]:
    """The image folders and every mask folder (``ground_truth/logical_anomalies/NNN``)."""
    for name in WATCHED_IMAGE_DIRS:
        folder = category_dir / name
        if folder.is_dir():
            yield folder
    masks = category_dir / GT_LOGICAL
    if masks.is_dir():
        yield masks
        with os.scandir(masks) as entries:
            yield from sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))


def scan_scenario(category_dir: Path) -> FileSetState | None:
    """The watched file set of one LOCO scenario folder, or ``None`` where the folder does not exist."""
    if not category_dir.is_dir():
        return None
    lines: list[str] = []
    newest = 0.0
    for folder in _watched_folders(category_dir):
        newest = max(newest, folder.stat().st_mtime)
        for entry in _png_entries(folder):
            stat = entry.stat()
            newest = max(newest, stat.st_mtime)
            lines.append(f"{Path(entry.path).relative_to(category_dir).as_posix()}\t{stat.st_size}")
    lines.sort()
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return FileSetState(count=len(lines), digest=digest, newest_change=newest)


def _read_cursor(cursor: str | None) -> dict[str, dict[str, object]]:
    if not cursor:
        return {}
    data = json.loads(cursor)
    return data["scenarios"] if data.get("version") == CURSOR_VERSION else {}


def _write_cursor(known: dict[str, dict[str, object]]) -> str:
    return json.dumps({"version": CURSOR_VERSION, "scenarios": known}, sort_keys=True)


def run_key_for(scenario: str, state: FileSetState) -> str:
    """One run per data state of a scenario."""
    return f"{scenario}:{state.digest[:16]}"


def build_new_data_sensor(
    job_name: str,
    scenarios: Sequence[str] | None = None,
    settle_seconds: float = 30.0,
    minimum_interval_seconds: int = 60,
    name: str = "new_labelled_images",
) -> SensorDefinition:
    """A sensor that asks ``job_name`` (partitioned by scenario) to run for each scenario whose files changed."""
    watched = list(scenarios) if scenarios is not None else scenario_partitions.get_partition_keys()

    @sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description=(
            "Watches train/good, test/good, test/logical_anomalies and the logical mask folders of every "
            f"scenario under the data root; a change requests {job_name} for that scenario (re-split and "
            "everything downstream). The first sight of a scenario only records a baseline."
        ),
    )
    def _sensor(context: SensorEvaluationContext, loco: LocoDataset) -> SensorResult:
        known = _read_cursor(context.cursor)
        root = loco.loco_root
        now = time.time()
        requests: list[RunRequest] = []
        for scenario in watched:
            state = scan_scenario(root / scenario)
            previous = known.get(scenario)
            if state is None or previous == state.fingerprint():
                continue
            if now - state.newest_change < settle_seconds:
                context.log.info(f"{scenario}: files still changing, looking again next tick")
                continue
            known[scenario] = state.fingerprint()
            if previous is None:
                context.log.info(f"{scenario}: baseline of {state.count} files recorded, nothing launched")
                continue
            requests.append(
                RunRequest(
                    run_key=run_key_for(scenario, state),
                    partition_key=scenario,
                    tags={
                        "logicls/trigger": "new_data",
                        "logicls/files_before": str(previous["count"]),
                        "logicls/files_after": str(state.count),
                    },
                )
            )
        cursor = _write_cursor(known)
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        return SensorResult(skip_reason=SkipReason(f"No new labelled images under {root}"), cursor=cursor)

    return _sensor

"""The new-data sensor: one drop of labelled images gives exactly one run request."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import Definitions, SensorDefinition, build_sensor_context, instance_for_test
from PIL import Image

from assets.split import loco_fc_split
from pipelines.jobs import JOBS
from pipelines.sensors import build_new_data_sensor, run_key_for, scan_scenario
from resources.loco import LocoDataset
from resources.storage import StorageResource
from tests.loco_tree import TreeSpec, build_tree

JOB = "refresh_from_split"


@pytest.fixture()
def instance():
    with instance_for_test() as inst:
        yield inst


def _generated_tree(storage: Path, scenario: str = "pushpins") -> Path:
    """A tree where the generator puts it (``<storage>/generated/loco``), so the resource watches it."""
    root = storage / "generated" / "loco"
    build_tree(root, TreeSpec(scenario, ["a", "b"], single={"a": 3, "b": 3}))
    return root / scenario


def _add_labelled_images(category: Path, first: int, n: int) -> None:
    """New logical-anomaly images, each with its mask folder, as a user would drop them in."""
    for i in range(first, first + n):
        image = Image.fromarray(np.full((8, 12, 3), 90, dtype=np.uint8))
        image.save(category / "test/logical_anomalies" / f"{i:03d}.png")
        mask_dir = category / "ground_truth/logical_anomalies" / f"{i:03d}"
        mask_dir.mkdir(parents=True)
        Image.fromarray(np.full((8, 12), 255, dtype=np.uint8)).save(mask_dir / "000.png")


def _backdate(folder: Path, seconds: float = 3600) -> None:
    stamp = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (stamp, stamp))


def _tick(sensor: SensorDefinition, instance, storage: Path, cursor: str | None):
    resources = {"loco": LocoDataset(storage=StorageResource(root=str(storage)))}
    # The definitions let the context resolve the job's partitions for the partitioned run requests.
    definitions = Definitions(assets=[loco_fc_split], jobs=JOBS, sensors=[sensor], resources=resources)
    # The storage folder is a nested resource: resources are built inside the context manager.
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                              definitions=definitions) as context:
        return sensor.evaluate_tick(context)


def test_one_drop_of_data_gives_one_run(tmp_path, instance) -> None:
    sensor = build_new_data_sensor(JOB, settle_seconds=0)
    category = _generated_tree(tmp_path)

    first = _tick(sensor, instance, tmp_path, None)
    assert first.run_requests == []  # the first tick records the baseline only
    assert json.loads(first.cursor)["scenarios"]["pushpins"]["count"] == 3 + 2 + 6 + 6

    _add_labelled_images(category, first=6, n=2)
    second = _tick(sensor, instance, tmp_path, first.cursor)
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    assert request.partition_key == "pushpins"
    assert request.run_key == run_key_for("pushpins", scan_scenario(category))
    assert request.tags["logicls/files_before"] == "17"
    assert request.tags["logicls/files_after"] == "21"
    assert sensor.job_name == JOB

    third = _tick(sensor, instance, tmp_path, second.cursor)
    assert third.run_requests == []
    assert "No new labelled images" in third.skip_message


def test_a_scenario_seen_for_the_first_time_is_a_baseline(tmp_path, instance) -> None:
    sensor = build_new_data_sensor(JOB, settle_seconds=0)
    _generated_tree(tmp_path, "pushpins")
    cursor = _tick(sensor, instance, tmp_path, None).cursor
    _generated_tree(tmp_path, "juice_bottle")  # e.g. the generator wrote it during a run
    result = _tick(sensor, instance, tmp_path, cursor)
    assert result.run_requests == []
    assert set(json.loads(result.cursor)["scenarios"]) == {"pushpins", "juice_bottle"}


def test_files_still_arriving_wait_for_a_later_tick(tmp_path, instance) -> None:
    sensor = build_new_data_sensor(JOB, settle_seconds=60)
    category = _generated_tree(tmp_path)
    _backdate(category)
    cursor = _tick(sensor, instance, tmp_path, None).cursor
    _add_labelled_images(category, first=6, n=1)
    waiting = _tick(sensor, instance, tmp_path, cursor)
    assert waiting.run_requests == []
    assert waiting.cursor == cursor
    _backdate(category)  # the copy finished a while ago
    assert len(_tick(sensor, instance, tmp_path, cursor).run_requests) == 1


def test_validation_and_structural_images_are_ignored(tmp_path, instance) -> None:
    sensor = build_new_data_sensor(JOB, settle_seconds=0)
    category = _generated_tree(tmp_path)
    cursor = _tick(sensor, instance, tmp_path, None).cursor
    (category / "validation/good/900.png").write_bytes(b"")
    (category / "test/structural_anomalies/900.png").write_bytes(b"")
    assert _tick(sensor, instance, tmp_path, cursor).run_requests == []


def test_cursor_stays_small_for_thousands_of_files(tmp_path, instance) -> None:
    sensor = build_new_data_sensor(JOB, settle_seconds=0)
    category = _generated_tree(tmp_path)
    for i in range(3000):
        (category / "train/good" / f"{i + 100:04d}.png").write_bytes(b"")
    started = time.perf_counter()
    result = _tick(sensor, instance, tmp_path, None)
    assert time.perf_counter() - started < 5
    assert len(result.cursor) < 200


def test_definitions_wire_the_sensor_to_the_resplit_job() -> None:
    from pipelines.definitions import defs

    sensor = defs.resolve_sensor_def("new_labelled_images")
    assert sensor.job_name == JOB
    job = defs.resolve_job_def(JOB)
    assert "loco_fc_split" in {k.to_user_string() for k in job.asset_layer.selected_asset_keys}

"""`loco_fc_split` materialized in-process, with its checks and metadata."""

from __future__ import annotations

import json

import pandas as pd
from dagster import AssetCheckSeverity, AssetKey, materialize

from assets.split import loco_fc_split, scenario_specs_check, skipped_specs_markdown
from models.spec import load_catalog
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource
from tests.loco_tree import TreeSpec, build_tree, truncate


def _run(data_root, storage, partition="pushpins", config=None):
    return materialize(
        [loco_fc_split],
        partition_key=partition,
        resources={
            "io_manager": ParquetIOManager(storage=(store := StorageResource(root=str(storage)))),
            "loco": LocoDataset(data_root=str(data_root), storage=store),
        },
        run_config={"ops": {"loco_fc_split": {"config": config or {}}}},
    )


def _checks(result) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_materialize_writes_parquet_and_checks_pass(tmp_path) -> None:
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a", "b"], train_good=4, test_good=3,
                                                  single={"a": 10, "b": 10}, multi=[(("a", "b"), 2)]))
    result = _run(root, tmp_path / "storage")
    assert result.success
    path = tmp_path / "storage/loco_fc_split/pushpins.parquet"
    frame = pd.read_parquet(path)
    assert len(frame) == 4 + 3 + 20 + 2
    assert not list(path.parent.glob(".*tmp"))
    checks = _checks(result)
    assert set(checks) == {"no_split_leakage", "classes_in_both_splits", "split_counts", "excluded_images",
                           "scenario_specs"}
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    meta = result.asset_materializations_for_node("loco_fc_split")[0].metadata
    assert meta["dagster/row_count"].value == 29
    assert meta["table_i"].value == {"train_normal": 4, "train_single": 16, "test_normal": 3,
                                     "test_single": 4, "test_multi": 2}
    assert "| a | 8 | 4 |" in meta["counts_per_split_and_class"].value
    assert {c.name for c in meta["dagster/column_schema"].schema.columns} >= {"image_id", "labels", "split"}


def test_unknown_pixel_value_is_listed_by_check_and_run_goes_on(tmp_path) -> None:
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a", "b"], single={"a": 10, "b": 3}))
    config_path = root / "pushpins/defects_config.json"
    config_path.write_text(json.dumps([e for e in json.loads(config_path.read_text()) if e["defect_name"] != "b"]))
    result = _run(root, tmp_path / "storage")
    assert result.success
    checks = _checks(result)
    assert not checks["excluded_images"].passed
    assert checks["excluded_images"].metadata["excluded"].value == 3
    assert checks["classes_in_both_splits"].passed  # 'a' keeps 8/2 and normal 3/2
    frame = pd.read_parquet(tmp_path / "storage/loco_fc_split/pushpins.parquet")
    assert "b" not in set(frame["labels"].explode())


def test_an_image_that_does_not_decode_is_listed_by_check_and_left_out(tmp_path) -> None:
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a"], single={"a": 10}))
    broken = truncate(root / "pushpins/test/good/001.png")
    result = _run(root, tmp_path / "storage")
    assert result.success
    checks = _checks(result)
    assert checks["split_counts"].passed and not checks["excluded_images"].passed
    [entry] = checks["excluded_images"].metadata["images"].value
    assert entry["image"] == entry["unreadable_file"] == str(broken)
    assert "does not decode" in entry["reason"] and "restore it from the archive" in entry["reason"]
    frame = pd.read_parquet(tmp_path / "storage/loco_fc_split/pushpins.parquet")
    assert str(broken) not in set(frame["image_path"]) and len(frame) == 3 + 1 + 10


def test_train_ratio_from_run_config(tmp_path) -> None:
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a"], single={"a": 10}))
    assert _run(root, tmp_path / "storage", config={"train_ratio": 0.5, "seed": 3}).success
    frame = pd.read_parquet(tmp_path / "storage/loco_fc_split/pushpins.parquet")
    single = frame[frame["n_defect_types"] == 1]
    assert single["split"].value_counts().to_dict() == {"train": 5, "test": 5}


def test_scenario_ratio_from_run_config(tmp_path) -> None:
    """The per-scenario ratio (pushpins' Table I row) is a launchpad setting, checked by split_counts."""
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a"], single={"a": 10}))
    result = _run(root, tmp_path / "storage", config={"scenario_train_ratios": {"pushpins": 0.4}})
    assert result.success and _checks(result)["split_counts"].passed
    frame = pd.read_parquet(tmp_path / "storage/loco_fc_split/pushpins.parquet")
    single = frame[frame["n_defect_types"] == 1]
    assert single["split"].value_counts().to_dict() == {"train": 4, "test": 6}


def test_definitions_load() -> None:
    from pipelines.definitions import defs

    assert defs.resolve_assets_def(AssetKey("loco_fc_split")).partitions_def.get_partition_keys() == [
        "breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors"]


def test_skipped_user_specs_fail_the_scenario_specs_check(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("scenario: bad_tray\nobjects: 3\n")
    skipped = load_catalog(tmp_path).skipped
    check = scenario_specs_check(skipped)
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    [entry] = check.metadata["specs"].value
    assert entry["file"] == str(tmp_path / "bad.yaml") and entry["scenario"] == "bad_tray"
    assert any(p.startswith("objects: ") for p in entry["problems"]), entry
    assert "reload the code location" in check.metadata["fix"].value
    assert f"- `{tmp_path / 'bad.yaml'}` (scenario `bad_tray`)" in skipped_specs_markdown(skipped)
    assert scenario_specs_check([]).passed and skipped_specs_markdown([]) == "none"

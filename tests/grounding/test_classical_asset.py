"""`generated_loco` → `loco_fc_split` → `grounding` → `grounding_quality` with the default (classical) grounder."""

from __future__ import annotations

import json

import pandas as pd
from dagster import materialize

from assets.grounding import grounding, grounding_quality
from assets.split import generated_loco, loco_fc_split
from models.grounding import ALL_LABELS, calibration_of
from resources.grounding import Grounder
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource


def test_classical_grounding_assets_end_to_end(tmp_path) -> None:
    storage = tmp_path / "storage"
    store = StorageResource(root=str(storage))
    resources = {
        "storage": store,
        "io_manager": ParquetIOManager(storage=store),
        "loco": LocoDataset(data_root=None, storage=store),
        "grounder": Grounder(cache_dir=str(tmp_path / "cache")),
    }
    result = materialize([generated_loco, loco_fc_split, grounding, grounding_quality],
                         partition_key="splicing_connectors", resources=resources,
                         run_config={"ops": {"generated_loco": {"config": {"per_logical_class": 3}}}})
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["grounding_not_empty"].passed
    assert checks["grounding_recall"].passed, checks["grounding_recall"].metadata
    assert checks["grounding_recall"].metadata["normal_images_with_right_counts"].value >= 0.9

    table = pd.read_parquet(storage / "grounding/splicing_connectors.parquet")
    split = pd.read_parquet(storage / "loco_fc_split/splicing_connectors.parquet")
    assert set(table["backend"]) == {"classical"}
    assert set(table["image_id"]) == set(split["image_id"])
    quality = pd.read_parquet(storage / "grounding_quality/splicing_connectors.parquet")
    assert set(quality["label"]) == {"connector", "cable", ALL_LABELS}
    assert (quality["recall"] >= 0.9).all() and (quality["precision"] >= 0.9).all()
    meta = result.asset_materializations_for_node("grounding")[0].metadata
    assert meta["backend"].value == "classical"
    assert "data:image/png;base64," in meta["overlays"].value
    # Issue 13: every object carries what its spec object declares, from the attribute stage calibrated on
    # the normal training images; the calibration travels with the table and is shown in the metadata.
    calibration = meta["attribute_calibration"].value
    assert calibration["scenario"] == "splicing_connectors"
    assert calibration["images"] == int((split["loco_folder"] == "train/good").sum())
    assert set(calibration["values"]) == {"connector", "cable"}
    assert calibration_of(table).to_dict() == calibration
    for row in table.itertuples():
        declared = {"connector": {"clamps", "side"}, "cable": {"colour", "terminals"}}[row.label]
        assert declared <= set(json.loads(row.attributes)), row.image_id

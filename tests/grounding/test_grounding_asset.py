"""The `grounding` asset materialized in-process with tiny CLIP + SAM models saved to local files."""

from __future__ import annotations

import dataclasses

import pandas as pd
from dagster import materialize

from assets.grounding import grounding
from assets.split import loco_fc_split
from models.grounding.tiny import tiny_grounding_config
from resources.grounding import Grounder
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource
from tests.loco_tree import TreeSpec, build_tree


def test_grounding_asset_with_tiny_clip_sam(tmp_path) -> None:
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["missing_pushpin"], train_good=2, test_good=1,
                                                  single={"missing_pushpin": 2}, size=(96, 64)))
    config = tiny_grounding_config(tmp_path / "weights")
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    grounder = Grounder(cache_dir=str(tmp_path / "cache"),
                        **{k: v for k, v in fields.items() if k in Grounder.model_fields})
    resources = {
        "io_manager": ParquetIOManager(storage=(store := StorageResource(root=str(tmp_path / "storage")))),
        "loco": LocoDataset(data_root=str(root), storage=store),
        "grounder": grounder,
    }
    result = materialize([loco_fc_split, grounding], partition_key="pushpins", resources=resources)
    assert result.success
    table = pd.read_parquet(tmp_path / "storage/grounding/pushpins.parquet")
    assert len(table) > 0
    assert set(table["label"]) <= {"pushpin", "box"}
    assert set(table["backend"]) == {"clip_sam"}
    assert (table["bbox"].map(lambda b: 0 <= b[0] < b[2] <= 96 and 0 <= b[1] < b[3] <= 64)).all()
    meta = result.asset_materializations_for_node("grounding")[0].metadata
    assert "data:image/png;base64," in meta["overlays"].value
    assert meta["images"].value == 5
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "grounding_not_empty")
    assert check.passed
    again = materialize([loco_fc_split, grounding], partition_key="pushpins", resources=resources,
                        selection=[grounding.key])
    cached = again.asset_materializations_for_node("grounding")[0].metadata["images_by_status"].value
    assert cached == {"cached": 5}

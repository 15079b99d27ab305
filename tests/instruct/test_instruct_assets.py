"""`augmented_images` and `cot_dataset` materialized in-process on a small generated set, grounded by a
tiny colour backend registered for the test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize

from assets.grounding import grounding
from assets.instruction_data import augmented_images, cot_dataset, subquery_paraphrases
from assets.split import generated_loco, loco_fc_split
from models.grounding import BACKENDS
from resources.grounding import Grounder
from resources.llm import ChatEndpoint
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource

ASSETS = [generated_loco, loco_fc_split, grounding, subquery_paraphrases, augmented_images, cot_dataset]


@pytest.fixture()
def resources(tmp_path, monkeypatch) -> dict:
    monkeypatch.setitem(BACKENDS, "pushpin_colours", "tests.instruct.instruct_helpers:PushpinColours")
    store = StorageResource(root=str(tmp_path / "storage"))
    return {
        "storage": store,
        "io_manager": ParquetIOManager(storage=store),
        "loco": LocoDataset(storage=store),
        "grounder": Grounder(backend="pushpin_colours", cache_dir=str(tmp_path / "cache")),
        "paraphraser": ChatEndpoint(cache_dir=str(tmp_path / "llm")),
    }


def _run(resources: dict, config: dict | None = None, selection: list | None = None):
    run_config = {"ops": {"augmented_images": {"config": config or {}}}}
    if selection is None or generated_loco in selection:
        run_config["ops"]["generated_loco"] = {"config": {"per_logical_class": 2}}
    return materialize(ASSETS, partition_key="pushpins", resources=resources, run_config=run_config,
                       selection=selection)


def test_instruction_chain_materializes_with_passing_checks(resources, tmp_path) -> None:
    result = _run(resources)
    assert result.success
    mine = {"augmented_labels_follow_h", "cut_paste_visible", "cot_answers_parse", "grounding_contradictions",
            "cot_answer_agreement", "class_share_removed"}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations() if e.check_name in mine}
    assert set(checks) == mine
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items() if not c.passed}
    assert checks["cut_paste_visible"].metadata["backend"].value == "pushpin_colours"

    storage = tmp_path / "storage"
    aug = pd.read_parquet(storage / "augmented_images/pushpins.parquet")
    split = pd.read_parquet(storage / "loco_fc_split/pushpins.parquet")
    assert set(aug["parent_image_id"]) <= set(split.loc[split["split"] == "train", "image_id"])
    assert {"aug_id", "parent_image_id", "scenario", "kind", "image_path", "labels", "objects", "answers",
            "changed_answers"} <= set(aug.columns)
    assert set(aug["kind"]) == {"paste", "remove", "move", "noise", "style"}
    assert all((storage / "augmented_images/pushpins" / p.split("/")[-1]).is_file() for p in aug["image_path"])
    assert aug["label_changed"].any()

    cot = pd.read_parquet(storage / "cot_dataset/pushpins.parquet")
    assert set(cot["image_origin"]) == {"original", "augmented"}
    assert len(cot) == 4 * (len(aug) + (split["split"] == "train").sum())
    lines = (storage / "cot_dataset/pushpins.jsonl").read_text().splitlines()
    assert len(lines) == len(cot) and json.loads(lines[0])["messages"][0]["role"] == "system"

    aug_meta = result.asset_materializations_for_node("augmented_images")[0].metadata
    cot_meta = result.asset_materializations_for_node("cot_dataset")[0].metadata
    assert "data:image/png;base64," in aug_meta["before_after"].value
    assert "data:image/png;base64," in cot_meta["examples"].value and "**think:**" in cot_meta["examples"].value
    assert cot_meta["rows"].value == len(cot) and cot_meta["flagged_rate"].value == 0.0
    assert cot_meta["jsonl"].value.endswith("cot_dataset/pushpins.jsonl")
    assert "| normal |" in cot_meta["removed_by_class"].value
    media = Path(cot_meta["jsonl_media_dir"].value)  # the generated tree and the augmented images share <storage>
    images = json.loads(lines[0])["images"]
    assert not any(Path(p).is_absolute() for p in images) and all((media / p).is_file() for p in images)


def test_fewer_augmentations_remove_stale_images(resources, tmp_path) -> None:
    assert _run(resources, selection=ASSETS[:5]).success
    folder = tmp_path / "storage/augmented_images/pushpins"
    assert list(folder.glob("*-noise0.png"))
    assert _run(resources, {"noise": 0, "style": 0, "move": 0, "remove": 0}, selection=[augmented_images]).success
    assert not list(folder.glob("*-noise0.png")) and list(folder.glob("*-paste0.png"))
    table = pd.read_parquet(tmp_path / "storage/augmented_images/pushpins.parquet")
    assert {p.name for p in folder.iterdir()} == {p.split("/")[-1] for p in table["image_path"]}

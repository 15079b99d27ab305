"""Table III: `lac_ablation` trains and evaluates ablation configurations; `lac_metrics` orders them as the paper."""

from __future__ import annotations

import numpy as np
import pandas as pd
from dagster import AssetKey, AssetSpec, PipesSubprocessClient, materialize

from assets.ablation import TABLE_III_ROWS, lac_ablation
from assets.evaluation import table_iii
from assets.instruction_data import subquery_paraphrases
from assets.split import loco_fc_split
from models.objects import object_from_mask, objects_to_frame
from resources.llm import ChatEndpoint
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager, write_parquet_atomic
from resources.partitions import scenario_partitions
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel
from tests.evaluation.helpers import small_tree, split_frame


def _grounding(split: pd.DataFrame) -> pd.DataFrame:
    """A 3×5 box with one pushpin per cell on every image (normal grounding), in the grounding table's schema."""
    frames = []
    for image in split.itertuples(index=False):
        box = np.zeros((image.height, image.width), dtype=bool)
        box[3:45, 2:62] = True
        objects = [object_from_mask(box, "box", 0.9)]
        for row in range(3):
            for col in range(5):
                pin = np.zeros_like(box)
                y, x = 3 + 14 * row + 5, 2 + 12 * col + 4
                pin[y:y + 4, x:x + 4] = True
                objects.append(object_from_mask(pin, "pushpin", 0.9))
        frames.append(objects_to_frame(image.image_id, objects))
    return pd.concat(frames, ignore_index=True).assign(backend="test", width=64, height=48)


def test_ablation_trains_and_predicts_each_configuration(tmp_path) -> None:
    root, storage = tmp_path / "loco", tmp_path / "storage"
    small_tree(root, "pushpins", singles_per_class=2)
    write_parquet_atomic(_grounding(split_frame(root, "pushpins")), storage / "grounding" / "pushpins.parquet")
    resources = {
        "storage": (store := StorageResource(root=str(storage))),
        "io_manager": ParquetIOManager(storage=store),
        "loco": LocoDataset(data_root=str(root), storage=store),
        "paraphraser": ChatEndpoint(cache_dir=str(storage / "cache")),
        "vlm": VisionLanguageModel(storage=store),
        "pipes_subprocess_client": PipesSubprocessClient(),
    }
    config = {"configurations": ["sft_answers", "sft_reasoning_boxes"], "max_new_tokens": 10, "batch_size": 8,
              "training": {"num_epochs": 1, "samples_per_epoch": 8, "score_max_samples": 8, "max_new_tokens": 10}}
    result = materialize(
        [loco_fc_split, subquery_paraphrases, AssetSpec(AssetKey("grounding"), partitions_def=scenario_partitions),
         lac_ablation],
        partition_key="pushpins", resources=resources,
        run_config={"ops": {"loco_fc_split": {"config": {"train_ratio": 0.5}}, "lac_ablation": {"config": config}}},
    )
    assert result.success
    table = pd.read_parquet(storage / "lac_ablation" / "pushpins.parquet")
    assert set(table["configuration"]) == {"sft_answers", "sft_reasoning_boxes"}
    assert set(table["method"]) == {"finetuned"}
    n_test = table["image_id"].nunique()
    assert len(table) == 2 * n_test * 4  # two configurations × test images × four pushpins subqueries
    for name in ("sft_answers", "sft_reasoning_boxes"):
        assert (storage / "checkpoints/ablation" / name / "pushpins").is_dir()
    samples = next((storage / "checkpoints/ablation/sft_answers/pushpins").glob("run-*/samples.parquet"))
    assert not pd.read_parquet(samples)["target"].str.contains("<think>").any()  # answers only


def test_table_iii_view_follows_the_paper_order() -> None:
    rows = [("icl", "default", 10.0), ("finetuned", "sft_answers", 20.0), ("finetuned", "default", 50.0),
            ("finetuned", "sft_reasoning_boxes", 40.0)]
    table_ii = pd.DataFrame([{"model": "m", "method": m, "configuration": c, "average/binary_f1": f,
                              "average/macro_f1": f / 2} for m, c, f in rows])
    view = table_iii(table_ii)
    assert view["table_iii_row"].tolist() == ["decomposition only", "+ SFT (answers only)",
                                              "+ boxes in the reasoning", "+ augmentation and resampling"]
    assert view["binary_f1"].tolist() == [10.0, 20.0, 40.0, 50.0]
    assert next(r[0] for r in TABLE_III_ROWS) == "decomposition only" and len(TABLE_III_ROWS) == 5

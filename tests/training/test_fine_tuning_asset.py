"""`fine_tuning` (vlm_adapter, difficulty_scores, resampling_probabilities) through Dagster Pipes, tiny model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, PipesSubprocessClient, asset, materialize
from PIL import Image

from assets.fine_tuning import vlm_adapter
from models.vlm.presets import LORA_R16_ATTENTION, TINY
from resources.fine_tuning import FineTuneConfig
from resources.parquet_io import ParquetIOManager
from resources.partitions import scenario_partitions
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel


def _cot_rows(tmp_path) -> pd.DataFrame:
    """A small CoT table in the `cot_dataset` contract: two subqueries, answers the image colour gives away."""
    rows = []
    for i in range(6):
        colour = (200, 40, 40) if i % 2 else (40, 40, 200)
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((56, 56, 3), colour, np.uint8)).save(path)
        complete = bool(i % 2)
        for sub, text, value, answer in (
            ("separators_complete", "Are all the separators complete?", complete, "Yes" if complete else "No"),
            ("row_1", "What is the distribution in the first row [n1, n2, n3, n4, n5]?", [1, 1, 1, 1, 1],
             "[1, 1, 1, 1, 1]"),
        ):
            rows.append({
                "sample_id": f"s{i}-{sub}", "image_id": f"pushpins/train/good/{i:03d}", "image_path": str(path),
                "scenario": "pushpins", "subquery_id": sub, "question": text,
                "target": f"<think>Look at the box.</think><answer>{answer}</answer>",
                "answer_value": json.dumps(value), "example_image_path": str(tmp_path / "img0.png"),
                "example_target": "<think>Look at the box.</think><answer>No</answer>",
            })
    return pd.DataFrame(rows)


@pytest.fixture
def cot_stand_in(tmp_path):
    table = _cot_rows(tmp_path)

    @asset(name="cot_dataset", partitions_def=scenario_partitions)
    def cot_dataset() -> pd.DataFrame:
        return table

    return cot_dataset


def test_fine_tuning_through_pipes(tmp_path, cot_stand_in) -> None:
    storage = tmp_path / "storage"
    resources = {
        "storage": (store := StorageResource(root=str(storage))),
        "io_manager": ParquetIOManager(storage=store),
        "vlm": VisionLanguageModel(storage=store, max_pixels=56 * 56, min_pixels=28 * 28),
        "pipes_subprocess_client": PipesSubprocessClient(forward_termination=True),
    }
    config = {"ops": {"vlm_adapter": {"config": {"num_epochs": 2, "per_device_batch_size": 4,
                                                 "score_batch_size": 12, "max_new_tokens": 24,
                                                 "samples_per_epoch": 12}}}}
    result = materialize([cot_stand_in, vlm_adapter], partition_key="pushpins", resources=resources,
                         run_config=config)
    assert result.success
    adapter = storage / "checkpoints/vlm_adapter/pushpins/final"
    assert (adapter / "model.safetensors").is_file() and (adapter / "config.json").is_file()  # the tiny preset: full
    difficulty = pd.read_parquet(storage / "difficulty_scores/pushpins.parquet")
    assert sorted(difficulty["epoch"].unique()) == [1, 2] and len(difficulty) == 24
    assert {"epoch", "sample_id", "subquery_id", "correct", "perplexity", "difficulty"} <= set(difficulty.columns)
    np.testing.assert_allclose(difficulty["difficulty"],
                               (~difficulty["correct"]).astype(float) + 0.2 * difficulty["perplexity"])
    probabilities = pd.read_parquet(storage / "resampling_probabilities/pushpins.parquet")
    np.testing.assert_allclose(probabilities.groupby("epoch")["probability"].sum(), 1.0)
    meta = result.asset_materializations_for_node("vlm_adapter")
    adapter_meta = next(m for m in meta if m.asset_key == AssetKey("vlm_adapter")).metadata
    assert adapter_meta["adapter_dir"].value == str(adapter)
    assert "RANDOM weights" in adapter_meta["base_model_note"].value
    assert len(adapter_meta["epoch_losses"].value) == 2
    assert adapter_meta["training_config"].value["learning_rate"] == 2e-3  # the tiny preset
    assert adapter_meta["training_config"].value["method"] == "full" and adapter_meta["weights"].value == "full"
    plot = next(m for m in meta if m.asset_key == AssetKey("resampling_probabilities")).metadata["plot"]
    assert "data:image/png;base64," in plot.value


def test_train_config_presets() -> None:
    real = FineTuneConfig().train_config(tiny_model=False, max_new_tokens=64)
    assert real == dataclasses.replace(LORA_R16_ATTENTION, max_new_tokens=64)
    assert real.learning_rate == 1e-4 and real.lora_targets == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert (real.alpha, real.beta) == (1.0, 0.2)  # Eq. 4's weights, the paper's
    custom = FineTuneConfig(learning_rate=3e-4, lora_targets=["q_proj"], gamma=2.0).train_config(True, 64)
    assert custom.learning_rate == 3e-4 and custom.lora_targets == ("q_proj",) and custom.gamma == 2.0
    assert custom.max_new_tokens == 64 and custom.samples_per_epoch == TINY.samples_per_epoch


def test_a_renamed_or_unknown_preset_says_what_to_set() -> None:
    with pytest.raises(ValueError, match=r"'paper' is now called 'lora_r16_attention'.*not the paper's"):
        FineTuneConfig(preset="paper").train_config(tiny_model=False, max_new_tokens=64)
    with pytest.raises(ValueError, match="unknown training preset 'big'; choose auto, lora_r16_attention, tiny"):
        FineTuneConfig(preset="big").train_config(tiny_model=False, max_new_tokens=64)


def test_a_bad_launchpad_value_fails_before_training() -> None:
    with pytest.raises(ValueError, match=r"TrainConfig\.lr_schedule must be one of constant, linear, cosine"):
        FineTuneConfig(lr_schedule="cosin").train_config(tiny_model=True, max_new_tokens=64)

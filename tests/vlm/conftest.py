"""Shared fixtures: one tiny Qwen2.5-VL per session, small images, and CoT-shaped sample tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from models.envelope import format_target
from models.vlm.tiny import build_tiny_qwen25vl

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (230, 220, 30)]
QUESTIONS = {
    "nuts": "How many nuts are in the picture?",
    "fill_level": "Is the juice in the bottle just right/too much/too little?",
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "qwen25vl", seed=0)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four solid-colour test images (the colour is the 'fact' only the image carries) and an example."""
    directory = tmp_path_factory.mktemp("images")
    Image.new("RGB", (112, 112), (128, 128, 128)).save(directory / "example.png")
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (112, 84 if i % 2 else 112), colour).save(directory / f"test_{i}.png")
    return directory


def make_samples(image_dir: Path, n: int = 8) -> pd.DataFrame:
    """``n`` rows of the training contract; the answer (a count) depends on the image's colour."""
    rows = []
    for i in range(n):
        count = i % len(COLOURS)
        subquery = "nuts" if i % 2 else "fill_level"
        rows.append({
            "sample_id": f"s{i:02d}",
            "subquery_id": subquery,
            "question": QUESTIONS[subquery],
            "target": format_target(f"There are {count} nuts at [1,2,3,4].", str(count)),
            "image_path": str(image_dir / f"test_{count}.png"),
            "example_image_path": str(image_dir / "example.png"),
            "example_target": format_target("There are 2 nuts at [5,6,7,8].", "2"),
        })
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def samples(image_dir: Path) -> pd.DataFrame:
    return make_samples(image_dir)


@pytest.fixture(scope="session")
def sample_factory(image_dir: Path):
    return lambda n=8: make_samples(image_dir, n)


# LoRA on attention and MLP of the language model: attention alone fits a random 0.2 M-parameter
# model too slowly for a unit test. The schedule anneals (cosine to 0), so the last steps barely
# move the weights and the answers scored at the end do not hang on a late loss spike. Measured on
# an AMD EPYC: with base weights perturbed by 1e-6 (a stand-in for another CPU's rounding) this
# config scored 1.0 in 9 of 9 runs; over seeds 0-15, 1.0 in 15 and 0.75 in one. The former constant
# lr 5e-3 over 300 steps scored 0.0, 1.0, 0.25, 0.75, 0.0, 0.75 under the same perturbations.
OVERFIT_CONFIG = {
    "num_epochs": 2,
    "samples_per_epoch": 300,
    "per_device_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 3e-3,
    "lr_schedule": "cosine",
    "lora_dropout": 0.0,
    "lora_targets": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "max_new_tokens": 32,
    "log_every_steps": 20,
}


@pytest.fixture(scope="session")
def overfit_run(tiny_model_dir, samples, tmp_path_factory):
    """One short training run on 8 samples; returns (TrainResult, progress events)."""
    from models.vlm.train import TrainConfig, train_lora

    events: list[dict] = []
    result = train_lora(tiny_model_dir, samples, TrainConfig.from_dict(OVERFIT_CONFIG),
                        tmp_path_factory.mktemp("overfit"), progress_callback=events.append)
    return result, events

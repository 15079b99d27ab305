"""Session fixtures: the tiny Qwen2.5-VL, a random LoRA adapter for it, and a small pushpins LOCO tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.vlm.tiny import build_tiny_qwen25vl
from tests.evaluation.helpers import random_adapter, small_tree


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "qwen25vl", seed=0)


@pytest.fixture(scope="session")
def random_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "final")


@pytest.fixture(scope="session")
def pushpins_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_tree(tmp_path_factory.mktemp("loco"), "pushpins", singles_per_class=2)

"""Helpers shared by the grounding tests: a synthetic scene, queries and a cheap fake backend.

A uniquely named module rather than ``conftest`` so test files can import it unambiguously.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.grounding import ALL_LABELS, GroundingBackend, GroundingConfig, ObjectQuery
from models.grounding.evaluate import GeneratedEvaluation
from models.objects import ImageObject, object_from_mask
from models.spec import ScenarioSpec
from models.synth import SCENARIOS, GeneratorConfig, ensure_generated

TARGET = 0.9  # issue 4's acceptance: precision, recall and normal-image count accuracy

QUERIES = [
    ObjectQuery("pushpin", ("pushpin", "yellow pin"), colour="yellow", shape="round", normal_count=15),
    ObjectQuery("box", ("plastic box",), normal_count=1),
]


def synthetic_scene(height: int = 128, width: int = 192, seed: int = 0) -> np.ndarray:
    """A grey canvas with a red rectangle, a blue rectangle and a yellow disc (RGB uint8)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 200, dtype=np.uint8)
    image[20:60, 30:80] = (220, 30, 30)
    image[70:110, 100:170] = (30, 30, 220)
    cv2.circle(image, (150, 35), 15, (240, 220, 20), -1)
    return np.clip(image + rng.integers(-5, 6, image.shape), 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    """Save an RGB image as PNG."""
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


class FakeBackend(GroundingBackend):
    """Labels every non-grey pixel blob as the first query; counts calls; fails on all-black images."""

    name = "fake"

    def __init__(self, config: GroundingConfig) -> None:
        super().__init__(config)
        self.calls = 0

    def ground(self, image: np.ndarray, queries: Sequence[ObjectQuery]) -> list[ImageObject]:
        self.calls += 1
        if not image.any():
            raise RuntimeError("model error on a black image")
        n, labels = cv2.connectedComponents(
            (np.abs(image.astype(int) - 200).sum(axis=2) > 60).astype(np.uint8)
        )
        return [object_from_mask(labels == k, queries[0].name, 0.9) for k in range(1, n)]


def generate_all(out: Path, config: GeneratorConfig) -> Path:
    """Every generated scenario with ``config`` under ``out``."""
    for scenario in SCENARIOS:
        ensure_generated(scenario, out, config)
    return out


def assert_acceptance(evaluation: GeneratedEvaluation, spec: ScenarioSpec) -> None:
    """Precision and recall ≥ 0.9 for every label, and every count right on ≥ 90 % of normal images."""
    quality = evaluation.quality
    labels = quality[quality["label"] != ALL_LABELS]
    assert set(labels["label"]) == {o.name for o in spec.objects}
    low = labels[(labels["precision"] < TARGET) | (labels["recall"] < TARGET)]
    assert low.empty, low.to_string()
    assert evaluation.normal_counts_right() >= TARGET, quality.to_string()

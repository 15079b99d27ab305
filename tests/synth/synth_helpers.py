"""Shared by the generator tests: the small test configuration and readers for a generated set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from models.objects import ImageObject, objects_from_frame
from models.synth import GeneratorConfig

SMALL = GeneratorConfig(
    scale=0.15, train_good=2, validation_good=1, test_good=2, per_logical_class=2, per_multi_combo=1,
    structural=2, seed=3,
)  # fmt: skip


@dataclass
class Generated:
    """A generated data set and readers for its tables."""

    out: Path
    config: GeneratorConfig

    @property
    def loco(self) -> Path:
        return self.out / "loco"

    def images(self, scenario: str) -> pd.DataFrame:
        return pd.read_parquet(self.out / "annotations" / f"{scenario}_images.parquet")

    def objects(self, scenario: str) -> dict[str, list[ImageObject]]:
        return objects_from_frame(pd.read_parquet(self.out / "annotations" / f"{scenario}.parquet"))

    def defect_types(self, scenario: str, stem_dir: Path) -> set[str]:
        """Decode an image's mask folder through defects_config.json: distinct pixel values → names."""
        config = json.loads((self.loco / scenario / "defects_config.json").read_text())
        names = {d["pixel_value"]: d["defect_name"] for d in config}
        values: set[int] = set()
        for mask in sorted(stem_dir.glob("*.png")):
            values |= set(np.unique(np.asarray(Image.open(mask))).tolist())
        return {names[v] for v in values - {0}}

    def defect_mask(self, scenario: str, image_id: str, defect: str) -> np.ndarray:
        """The boolean region of ``defect`` in the image's ground-truth masks."""
        config = json.loads((self.loco / scenario / "defects_config.json").read_text())
        value = next(d["pixel_value"] for d in config if d["defect_name"] == defect)
        *_, kind, stem = image_id.split("/")  # e.g. pushpins/test/logical_anomalies/003
        region = None
        for mask in sorted((self.loco / scenario / "ground_truth" / kind / stem).glob("*.png")):
            m = np.asarray(Image.open(mask)) == value
            region = m if region is None else region | m
        assert region is not None and region.any(), f"{image_id}: no {defect} region"
        return region

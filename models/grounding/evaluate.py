"""Grounding measured on a generated data set against the generator's instance annotations.

The numbers behind the ``classical`` backend's acceptance (box precision and recall per label,
per-image counts on normal images, attribute accuracy) and behind its benchmark, computed the way
the ``grounding_quality`` asset computes them: on the images LOCO FC uses (``train/good``,
``test/good`` and ``test/logical_anomalies``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models.grounding.base import GroundingBackend, ObjectQuery
from models.grounding.quality import ALL_LABELS, attribute_accuracy, grounding_quality
from models.grounding.run import ground_images

LOCO_FC_FOLDERS = ("train/good", "test/good", "test/logical_anomalies")


@dataclass
class GeneratedEvaluation:
    """One scenario's grounding against its annotations.

    ``quality`` has :func:`grounding_quality`'s rows plus ``count_accuracy_normal`` (the same share
    on normal images only); ``attributes`` has :func:`attribute_accuracy`'s rows.
    """

    scenario: str
    objects: pd.DataFrame
    quality: pd.DataFrame
    attributes: pd.DataFrame
    n_images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")

    def normal_counts_right(self) -> float:
        """Share of normal images with every label's count right (the ``(all)`` row)."""
        row = self.quality[self.quality["label"] == ALL_LABELS]
        return float(row["count_accuracy_normal"].iloc[0])


def loco_fc_images(generated_dir: str | Path, scenario: str) -> pd.DataFrame:
    """The generated images LOCO FC uses: ``image_id``, absolute ``image_path`` and ``n_defect_types``."""
    generated_dir = Path(generated_dir)
    images = pd.read_parquet(generated_dir / "annotations" / f"{scenario}_images.parquet")
    images = images[images["loco_folder"].isin(LOCO_FC_FOLDERS)].sort_values("image_id")
    root = generated_dir / "loco"
    paths = [str(root / p) for p in images["image_path"]]
    return images.assign(image_path=paths)[["image_id", "image_path", "n_defect_types"]]


def evaluate_generated(
    backend: GroundingBackend,
    generated_dir: str | Path,
    scenario: str,
    queries: Sequence[ObjectQuery],
    attributes: Mapping[str, Sequence[str]],
    iou: float = 0.5,
) -> GeneratedEvaluation:
    """Ground a generated scenario's LOCO FC images and measure them against its annotations."""
    images = loco_fc_images(generated_dir, scenario)
    truth = pd.read_parquet(Path(generated_dir) / "annotations" / f"{scenario}.parquet")
    truth = truth[truth["image_id"].isin(images["image_id"])]
    start = time.perf_counter()
    run = ground_images(backend, list(zip(images["image_id"], images["image_path"], strict=True)), queries,
                        progress=False)
    seconds = time.perf_counter() - start
    if len(run.failures):
        raise RuntimeError(f"grounding failed on {len(run.failures)} images: {run.failures['error'].iloc[0]}")
    labels = [q.name for q in queries]
    quality = grounding_quality(run.objects, truth, labels=labels, iou=iou)
    normal_ids = images.loc[images["n_defect_types"] == 0, "image_id"]
    normal = grounding_quality(run.objects, truth, labels=labels, iou=iou, image_ids=normal_ids)
    quality = quality.merge(
        normal[["label", "count_accuracy"]].rename(columns={"count_accuracy": "count_accuracy_normal"}),
        on="label",
        how="left",
    )
    wanted = {k: v for k, v in attributes.items() if k in labels}
    return GeneratedEvaluation(
        scenario=scenario,
        objects=run.objects,
        quality=quality,
        attributes=attribute_accuracy(run.objects, truth, wanted, iou=iou),
        n_images=len(images),
        seconds=seconds,
    )

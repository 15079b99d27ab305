"""Grounding measured on a generated data set against the generator's instance annotations.

The numbers behind the ``classical`` backend's acceptance (box precision and recall per label,
per-image counts on normal images, attribute accuracy) and behind its benchmark, computed the way
the ``grounding_quality`` asset computes them: on the images LOCO FC uses (``train/good``,
``test/good`` and ``test/logical_anomalies``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from models.grounding.attributes import AttributeStage, Calibration
from models.grounding.base import GroundingBackend, queries_from_spec
from models.grounding.quality import ALL_LABELS, attribute_accuracy, grounding_quality
from models.grounding.run import ground_images
from models.images import read_rgb
from models.objects import ImageObject, object_from_mask, objects_from_frame
from models.spec import ScenarioSpec
from models.split import normal_training_ids
from models.synth.generate import annotations_path, image_annotations_path, loco_root

LOCO_FC_FOLDERS = ("train/good", "test/good", "test/logical_anomalies")


@dataclass
class GeneratedEvaluation:
    """One scenario's grounding against its annotations.

    ``quality`` has :func:`grounding_quality`'s rows plus ``count_accuracy_normal`` (the same share
    on normal images only); ``attributes`` has :func:`attribute_accuracy`'s rows for the attributes
    the spec declares; ``calibration`` is the attribute stage's, fitted on ``train/good``.
    """

    scenario: str
    objects: pd.DataFrame
    quality: pd.DataFrame
    attributes: pd.DataFrame
    n_images: int
    seconds: float
    calibration: Calibration | None = None

    @property
    def images_per_s(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")

    def normal_counts_right(self) -> float:
        """Share of normal images with every label's count right (the ``(all)`` row)."""
        row = self.quality[self.quality["label"] == ALL_LABELS]
        return float(row["count_accuracy_normal"].iloc[0])


def loco_fc_images(generated_dir: str | Path, scenario: str) -> pd.DataFrame:
    """The generated images LOCO FC uses: ``image_id``, absolute ``image_path``, ``loco_folder``, ``labels``
    and ``n_defect_types``."""
    images = pd.read_parquet(image_annotations_path(generated_dir, scenario))
    images = images[images["loco_folder"].isin(LOCO_FC_FOLDERS)].sort_values("image_id")
    root = loco_root(generated_dir)
    paths = [str(root / p) for p in images["image_path"]]
    return images.assign(image_path=paths)[["image_id", "image_path", "loco_folder", "labels", "n_defect_types"]]


def evaluate_generated(
    backend: GroundingBackend, generated_dir: str | Path, spec: ScenarioSpec, iou: float = 0.5
) -> GeneratedEvaluation:
    """Ground a generated scenario's LOCO FC images and measure them against its annotations."""
    scenario = spec.scenario
    images = loco_fc_images(generated_dir, scenario)
    truth = pd.read_parquet(annotations_path(generated_dir, scenario))
    truth = truth[truth["image_id"].isin(images["image_id"])]
    queries = queries_from_spec(spec)
    start = time.perf_counter()
    run = ground_images(backend, list(zip(images["image_id"], images["image_path"], strict=True)), queries,
                        progress=False, spec=spec, normal_ids=normal_training_ids(images))
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
    wanted = {o.name: o.attributes for o in spec.objects if o.attributes}
    return GeneratedEvaluation(
        scenario=scenario,
        objects=run.objects,
        quality=quality,
        attributes=attribute_accuracy(run.objects, truth, wanted, iou=iou),
        n_images=len(images),
        seconds=seconds,
        calibration=run.calibration,
    )


# --- the attribute stage on the generator's masks ------------------------------------------------------

#: How the attribute stage's inputs are disturbed to check it holds beyond the generator's own
#: variation: masks a backend finds a little too small or too large, lighting and sensor noise.
PERTURBATIONS: dict[str, str] = {
    "none": "the generator's masks and pixels",
    "eroded": "every mask eroded by 2 px",
    "dilated": "every mask dilated by 2 px",
    "darker": "lighting x 0.8",
    "brighter": "lighting x 1.2",
    "noise": "Gaussian noise, sigma 10",
}
MASK_CHANGE_PX = 2
LIGHTING = {"darker": 0.8, "brighter": 1.2}
NOISE_SIGMA = 10.0
AGREEMENT_COLUMNS = ["scenario", "perturbation", "label", "attribute", "objects", "agree", "agreement"]


def perturb(
    image: np.ndarray, objects: list[ImageObject], perturbation: str, rng: np.random.Generator
) -> tuple[np.ndarray, list[ImageObject]]:
    """The image and masks as :data:`PERTURBATIONS` names them (a mask eroded away is kept as it was)."""
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturbation!r}; choose one of {list(PERTURBATIONS)}")
    if perturbation in ("eroded", "dilated"):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_CHANGE_PX + 1,) * 2)
        change = cv2.erode if perturbation == "eroded" else cv2.dilate
        changed = []
        for obj in objects:
            mask = change(obj.mask().astype(np.uint8), kernel).astype(bool)
            changed.append(object_from_mask(mask, obj.label, obj.score, obj.attributes) if mask.any() else obj)
        return image, changed
    if perturbation in LIGHTING:
        return np.clip(image.astype(np.float32) * LIGHTING[perturbation], 0, 255).round().astype(np.uint8), objects
    if perturbation == "noise":
        noisy = image.astype(np.float32) + rng.normal(0.0, NOISE_SIGMA, image.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8), objects
    return image, objects


@dataclass
class AttributeCheck:
    """The attribute stage run on a generated scenario's annotated masks with every attribute removed.

    ``truth`` holds the annotations (with the generator's attributes), ``found`` the same objects
    (perturbed) with the stage's; ``agreement`` has one row per declared label and attribute.
    """

    scenario: str
    perturbation: str
    images: pd.DataFrame
    truth: dict[str, list[ImageObject]]
    found: dict[str, list[ImageObject]]
    calibration: Calibration
    agreement: pd.DataFrame


def check_attribute_stage(
    generated_dir: str | Path, spec: ScenarioSpec, perturbation: str = "none", seed: int = 0
) -> AttributeCheck:
    """Strip the attributes from the generator's objects, perturb, run the stage calibrated on the normal
    training images (perturbed alike, as a backend's masks would be), and compare with the truth."""
    images = loco_fc_images(generated_dir, spec.scenario)
    annotations = pd.read_parquet(Path(generated_dir) / "annotations" / f"{spec.scenario}.parquet")
    truth = objects_from_frame(annotations[annotations["image_id"].isin(images["image_id"])])
    stage = AttributeStage(spec)
    rng = np.random.default_rng(seed)
    measured = {}
    for row in images.itertuples(index=False):
        bare = [replace(o, attributes={}) for o in truth.get(row.image_id, [])]
        image, objects = perturb(read_rgb(row.image_path), bare, perturbation, rng)
        measured[row.image_id] = stage.measure(image, objects)
    calibration = stage.calibrate([measured[i] for i in normal_training_ids(images)])
    found = {image_id: stage.assign(m, calibration) for image_id, m in measured.items()}
    agreement = _agreement(spec, perturbation, truth, found)
    return AttributeCheck(spec.scenario, perturbation, images, truth, found, calibration, agreement)


def _agreement(
    spec: ScenarioSpec, perturbation: str, truth: dict[str, list[ImageObject]], found: dict[str, list[ImageObject]]
) -> pd.DataFrame:
    """Per declared label and attribute: how many true objects carry it, and on how many the stage agrees."""
    tally: dict[tuple[str, str], list[int]] = {}
    for image_id, objects in found.items():
        for want, got in zip(truth.get(image_id, []), objects, strict=True):
            for key in spec.object(want.label).attributes:
                if key not in want.attributes:
                    continue
                counts = tally.setdefault((want.label, key), [0, 0])
                counts[0] += 1
                counts[1] += int(key in got.attributes and _same(want.attributes[key], got.attributes[key]))
    rows = [[spec.scenario, perturbation, label, key, n, ok, ok / n] for (label, key), (n, ok) in sorted(tally.items())]
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


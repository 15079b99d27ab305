"""The LOCO FC re-split (the paper's Table I).

MVTec LOCO AD's training split has only good images. LOCO FC turns it into a classification data
set: train = ``train/good`` + a share of the single-anomaly images of every class; test =
``test/good`` + the rest of the single-anomaly images + every multi-anomaly image, so that the test
set measures how well a model trained on single labels predicts co-occurring ones.
Validation and structural images are not used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from models.loco import TEST_GOOD, TRAIN_GOOD, LocoImage, LocoScenario

SPLIT_VERSION = 2
"""Bump when the split, or the LOCO reader it reads through (`models.loco`), changes the table for the same
data: the asset's code version follows it, so the retraining schedule sees the change.
2: ``min_test_per_class`` (a class with one or two single-anomaly images reaches the test set) and per-scenario
ratios."""
SPLIT_COLUMNS = [
    "image_id",
    "scenario",
    "split",
    "labels",
    "n_defect_types",
    "loco_folder",
    "image_path",
    "mask_paths",
    "width",
    "height",
]
SPLIT_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("scenario", pa.string()), ("split", pa.string()), ("labels", pa.list_(pa.string())),
    ("n_defect_types", pa.int64()), ("loco_folder", pa.string()), ("image_path", pa.string()),
    ("mask_paths", pa.list_(pa.string())), ("width", pa.int64()), ("height", pa.int64()),
])  # fmt: skip


@dataclass(frozen=True)
class SplitConfig:
    """How single-anomaly images are shared between train and test."""

    train_ratio: float = field(default=0.8, metadata={"help": "Share of each class's single-anomaly images in "
                                                              "train (the paper: 0.8)."})
    scenario_train_ratios: dict[str, float] = field(default_factory=dict, metadata={
        "help": "Per-scenario train_ratio overriding it, e.g. {\"pushpins\": 0.4}: the paper's Table I has 32 of "
                "pushpins' 80 single-anomaly images in train, not 80%. Empty: train_ratio everywhere."})
    min_test_per_class: int = field(default=1, metadata={
        "help": "Each class keeps at least this many single-anomaly images in test, whatever the ratio (a class "
                "of 1 or 2 images would otherwise round to train only and never be tested), but not its last "
                "training image: a class of one image stays in train unless the ratio rounds it to 0. "
                "0: the ratio alone decides."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-class shuffle."})

    def __post_init__(self) -> None:
        ratios = {"train_ratio": self.train_ratio,
                  **{f"scenario_train_ratios[{k!r}]": v for k, v in self.scenario_train_ratios.items()}}
        for name, ratio in ratios.items():
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {ratio}")
        if self.min_test_per_class < 0:
            raise ValueError(f"min_test_per_class must be >= 0, got {self.min_test_per_class}")

    def ratio_for(self, scenario: str) -> float:
        """The train share of ``scenario``'s single-anomaly images."""
        return self.scenario_train_ratios.get(scenario, self.train_ratio)

    def n_train(self, n: int, scenario: str) -> int:
        """How many of a class's ``n`` single-anomaly images go to train: ``round(ratio · n)`` (halves up),
        lowered so that ``min_test_per_class`` reach test while at least one stays in train."""
        by_ratio = int(np.floor(self.ratio_for(scenario) * n + 0.5))
        if by_ratio == 0:
            return 0
        return max(min(by_ratio, n - self.min_test_per_class), 1)


def _class_seed(seed: int, scenario: str, label: str) -> int:
    """A seed per (scenario, class), so adding a class or a scenario never reshuffles another."""
    digest = hashlib.sha256(f"{seed}/{scenario}/{label}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def split_single_anomalies(
    images: list[LocoImage], config: SplitConfig, scenario: str
) -> tuple[list[LocoImage], list[LocoImage]]:
    """Per class, a seeded shuffle and :meth:`SplitConfig.n_train` images to train; the rest to test."""
    train: list[LocoImage] = []
    test: list[LocoImage] = []
    by_class: dict[str, list[LocoImage]] = {}
    for im in images:
        by_class.setdefault(im.labels[0], []).append(im)
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda im: im.image_id)
        order = np.random.default_rng(_class_seed(config.seed, scenario, label)).permutation(len(members))
        n_train = config.n_train(len(members), scenario)
        train += [members[i] for i in order[:n_train]]
        test += [members[i] for i in order[n_train:]]
    return train, test


def loco_fc_split(found: LocoScenario, config: SplitConfig) -> pd.DataFrame:
    """One row per image of LOCO FC with its split and classes (columns: :data:`SPLIT_COLUMNS`)."""
    anomalous = [im for im in found.images if im.n_defect_types > 0]
    single = [im for im in anomalous if im.n_defect_types == 1]
    multi = [im for im in anomalous if im.n_defect_types > 1]
    single_train, single_test = split_single_anomalies(single, config, found.scenario)
    assignment = (
        [(im, "train") for im in found.in_folder(TRAIN_GOOD) + single_train]
        + [(im, "test") for im in found.in_folder(TEST_GOOD) + single_test + multi]
    )
    rows = [
        {
            "image_id": im.image_id,
            "scenario": im.scenario,
            "split": split,
            "labels": list(im.labels),
            "n_defect_types": im.n_defect_types,
            "loco_folder": im.loco_folder,
            "image_path": str(im.image_path),
            "mask_paths": [str(p) for p in im.mask_paths],
            "width": im.width,
            "height": im.height,
        }
        for im, split in assignment
    ]
    frame = pd.DataFrame(rows, columns=SPLIT_COLUMNS)
    return frame.sort_values(["split", "image_id"], ignore_index=True)


def normal_training_ids(frame: pd.DataFrame) -> list[str]:
    """The normal training images (``train/good``) of a split or image table: what the attribute stage
    is calibrated on, since their answers are the normal ones."""
    return frame.loc[frame["loco_folder"] == TRAIN_GOOD, "image_id"].tolist()


def split_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Images per split and class (a multi-anomaly image counts for each of its classes)."""
    exploded = frame[["split", "labels"]].explode("labels").rename(columns={"labels": "class"})
    table = exploded.value_counts(["class", "split"]).unstack("split", fill_value=0)
    for split in ("train", "test"):
        if split not in table.columns:
            table[split] = 0
    return table[["train", "test"]].sort_index()


def table_one_row(frame: pd.DataFrame) -> dict[str, int]:
    """The counts of the paper's Table I for one scenario."""
    def n(split: str, kind: str) -> int:
        part = frame[frame["split"] == split]
        if kind == "normal":
            return int((part["n_defect_types"] == 0).sum())
        if kind == "single":
            return int((part["n_defect_types"] == 1).sum())
        return int((part["n_defect_types"] > 1).sum())

    return {
        "train_normal": n("train", "normal"),
        "train_single": n("train", "single"),
        "test_normal": n("test", "normal"),
        "test_single": n("test", "single"),
        "test_multi": n("test", "multi"),
    }

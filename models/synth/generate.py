"""Write a generated scenario in the exact MVTec LOCO AD layout, with annotations and a manifest.

Output under ``out_dir``::

    loco/<scenario>/train/good/000.png ...           # the LOCO tree (see docs/design.md)
    loco/<scenario>/ground_truth/logical_anomalies/000/000.png ...
    loco/<scenario>/defects_config.json
    annotations/<scenario>.parquet                   # every object, shared object schema
    annotations/<scenario>_images.parquet            # one row per image: labels, paths, facts
    manifest/<scenario>.json                         # version, config, seed, content hashes

Every image draws from its own random generator, seeded by (seed, scenario, LOCO folder, index), so a
scenario's files do not depend on which other scenarios are generated, nor in which order.
Everything is written into a staging folder first and moved into place at the end; the manifest
goes last and marks a complete scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from filelock import FileLock

from models.objects import OBJECT_COLUMNS, objects_to_frame
from models.synth.canvas import Scene
from models.synth.config import (
    LOGICAL_DEFECTS,
    MULTI_COMBOS,
    GeneratorConfig,
    check_scenario,
    image_size,
    pixel_values,
    scaled_defects_config,
    structural_defects,
)
from models.synth.scenes import render

#: Bump whenever a change alters the generated files: existing trees are then regenerated.
#: 2: terminals, fruit and missing separators in the annotations (attribute stage).
#: 3: the images table and the manifest say ``scenario`` (was ``category``), ``loco_folder`` (was ``source``).
#: 4: defects_config.json's absolute saturation thresholds scaled with the image area (were full-size values)
#:    and capped at the smallest region drawn of their type (the evaluator then warns on no channel).
GENERATOR_VERSION = "4"
LOGICAL = "test/logical_anomalies"
STRUCTURAL = "test/structural_anomalies"
LOCO_FOLDERS = ("train/good", "validation/good", "test/good", LOGICAL, STRUCTURAL)
IMAGE_COLUMNS = [
    "image_id", "scenario", "loco_folder", "stem", "labels", "n_defect_types",
    "image_path", "mask_paths", "width", "height", "scene",
]  # fmt: skip

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImagePlan:
    """One image to draw: where it goes and which defects it shows."""

    loco_folder: str  # e.g. "train/good", "test/logical_anomalies"
    index: int
    logical: tuple[str, ...] = ()
    structural: str | None = None

    @property
    def stem(self) -> str:
        return f"{self.index:03d}"

    @property
    def defects(self) -> tuple[str, ...]:
        return (*self.logical, self.structural) if self.structural else self.logical

    def image_id(self, scenario: str) -> str:
        return f"{scenario}/{self.loco_folder}/{self.stem}"


def plan_images(scenario: str, config: GeneratorConfig) -> list[ImagePlan]:
    """Every image of a scenario, in file order."""
    check_scenario(scenario)
    plans = [
        ImagePlan(loco_folder, i)
        for loco_folder, n in (
            ("train/good", config.train_good),
            ("validation/good", config.validation_good),
            ("test/good", config.test_good),
        )
        for i in range(n)
    ]
    logical = [(d,) for d in LOGICAL_DEFECTS[scenario] for _ in range(config.per_logical_class)]
    logical += [combo for combo in MULTI_COMBOS[scenario] for _ in range(config.per_multi_combo)]
    plans += [ImagePlan(LOGICAL, i, combo) for i, combo in enumerate(logical)]
    kinds = structural_defects(scenario)
    plans += [ImagePlan(STRUCTURAL, i, (), kinds[i % len(kinds)]) for i in range(config.structural)]
    return plans


def image_count(scenario: str, config: GeneratorConfig) -> int:
    """How many images :func:`generate_scenario` writes for ``scenario`` (for progress bars)."""
    return len(plan_images(scenario, config))


def image_rng(seed: int, scenario: str, plan: ImagePlan) -> np.random.Generator:
    """The independent random generator of one image."""
    key = [seed, zlib.crc32(scenario.encode()), zlib.crc32(plan.loco_folder.encode()), plan.index]
    return np.random.default_rng(np.random.SeedSequence(key))


def render_plan(scenario: str, plan: ImagePlan, config: GeneratorConfig) -> Scene:
    """Draw one planned image."""
    return render(
        scenario,
        image_rng(config.seed, scenario, plan),
        image_size(scenario, config.scale),
        frozenset(plan.logical),
        plan.structural,
    )


def generate_scenario(
    scenario: str, out_dir: Path, config: GeneratorConfig, progress: Progress | None = None
) -> Path:
    """(Re)write one scenario under ``out_dir`` and return the LOCO root ``out_dir/loco``.

    Safe against concurrent callers: the scenario is generated under a file lock.
    """
    check_scenario(scenario)
    out_dir = Path(out_dir)
    with _lock(out_dir, scenario):
        _generate_unlocked(scenario, out_dir, config, progress)
    return loco_root(out_dir)


def ensure_generated(
    scenario: str, out_dir: Path, config: GeneratorConfig, progress: Progress | None = None
) -> Path:
    """Return ``out_dir/loco`` with ``scenario`` generated for ``config``, reusing a matching tree.

    A tree is reused when its manifest names this generator version and this exact config and the
    files still hash to the manifest's content hashes; otherwise it is regenerated. Several
    processes may call this at once: one generates, the others wait and then reuse its result.
    """
    check_scenario(scenario)
    out_dir = Path(out_dir)
    with _lock(out_dir, scenario):
        if not is_current(scenario, out_dir, config):
            _generate_unlocked(scenario, out_dir, config, progress)
    return loco_root(out_dir)


def is_current(scenario: str, out_dir: Path, config: GeneratorConfig) -> bool:
    """Whether ``out_dir`` holds ``scenario`` exactly as this version would generate it for ``config``."""
    paths = _paths(Path(out_dir), scenario)
    try:
        manifest = json.loads(paths["manifest"].read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("version") != GENERATOR_VERSION or manifest.get("config") != config.to_dict():
        return False
    if not paths["tree"].is_dir() or not paths["objects"].is_file() or not paths["images"].is_file():
        return False
    return manifest.get("content_sha256") == _content_hash(paths)


def _lock(out_dir: Path, scenario: str) -> FileLock:
    lock_dir = out_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{scenario}.lock"))


def loco_root(out_dir: Path) -> Path:
    """The MVTec LOCO AD root of the data generated under ``out_dir``."""
    return Path(out_dir) / "loco"


def annotations_path(out_dir: Path, scenario: str) -> Path:
    """The instance annotations (object schema) of a scenario generated under ``out_dir``."""
    return _paths(Path(out_dir), scenario)["objects"]


def image_annotations_path(out_dir: Path, scenario: str) -> Path:
    """One row per image of a scenario generated under ``out_dir`` (``IMAGE_COLUMNS``)."""
    return _paths(Path(out_dir), scenario)["images"]


def read_manifest(out_dir: Path, scenario: str) -> dict[str, Any]:
    """The manifest of a scenario generated under ``out_dir``: version, config, counts, content hash."""
    return json.loads(_paths(Path(out_dir), scenario)["manifest"].read_text())


def _paths(out_dir: Path, scenario: str) -> dict[str, Path]:
    return {
        "tree": loco_root(out_dir) / scenario,
        "objects": out_dir / "annotations" / f"{scenario}.parquet",
        "images": out_dir / "annotations" / f"{scenario}_images.parquet",
        "manifest": out_dir / "manifest" / f"{scenario}.json",
    }


def _generate_unlocked(
    scenario: str, out_dir: Path, config: GeneratorConfig, progress: Progress | None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".staging-{scenario}-*"):  # left by a killed run; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{scenario}-", dir=out_dir))
    try:
        new = _paths(staging, scenario)
        _write_scenario(scenario, new, config, progress)
        manifest = {
            "generator": "models.synth",
            "version": GENERATOR_VERSION,
            "scenario": scenario,
            "config": config.to_dict(),
            "seed": config.seed,
            "image_size": list(image_size(scenario, config.scale)),
            "image_counts": _counts(plan_images(scenario, config)),
            "content_sha256": _content_hash(new),
        }
        new["manifest"].parent.mkdir(parents=True, exist_ok=True)
        new["manifest"].write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _install(new, _paths(out_dir, scenario), staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(new: dict[str, Path], old: dict[str, Path], staging: Path) -> None:
    """Move a staged scenario into place; the manifest is removed first and written last."""
    old["manifest"].unlink(missing_ok=True)
    old["tree"].parent.mkdir(parents=True, exist_ok=True)
    if old["tree"].exists():
        old["tree"].rename(staging / "previous-tree")  # a non-empty folder cannot be replaced in one step
    new["tree"].rename(old["tree"])
    for key in ("objects", "images", "manifest"):
        old[key].parent.mkdir(parents=True, exist_ok=True)
        os.replace(new[key], old[key])


def _counts(plans: list[ImagePlan]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in plans:
        counts[p.loco_folder] = counts.get(p.loco_folder, 0) + 1
    return counts


def _write_scenario(
    scenario: str, paths: dict[str, Path], config: GeneratorConfig, progress: Progress | None
) -> None:
    tree = paths["tree"]
    for folder in (
        *LOCO_FOLDERS,
        f"ground_truth/{LOGICAL.split('/')[1]}",
        f"ground_truth/{STRUCTURAL.split('/')[1]}",
    ):
        (tree / folder).mkdir(parents=True)  # every LOCO folder exists, even with no images in it
    values = pixel_values(scenario)
    order = {name: i for i, name in enumerate(values)}
    object_frames, image_rows = [], []
    smallest: dict[str, int] = {}  # defect name → its smallest drawn region, to cap the saturation thresholds
    for plan in plan_images(scenario, config):
        scene = render_plan(scenario, plan, config)
        image_path = f"{plan.loco_folder}/{plan.stem}.png"
        _write_png(tree / image_path, cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        mask_paths = []
        kind = plan.loco_folder.split("/")[-1]
        for n, name in enumerate(sorted(scene.defect_masks, key=order.__getitem__)):
            mask_path = f"ground_truth/{kind}/{plan.stem}/{n:03d}.png"
            _write_png(tree / mask_path, scene.defect_masks[name].astype(np.uint8) * np.uint8(values[name]))
            mask_paths.append(f"{scenario}/{mask_path}")
            area = int(scene.defect_masks[name].sum())
            smallest[name] = min(smallest.get(name, area), area)
        image_id = plan.image_id(scenario)
        object_frames.append(objects_to_frame(image_id, scene.objects))
        image_rows.append(_image_row(scenario, plan, scene, mask_paths))
        if progress is not None:
            progress(1)
    (tree / "defects_config.json").write_bytes(scaled_defects_config(scenario, config.scale, smallest))
    frames = [f for f in object_frames if len(f)]
    objects = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=OBJECT_COLUMNS)
    paths["objects"].parent.mkdir(parents=True, exist_ok=True)
    objects.to_parquet(paths["objects"], index=False)
    pd.DataFrame(image_rows, columns=IMAGE_COLUMNS).to_parquet(paths["images"], index=False)


def _image_row(scenario: str, plan: ImagePlan, scene: Scene, mask_paths: list[str]) -> dict[str, Any]:
    labels = list(plan.defects) or ["normal"]
    if sorted(scene.defect_masks) != sorted(plan.defects):
        raise RuntimeError(
            f"{plan.image_id(scenario)}: drew defect regions {sorted(scene.defect_masks)} "
            f"for planned defects {sorted(plan.defects)}"
        )
    h, w = scene.image.shape[:2]
    return {
        "image_id": plan.image_id(scenario),
        "scenario": scenario,
        "loco_folder": plan.loco_folder,
        "stem": plan.stem,
        "labels": labels,
        "n_defect_types": len(plan.defects),
        "image_path": f"{scenario}/{plan.loco_folder}/{plan.stem}.png",
        "mask_paths": mask_paths,
        "width": w,
        "height": h,
        "scene": json.dumps(scene.facts, sort_keys=True),
    }


def _write_png(path: Path, pixels: np.ndarray) -> None:
    """PNG with a fixed compression level, so equal pixels give equal bytes."""
    ok, data = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"could not encode {path} as PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def _files(paths: dict[str, Path]) -> Iterator[tuple[str, Path]]:
    tree = paths["tree"]
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            yield f"loco/{tree.name}/{p.relative_to(tree).as_posix()}", p
    for key in ("objects", "images"):
        yield f"annotations/{paths[key].name}", paths[key]


def _content_hash(paths: dict[str, Path]) -> str:
    """SHA-256 over every file's relative path and bytes: the LOCO tree and both annotation tables."""
    digest = hashlib.sha256()
    for name, path in _files(paths):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()

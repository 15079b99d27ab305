"""Grounding many images: a per-image cache, failure isolation, the attribute stage and the output table.

Grounding with SAM is the most expensive step before training, so each image's objects are kept in
a small JSON file keyed by the image's content hash under a folder keyed by the backend, its config,
its weights and the queries: re-running on the same images with the same settings reads them back
instead of recomputing, and changing any setting starts a fresh folder. Files are written to a
temporary name and renamed, so an interrupted run never leaves a half-written entry. One bad image
(unreadable file, model error) is logged with its path and recorded; the others go on.

Given the scenario spec, every backend's objects then go through the attribute stage
(:mod:`models.grounding.attributes`): each image's pixels are measured once inside its masks, the
thresholds are fitted on the normal training images (``normal_ids``) unless a calibration is
given, and every object gets the attributes its spec object declares. The cache holds the
backend's objects only, so a new calibration never needs a new segmentation. The calibration
travels with the ``grounding`` table, in its Parquet metadata (:func:`calibration_of`), so that
grounding the augmented images again uses the same thresholds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from models.atomic import write_text_atomic
from models.grounding.attributes import AttributeStage, Calibration, Measured
from models.grounding.base import GroundingBackend, ObjectQuery, check_queries
from models.images import read_rgb
from models.objects import OBJECT_COLUMNS, OBJECT_SCHEMA, ImageObject, objects_to_frame
from models.spec import ScenarioSpec

logger = logging.getLogger(__name__)

GROUNDING_COLUMNS = [*OBJECT_COLUMNS, "backend", "width", "height"]
# The key of the attribute calibration in the grounding table's ``attrs`` (pandas keeps them in Parquet).
CALIBRATION_KEY = "logicls.attribute_calibration"
GROUNDING_SCHEMA = pa.schema([*OBJECT_SCHEMA, pa.field("backend", pa.string()), pa.field("width", pa.int64()),
                              pa.field("height", pa.int64())])
IMAGE_COLUMNS = ["image_id", "image_path", "status", "width", "height", "n_objects", "seconds", "error"]
_INT_COLUMNS = ("object_id", "area", "width", "height")


@dataclass
class GroundingRun:
    """What :func:`ground_images` found.

    ``objects`` is the ``grounding`` table (object schema + ``backend``, ``width``, ``height``);
    ``images`` has one row per input image with ``status`` ``grounded``, ``cached`` or ``failed``
    and the error text, so callers can report images without objects and failures;
    ``calibration`` is the attribute stage's (None when no spec was given).
    """

    objects: pd.DataFrame
    images: pd.DataFrame
    calibration: Calibration | None = None

    @property
    def failures(self) -> pd.DataFrame:
        """The images that could not be grounded, with their path and error."""
        return self.images[self.images["status"] == "failed"]


def cache_folder(cache_dir: Path, backend: GroundingBackend, queries: Sequence[ObjectQuery]) -> Path:
    """The cache folder for this backend, config, weights and vocabulary (its settings.json says which)."""
    settings = {"backend": backend.fingerprint(), "queries": [dataclasses.asdict(q) for q in queries]}
    text = json.dumps(settings, sort_keys=True, default=str)
    folder = cache_dir / f"{backend.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if not (folder / "settings.json").is_file():
        write_text_atomic(folder / "settings.json", json.dumps(settings, indent=2, sort_keys=True, default=str))
    return folder


def _load_entry(path: Path) -> dict[str, Any] | None:
    """A cache entry, or None when absent or unreadable (then the image is simply grounded again)."""
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        entry["objects"] = [ImageObject(**o) for o in entry["objects"]]
        return entry
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring unreadable grounding cache entry %s: %s", path, err)
        return None


def _save_entry(path: Path, width: int, height: int, objects: Sequence[ImageObject]) -> None:
    """Store one image's objects (without its id: identical images under two ids share the entry)."""
    entry = {"width": width, "height": height, "objects": [dataclasses.asdict(o) for o in objects]}
    write_text_atomic(path, json.dumps(entry))


@dataclass
class _Found:
    """One image's backend objects, and the stage's measurements of them (None without a stage)."""

    status: str
    width: int
    height: int
    objects: list[ImageObject]
    measured: Measured | None = None


def _ground_one(
    backend: GroundingBackend,
    path: Path,
    queries: Sequence[ObjectQuery],
    folder: Path | None,
    stage: AttributeStage | None,
) -> _Found:
    """One image's objects, from the cache when it holds the image, measured by the stage."""
    data = path.read_bytes()
    entry_path = None
    found = None
    if folder is not None:
        digest = hashlib.sha256(data).hexdigest()
        entry_path = folder / digest[:2] / f"{digest}.json"
        entry = _load_entry(entry_path)
        if entry is not None:
            found = _Found("cached", int(entry["width"]), int(entry["height"]), entry["objects"])
    image = None
    if found is None:
        image = read_rgb(path, data)
        height, width = image.shape[:2]
        found = _Found("grounded", width, height, backend.ground(image, queries))
        if entry_path is not None:
            _save_entry(entry_path, width, height, found.objects)
    if stage is not None:
        found.measured = stage.measure(read_rgb(path, data) if image is None else image, found.objects)
    return found


def ground_images(
    backend: GroundingBackend,
    items: Iterable[tuple[str, str | Path]],
    queries: Sequence[ObjectQuery],
    cache_dir: str | Path | None = None,
    progress: bool = True,
    *,
    spec: ScenarioSpec | None = None,
    normal_ids: Collection[str] = (),
    calibration: Calibration | None = None,
) -> GroundingRun:
    """Ground every ``(image_id, image_path)``, reusing results cached in ``cache_dir`` (None: no cache).

    With ``spec``, the attribute stage writes the attributes its objects declare, calibrated on the
    images ``normal_ids`` (normal training images) unless ``calibration`` is given; a spec whose
    attributes neither the stage nor the backend can write fails here, before any image.
    """
    check_queries(queries)
    backend.validate(queries)
    stage = AttributeStage(spec, backend.name, backend.attributes) if spec is not None else None
    queries = list(queries)
    folder = cache_folder(Path(cache_dir), backend, queries) if cache_dir is not None else None
    found: dict[str, _Found] = {}
    images: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = len(items) if hasattr(items, "__len__") else None
    bar = tqdm(items, total=total, desc=f"grounding ({backend.name})", unit="img", disable=not progress)
    for image_id, image_path in bar:
        if image_id in seen:
            raise ValueError(f"image_id {image_id!r} is listed twice: every image must have a unique id")
        seen.add(image_id)
        record, result = _ground_item(backend, image_id, Path(image_path), queries, folder, stage)
        images.append(record)
        if result is not None:
            found[image_id] = result
    if stage is not None:
        if calibration is None:
            normal = set(normal_ids)
            calibration = stage.calibrate([f.measured for i, f in found.items() if i in normal and f.measured])
        for result in found.values():
            result.objects = stage.assign(result.measured, calibration) if result.measured else result.objects
    frames = [objects_to_frame(image_id, f.objects).assign(backend=backend.name, width=f.width, height=f.height)
              for image_id, f in found.items()]  # fmt: skip
    table = _objects_table(frames)
    if calibration is not None:
        table.attrs[CALIBRATION_KEY] = calibration.to_dict()
    return GroundingRun(table, pd.DataFrame(images, columns=IMAGE_COLUMNS), calibration)


def calibration_of(table: pd.DataFrame) -> Calibration | None:
    """The attribute calibration a ``grounding`` table was made with (None: grounded without a spec).

    It is stored in the table's Parquet metadata, readable without this package too:
    ``pd.read_parquet(path).attrs["logicls.attribute_calibration"]``.
    """
    data = table.attrs.get(CALIBRATION_KEY)
    return Calibration.from_dict(data) if data else None


def _ground_item(
    backend: GroundingBackend,
    image_id: str,
    path: Path,
    queries: Sequence[ObjectQuery],
    folder: Path | None,
    stage: AttributeStage | None,
) -> tuple[dict[str, Any], _Found | None]:
    """One image's row of :attr:`GroundingRun.images` and what was found (None when it failed)."""
    start = time.perf_counter()
    record: dict[str, Any] = {"image_id": image_id, "image_path": str(path), "error": ""}
    try:
        found = _ground_one(backend, path, queries, folder, stage)
    except Exception as err:
        logger.error("grounding failed for %s (%s): %s", image_id, path, err, exc_info=err)
        record |= {
            "status": "failed",
            "width": 0,
            "height": 0,
            "n_objects": 0,
            "error": f"{type(err).__name__}: {err}",
        }
        return record | {"seconds": time.perf_counter() - start}, None
    record |= {"status": found.status, "width": found.width, "height": found.height, "n_objects": len(found.objects)}
    return record | {"seconds": time.perf_counter() - start}, found


def _objects_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-image frames into the ``grounding`` table with fixed columns and integer dtypes."""
    frames = [f for f in frames if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=GROUNDING_COLUMNS)
    table = table[GROUNDING_COLUMNS]
    return table.astype({**dict.fromkeys(_INT_COLUMNS, "int64"), "score": "float64"})

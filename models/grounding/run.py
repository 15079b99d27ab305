"""Grounding many images: a per-image cache, failure isolation and the output table.

Grounding with SAM is the most expensive step before training, so each image's objects are kept in
a small JSON file keyed by the image's content hash under a folder keyed by the backend, its config,
its weights and the queries: re-running on the same images with the same settings reads them back
instead of recomputing, and changing any setting starts a fresh folder. Files are written to a
temporary name and renamed, so an interrupted run never leaves a half-written entry. One bad image
(unreadable file, model error) is logged with its path and recorded; the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from models.atomic import write_text_atomic
from models.grounding.base import GroundingBackend, ObjectQuery, check_queries
from models.images import read_rgb
from models.objects import OBJECT_COLUMNS, OBJECT_SCHEMA, ImageObject, objects_to_frame

logger = logging.getLogger(__name__)

GROUNDING_COLUMNS = [*OBJECT_COLUMNS, "backend", "width", "height"]
GROUNDING_SCHEMA = pa.schema([*OBJECT_SCHEMA, pa.field("backend", pa.string()), pa.field("width", pa.int64()),
                              pa.field("height", pa.int64())])
IMAGE_COLUMNS = ["image_id", "image_path", "status", "width", "height", "n_objects", "seconds", "error"]
_INT_COLUMNS = ("object_id", "area", "width", "height")


@dataclass
class GroundingRun:
    """What :func:`ground_images` found.

    ``objects`` is the ``grounding`` table (object schema + ``backend``, ``width``, ``height``);
    ``images`` has one row per input image with ``status`` ``grounded``, ``cached`` or ``failed``
    and the error text, so callers can report images without objects and failures.
    """

    objects: pd.DataFrame
    images: pd.DataFrame

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


def _ground_one(
    backend: GroundingBackend, path: Path, queries: Sequence[ObjectQuery], folder: Path | None
) -> tuple[str, int, int, list[ImageObject]]:
    """``(status, width, height, objects)`` of one image, from the cache when it holds the image."""
    data = path.read_bytes()
    entry_path = None
    if folder is not None:
        digest = hashlib.sha256(data).hexdigest()
        entry_path = folder / digest[:2] / f"{digest}.json"
        entry = _load_entry(entry_path)
        if entry is not None:
            return "cached", int(entry["width"]), int(entry["height"]), entry["objects"]
    image = read_rgb(path, data)
    height, width = image.shape[:2]
    objects = backend.ground(image, queries)
    if entry_path is not None:
        _save_entry(entry_path, width, height, objects)
    return "grounded", width, height, objects


def ground_images(
    backend: GroundingBackend,
    items: Iterable[tuple[str, str | Path]],
    queries: Sequence[ObjectQuery],
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> GroundingRun:
    """Ground every ``(image_id, image_path)``, reusing results cached in ``cache_dir`` (None: no cache)."""
    check_queries(queries)
    backend.validate(queries)
    queries = list(queries)
    folder = cache_folder(Path(cache_dir), backend, queries) if cache_dir is not None else None
    frames: list[pd.DataFrame] = []
    images: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = len(items) if hasattr(items, "__len__") else None
    bar = tqdm(items, total=total, desc=f"grounding ({backend.name})", unit="img", disable=not progress)
    for image_id, image_path in bar:
        if image_id in seen:
            raise ValueError(f"image_id {image_id!r} is listed twice: every image must have a unique id")
        seen.add(image_id)
        record, frame = _ground_item(backend, image_id, Path(image_path), queries, folder)
        images.append(record)
        if frame is not None:
            frames.append(frame)
    return GroundingRun(objects=_objects_table(frames), images=pd.DataFrame(images, columns=IMAGE_COLUMNS))


def _ground_item(
    backend: GroundingBackend, image_id: str, path: Path, queries: Sequence[ObjectQuery], folder: Path | None
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """One image's row of :attr:`GroundingRun.images` and its objects (None when it failed)."""
    start = time.perf_counter()
    record: dict[str, Any] = {"image_id": image_id, "image_path": str(path), "error": ""}
    try:
        status, width, height, objects = _ground_one(backend, path, queries, folder)
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
    frame = objects_to_frame(image_id, objects).assign(backend=backend.name, width=width, height=height)
    record |= {"status": status, "width": width, "height": height, "n_objects": len(objects)}
    return record | {"seconds": time.perf_counter() - start}, frame


def _objects_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-image frames into the ``grounding`` table with fixed columns and integer dtypes."""
    frames = [f for f in frames if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=GROUNDING_COLUMNS)
    table = table[GROUNDING_COLUMNS]
    return table.astype({**dict.fromkeys(_INT_COLUMNS, "int64"), "score": "float64"})

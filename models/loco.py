"""Reading and validating an MVTec LOCO AD tree (the real data set or the generated one).

The reader turns a scenario folder into one record per image with its anomaly classes, which come
from the ground-truth masks: each distinct non-zero pixel value of an image's mask files is one
defect type, named through the scenario's ``defects_config.json``. Types are counted, not files,
so an image with two mask files of one type is a single-anomaly image.

Errors name the offending file and say how to fix it, because users point this at data sets they
unpacked by hand. A pixel value that ``defects_config.json`` does not list is not fatal: real data
can contain such values, so the image is left out with a warning and reported.

Every image and mask is decoded in full here, once (in a thread pool: PIL decodes without the GIL),
so that a damaged file is found when it enters and not stages later. A file that does not decode
(truncated, not a PNG, over PIL's decompression-bomb limit) is damage to that one file: its image is
left out and reported the same way, with the fix. A mask in the wrong format (another size than its
image, colour channels that differ, 16 bits per pixel) is a conversion mistake that would repeat
over the whole data set, so it stops the scan with an error naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

NORMAL = "normal"
IMAGE_SUFFIX = ".png"

TRAIN_GOOD = "train/good"
TEST_GOOD = "test/good"
TEST_LOGICAL = "test/logical_anomalies"
GT_LOGICAL = "ground_truth/logical_anomalies"

DECODE_WORKERS = min(8, os.cpu_count() or 1)
"""Threads that decode images during a scan (bounded: steps of several runs may share a machine)."""
# What PIL raises for a file it cannot decode (truncated data, broken chunks, not an image at all).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)

LAYOUT_HINT = (
    "An MVTec LOCO AD root holds <root>/<scenario>/{train/good, validation/good, test/good, "
    "test/logical_anomalies, ground_truth/logical_anomalies/NNN/*.png, defects_config.json}. "
    "Point LOGICLS_DATA_ROOT at such a root, or unset it to use the generated data set."
)


class LocoFormatError(ValueError):
    """The folder is not a valid MVTec LOCO AD scenario folder; the message names the file and the fix."""


@dataclass(frozen=True)
class DefectType:
    """One entry of ``defects_config.json``."""

    name: str
    pixel_value: int
    saturation_threshold: float
    relative_saturation: bool


@dataclass(frozen=True)
class LocoImage:
    """One image of a scenario with the classes its masks show (``("normal",)`` for good images)."""

    image_id: str
    scenario: str
    loco_folder: str  # where it lies in the scenario folder, e.g. test/logical_anomalies
    image_path: Path
    mask_paths: tuple[Path, ...]
    labels: tuple[str, ...]
    width: int
    height: int

    @property
    def n_defect_types(self) -> int:
        return 0 if self.labels == (NORMAL,) else len(self.labels)


@dataclass(frozen=True)
class ExcludedImage:
    """An image left out of the re-split, and why (``unreadable_file``: the image or mask that does not decode)."""

    image_path: Path
    reason: str
    unknown_pixel_values: tuple[int, ...] = ()
    unreadable_file: Path | None = None


class UndecodableFile(Exception):
    """An image or mask file that PIL cannot decode: what is wrong and how to fix it."""

    def __init__(self, path: Path, error: BaseException) -> None:
        self.path = path
        if isinstance(error, Image.DecompressionBombError):
            self.problem, self.fix = f"is too large to decode safely ({error})", "downscale it"
        else:
            self.problem = f"does not decode ({error.__class__.__name__}: {error})"
            self.fix = "restore it from the archive (or delete the image and its mask folder)"
        super().__init__(f"{path} {self.problem}: {self.fix}")


@dataclass
class LocoScenario:
    """The readable part of one scenario folder: good images, logical anomalies, and what was left out."""

    scenario: str
    root: Path
    defect_types: list[DefectType]
    images: list[LocoImage] = field(default_factory=list)
    excluded: list[ExcludedImage] = field(default_factory=list)

    def in_folder(self, loco_folder: str) -> list[LocoImage]:
        return [im for im in self.images if im.loco_folder == loco_folder]


def make_image_id(scenario: str, loco_folder: str, stem: str) -> str:
    """The project-wide image id, e.g. ``pushpins/test/logical_anomalies/003``."""
    return f"{scenario}/{loco_folder}/{stem}"


def read_defects_config(path: Path) -> list[DefectType]:
    """Parse and validate ``defects_config.json``; every problem names the file and the fix."""
    fix = (
        'it must be a JSON list of {"defect_name": str, "pixel_value": int 1-255, '
        '"saturation_threshold": number, "relative_saturation": bool}; copy it from the original archive'
    )
    if not path.is_file():
        raise LocoFormatError(f"{path} is missing: {fix}.")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LocoFormatError(f"{path} is not valid JSON ({exc}): {fix}.") from None
    if not isinstance(entries, list) or not entries:
        raise LocoFormatError(f"{path} must hold a non-empty list: {fix}.")
    defects = [_parse_defect_entry(path, i, entry, fix) for i, entry in enumerate(entries)]
    for attr in ("name", "pixel_value"):
        values = [getattr(d, attr) for d in defects]
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise LocoFormatError(f"{path}: duplicate {attr} {', '.join(dupes)}: each must be unique.")
    return defects


def _parse_defect_entry(path: Path, index: int, entry: object, fix: str) -> DefectType:
    where = f"{path}, entry {index}"
    if not isinstance(entry, dict):
        raise LocoFormatError(f"{where} is {type(entry).__name__}, not an object: {fix}.")
    missing = [k for k in ("defect_name", "pixel_value") if k not in entry]
    if missing:
        raise LocoFormatError(f"{where} lacks {', '.join(missing)}: {fix}.")
    name, value = entry["defect_name"], entry["pixel_value"]
    if not isinstance(name, str) or not name:
        raise LocoFormatError(f"{where}: defect_name must be a non-empty string, got {name!r}.")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
        raise LocoFormatError(f"{where} ({name}): pixel_value must be an integer 1-255, got {value!r}.")
    threshold, relative = entry.get("saturation_threshold", 1.0), entry.get("relative_saturation", True)
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise LocoFormatError(f"{where} ({name}): saturation_threshold must be a number, got {threshold!r}.") from None
    if not isinstance(relative, bool):
        raise LocoFormatError(f"{where} ({name}): relative_saturation must be true or false, got {relative!r}.")
    return DefectType(name=name, pixel_value=value, saturation_threshold=threshold, relative_saturation=relative)


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise LocoFormatError(f"Folder missing: {path}. {LAYOUT_HINT}")
    return path


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == IMAGE_SUFFIX and p.is_file())


def _decoded(path: Path) -> Image.Image:
    """The image with every pixel decoded (``Image.open`` alone reads only the header)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except _DECODE_ERRORS as exc:
        raise UndecodableFile(path, exc) from None


def decoded_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image whose pixels all decode; :class:`UndecodableFile` otherwise."""
    return _decoded(path).size


def read_mask_values(path: Path, expected_size: tuple[int, int], image_path: Path) -> set[int]:
    """The distinct non-zero pixel values of one mask PNG, after checking it matches its image."""
    im = _decoded(path)
    size, mode = im.size, im.mode
    array = np.asarray(im)
    if size != expected_size:
        raise LocoFormatError(
            f"Mask {path} is {size[0]}x{size[1]} but its image {image_path} is "
            f"{expected_size[0]}x{expected_size[1]} (width x height): masks must have the image's size."
        )
    if array.dtype != np.uint8 and mode != "1":
        raise LocoFormatError(
            f"Mask {path} is a {array.dtype.itemsize * 8}-bit PNG (mode {mode}): masks must be 8-bit grayscale "
            "PNGs holding the pixel values of defects_config.json; re-save it as 8-bit."
        )
    if array.ndim == 3:  # RGB(A) saved masks: LOCO masks are grey, so every channel holds the value
        if mode not in ("RGB", "RGBA") or not (array[..., 0] == array[..., 1]).all():
            raise LocoFormatError(
                f"Mask {path} has colour channels that differ: masks must be 8-bit grayscale PNGs."
            )
        array = array[..., 0]
    return {int(v) for v in np.unique(array) if v != 0}


def scan_loco_scenario(root: Path, scenario: str) -> LocoScenario:
    """Read ``<root>/<scenario>``: good images of train and test, and every logical anomaly.

    Every image and mask is decoded (see the module docstring); validation and structural images
    are not part of LOCO FC and are not read.
    """
    folder = _require_dir(Path(root) / scenario)
    defects = read_defects_config(folder / "defects_config.json")
    by_value = {d.pixel_value: d.name for d in defects}
    good = [(loco_folder, path) for loco_folder in (TRAIN_GOOD, TEST_GOOD)
            for path in _list_images(_require_dir(folder / loco_folder))]
    gt_dir = folder / GT_LOGICAL
    logical = _list_images(_require_dir(folder / TEST_LOGICAL))
    if logical:
        _require_dir(gt_dir)
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS, thread_name_prefix="loco-decode") as pool:
        records = [
            *pool.map(lambda job: _read_good_image(scenario, *job), good),
            *pool.map(lambda path: _read_logical_image(scenario, path, gt_dir / path.stem, by_value), logical),
        ]
    found = LocoScenario(scenario=scenario, root=folder, defect_types=defects)
    for record in records:
        if isinstance(record, ExcludedImage):
            logger.warning("%s", record.reason)
            found.excluded.append(record)
        else:
            found.images.append(record)
    return found


def _read_good_image(scenario: str, loco_folder: str, path: Path) -> LocoImage | ExcludedImage:
    try:
        width, height = decoded_size(path)
    except UndecodableFile as exc:
        return _unreadable(path, exc)
    return LocoImage(make_image_id(scenario, loco_folder, path.stem), scenario, loco_folder, path, (), (NORMAL,), width,
                     height)


def _unreadable(image_path: Path, exc: UndecodableFile) -> ExcludedImage:
    if exc.path == image_path:
        reason = f"Image {image_path} {exc.problem}: it is left out; {exc.fix}."
    else:
        reason = f"Mask {exc.path} {exc.problem}: its image {image_path} is left out; {exc.fix}."
    return ExcludedImage(image_path, reason, unreadable_file=exc.path)


def _read_logical_image(
    scenario: str, path: Path, mask_dir: Path, by_value: dict[int, str]
) -> LocoImage | ExcludedImage:
    if not mask_dir.is_dir():
        raise LocoFormatError(
            f"Anomalous image {path} has no mask folder {mask_dir}: every image under "
            f"{TEST_LOGICAL} needs ground_truth masks (restore the folder from the archive, or remove the image)."
        )
    masks = _list_images(mask_dir)
    if not masks:
        raise LocoFormatError(f"Mask folder {mask_dir} holds no PNG files: restore its masks from the archive.")
    try:
        size = decoded_size(path)
        values: set[int] = set()
        for mask in masks:
            values |= read_mask_values(mask, size, path)
    except UndecodableFile as exc:
        return _unreadable(path, exc)
    unknown = sorted(v for v in values if v not in by_value)
    if unknown:
        return ExcludedImage(
            path,
            f"{mask_dir}: pixel value(s) {unknown} are not in defects_config.json; image {path} is left out "
            "(add the defect type to defects_config.json to use it).",
            tuple(unknown),
        )
    if not values:
        return ExcludedImage(path, f"{mask_dir}: every mask is empty; image {path} is left out.")
    labels = tuple(sorted(by_value[v] for v in values))
    return LocoImage(
        make_image_id(scenario, TEST_LOGICAL, path.stem), scenario, TEST_LOGICAL, path, tuple(masks), labels,
        *size,
    )


"""Reading and validating an MVTec LOCO AD tree (the real data set or the generated one).

The reader turns a category folder into one record per image with its anomaly classes, which come
from the ground-truth masks: each distinct non-zero pixel value of an image's mask files is one
defect type, named through the category's ``defects_config.json``. Types are counted, not files,
so an image with two mask files of one type is a single-anomaly image.

Errors name the offending file and say how to fix it, because users point this at data sets they
unpacked by hand. A pixel value that ``defects_config.json`` does not list is not fatal: real data
can contain such values, so the image is left out with a warning and reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

LOCO_CATEGORIES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
NORMAL = "normal"
IMAGE_SUFFIX = ".png"

TRAIN_GOOD = "train/good"
VALIDATION_GOOD = "validation/good"
TEST_GOOD = "test/good"
TEST_LOGICAL = "test/logical_anomalies"
TEST_STRUCTURAL = "test/structural_anomalies"
GT_LOGICAL = "ground_truth/logical_anomalies"

LAYOUT_HINT = (
    "An MVTec LOCO AD root holds <root>/<category>/{train/good, validation/good, test/good, "
    "test/logical_anomalies, ground_truth/logical_anomalies/NNN/*.png, defects_config.json}. "
    "Point LOGICLS_DATA_ROOT at such a root, or unset it to use the generated data set."
)


class LocoFormatError(ValueError):
    """The folder is not a valid MVTec LOCO AD category; the message names the file and the fix."""


@dataclass(frozen=True)
class DefectType:
    """One entry of ``defects_config.json``."""

    name: str
    pixel_value: int
    saturation_threshold: float
    relative_saturation: bool


@dataclass(frozen=True)
class LocoImage:
    """One image of a category with the classes its masks show (``("normal",)`` for good images)."""

    image_id: str
    scenario: str
    source: str
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
    """An image left out of the re-split, and why."""

    image_path: Path
    reason: str
    unknown_pixel_values: tuple[int, ...] = ()


@dataclass
class LocoCategory:
    """The readable part of one category: good images, logical anomalies, and what was left out."""

    scenario: str
    root: Path
    defect_types: list[DefectType]
    images: list[LocoImage] = field(default_factory=list)
    excluded: list[ExcludedImage] = field(default_factory=list)

    def by_source(self, source: str) -> list[LocoImage]:
        return [im for im in self.images if im.source == source]


def make_image_id(scenario: str, source: str, stem: str) -> str:
    """The project-wide image id, e.g. ``pushpins/test/logical_anomalies/003``."""
    return f"{scenario}/{source}/{stem}"


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
    return DefectType(
        name=name,
        pixel_value=value,
        saturation_threshold=float(entry.get("saturation_threshold", 1.0)),
        relative_saturation=bool(entry.get("relative_saturation", True)),
    )


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise LocoFormatError(f"Folder missing: {path}. {LAYOUT_HINT}")
    return path


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == IMAGE_SUFFIX and p.is_file())


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header, with a clear error for a file that is no image."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise LocoFormatError(
            f"Unreadable image {path} ({exc.__class__.__name__}: {exc}): replace it with the original "
            "file from the archive, or delete it (and its mask folder)."
        ) from None


def read_mask_values(path: Path, expected_size: tuple[int, int], image_path: Path) -> set[int]:
    """The distinct non-zero pixel values of one mask PNG, after checking it matches its image."""
    try:
        with Image.open(path) as im:
            im.load()
            size, mode = im.size, im.mode
            array = np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise LocoFormatError(
            f"Unreadable mask {path} ({exc.__class__.__name__}: {exc}): restore it from the archive."
        ) from None
    if size != expected_size:
        raise LocoFormatError(
            f"Mask {path} is {size[0]}x{size[1]} but its image {image_path} is "
            f"{expected_size[0]}x{expected_size[1]} (width x height): masks must have the image's size."
        )
    if array.ndim == 3:  # RGB(A) saved masks: LOCO masks are grey, so every channel holds the value
        if mode not in ("RGB", "RGBA") or not (array[..., 0] == array[..., 1]).all():
            raise LocoFormatError(
                f"Mask {path} has colour channels that differ: masks must be 8-bit grayscale PNGs."
            )
        array = array[..., 0]
    return {int(v) for v in np.unique(array) if v != 0}


def scan_category(root: Path, scenario: str) -> LocoCategory:
    """Read ``<root>/<scenario>``: good images of train and test, and every logical anomaly.

    Validation and structural images are not part of LOCO FC and are not read.
    """
    cat_dir = _require_dir(Path(root) / scenario)
    defects = read_defects_config(cat_dir / "defects_config.json")
    by_value = {d.pixel_value: d.name for d in defects}
    category = LocoCategory(scenario=scenario, root=cat_dir, defect_types=defects)
    for source in (TRAIN_GOOD, TEST_GOOD):
        for path in _list_images(_require_dir(cat_dir / source)):
            width, height = image_size(path)
            category.images.append(
                LocoImage(make_image_id(scenario, source, path.stem), scenario, source, path, (), (NORMAL,),
                          width, height)
            )
    gt_dir = cat_dir / GT_LOGICAL
    logical = _list_images(_require_dir(cat_dir / TEST_LOGICAL))
    if logical:
        _require_dir(gt_dir)
    for path in logical:
        record = _read_logical_image(scenario, path, gt_dir / path.stem, by_value)
        if isinstance(record, ExcludedImage):
            logger.warning("%s", record.reason)
            category.excluded.append(record)
        else:
            category.images.append(record)
    return category


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
    size = image_size(path)
    values: set[int] = set()
    for mask in masks:
        values |= read_mask_values(mask, size, path)
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


def logical_defect_names(category: LocoCategory) -> list[str]:
    """The anomaly classes that occur among the category's logical test images, sorted."""
    return sorted({label for im in category.images for label in im.labels if label != NORMAL})


def count_labels(images: Iterable[LocoImage]) -> dict[str, int]:
    """Images per class (a multi-anomaly image counts once for each of its classes)."""
    counts: dict[str, int] = {}
    for im in images:
        for label in im.labels:
            counts[label] = counts.get(label, 0) + 1
    return counts

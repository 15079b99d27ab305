"""Objects found in an image: one record type shared by grounding and the generator's annotations.

Grounding (CLIP + SAM, or the classical segmenter) and the data generator describe every object
the same way, so that later stages can measure one against the other and so the chain of thought
can cite boxes in pixel coordinates of the original image.

Conventions
-----------
* ``bbox`` is ``[x0, y0, x1, y1]`` in integer pixels of the original image, ``x1``/``y1`` exclusive
  (``x1 - x0`` is the width).
* ``centroid`` is ``[cx, cy]``, the mean pixel position of the mask.
* ``mask_rle`` is COCO's compressed run-length encoding, ``{"size": [h, w], "counts": str}``,
  column-major like pycocotools, so the masks open with ``pycocotools.mask.decode`` as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

OBJECT_COLUMNS = [
    "image_id",
    "object_id",
    "label",
    "score",
    "bbox",
    "area",
    "centroid",
    "mask_rle",
    "attributes",
]
OBJECT_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("object_id", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
    ("bbox", pa.list_(pa.int64())), ("area", pa.int64()), ("centroid", pa.list_(pa.float64())),
    ("mask_rle", pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())])), ("attributes", pa.string()),
])  # fmt: skip


@dataclass
class ImageObject:
    """One object of one image."""

    label: str
    bbox: list[int]
    area: int
    centroid: list[float]
    mask_rle: dict[str, Any]
    score: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> int:
        return self.bbox[3] - self.bbox[1]

    def mask(self) -> np.ndarray:
        """The object's boolean mask at the size of the original image."""
        return rle_decode(self.mask_rle)


def object_from_mask(
    mask: np.ndarray, label: str, score: float = 1.0, attributes: dict[str, Any] | None = None
) -> ImageObject:
    """Describe a boolean mask as an :class:`ImageObject`; raises on an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError(f"empty mask for object {label!r}")
    return ImageObject(
        label=label,
        bbox=[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
        area=int(xs.size),
        centroid=[float(xs.mean()), float(ys.mean())],
        mask_rle=rle_encode(mask),
        score=float(score),
        attributes=dict(attributes or {}),
    )


# --- the codec: objects to and from table rows and JSON ----------------------------------------
# Two stored forms, one record: a table holds one row per object (``attributes`` as a JSON text
# cell, since its keys differ from label to label); a JSON column holds one image's objects as a
# list of the same records (``attributes`` nested). Both are written and read here only.


def objects_to_frame(image_id: str, objects: Sequence[ImageObject]) -> pd.DataFrame:
    """Rows in the shared object schema (:data:`OBJECT_COLUMNS`) for one image."""
    rows = [
        {"image_id": image_id, **_record(i, o), "attributes": encode_attributes(o.attributes)}
        for i, o in enumerate(objects)
    ]
    return pd.DataFrame(rows, columns=OBJECT_COLUMNS)


def objects_from_frame(df: pd.DataFrame) -> dict[str, list[ImageObject]]:
    """Group rows of the shared object schema back into objects per ``image_id``."""
    grouped: dict[str, list[ImageObject]] = {}
    for row in df.sort_values(["image_id", "object_id"]).to_dict("records"):
        row["attributes"] = decode_attributes(row.get("attributes"))
        grouped.setdefault(row["image_id"], []).append(_from_record(row))
    return grouped


def objects_to_json(objects: Sequence[ImageObject]) -> str:
    """One image's objects as a JSON list of records (``object_id`` is the list position)."""
    return json.dumps([_record(i, o) for i, o in enumerate(objects)])


def objects_from_json(text: str) -> list[ImageObject]:
    """Inverse of :func:`objects_to_json`."""
    return [_from_record(record) for record in json.loads(text)]


def encode_attributes(attributes: dict[str, Any]) -> str:
    """The ``attributes`` cell of an object row: JSON with sorted keys."""
    return json.dumps(attributes, sort_keys=True)


def decode_attributes(cell: object) -> dict[str, Any]:
    """An ``attributes`` cell read back (an empty or missing cell is no attributes)."""
    return json.loads(cell) if isinstance(cell, str) and cell else {}


def _record(object_id: int, obj: ImageObject) -> dict[str, Any]:
    """The stored form of one object, plain Python types only (``attributes`` still a dict)."""
    return {
        "object_id": object_id,
        "label": obj.label,
        "score": float(obj.score),
        "bbox": [int(v) for v in obj.bbox],
        "area": int(obj.area),
        "centroid": [float(v) for v in obj.centroid],
        "mask_rle": {"size": [int(v) for v in obj.mask_rle["size"]], "counts": obj.mask_rle["counts"]},
        "attributes": obj.attributes,
    }


def _from_record(record: dict[str, Any]) -> ImageObject:
    rle = record["mask_rle"]
    return ImageObject(
        label=record["label"],
        bbox=[int(v) for v in record["bbox"]],
        area=int(record["area"]),
        centroid=[float(v) for v in record["centroid"]],
        mask_rle={"size": [int(v) for v in rle["size"]], "counts": rle["counts"]},
        score=float(record["score"]),
        attributes=record["attributes"],
    )


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes (exclusive ends)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --- COCO compressed RLE -------------------------------------------------------------------


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed run lengths of a mask in column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return [0, *runs] if flat[0] else runs


def _compress(counts: Iterable[int]) -> str:
    """COCO's LEB128-like string form of run lengths (pycocotools ``rleToString``)."""
    counts = list(counts)
    out: list[str] = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _decompress(text: str) -> list[int]:
    """Inverse of :func:`_compress` (pycocotools ``rleFrString``)."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a 2-D boolean mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _compress(rle_counts(mask))}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Boolean mask from COCO RLE (compressed string or a list of run lengths)."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    runs = _decompress(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(runs) != h * w:
        raise ValueError(f"RLE runs sum to {sum(runs)}, expected {h * w} for size {h}x{w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T

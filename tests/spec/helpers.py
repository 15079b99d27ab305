"""Helpers of the spec tests: the test data directory and a factory for grounded objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.objects import ImageObject

DATA = Path(__file__).parent / "data"


def make_object(label: str, cx: float, cy: float, w: int = 40, h: int = 40, **attributes: Any) -> ImageObject:
    """An object centred at (cx, cy); measures read only labels, boxes, centroids and attributes."""
    x0, y0 = int(cx - w / 2), int(cy - h / 2)
    return ImageObject(
        label=label,
        bbox=[x0, y0, x0 + w, y0 + h],
        area=w * h,
        centroid=[float(cx), float(cy)],
        mask_rle={"size": [1000, 1700], "counts": ""},
        attributes=attributes,
    )

"""Pictures of grounding results (boxes, labels, tinted masks) for the asset's UI metadata."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import cv2
import numpy as np

from models.objects import ImageObject

# Distinct, saturated RGB colours; a label always gets the same one (hash of its name).
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
]


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable colour for a label, the same in every picture."""
    return PALETTE[int(hashlib.md5(label.encode()).hexdigest(), 16) % len(PALETTE)]


def draw_overlay(
    image: np.ndarray, objects: Sequence[ImageObject], mask_alpha: float = 0.35, show_scores: bool = True
) -> np.ndarray:
    """A copy of the RGB ``image`` with each object's mask tinted, its box drawn and its label written.

    Line width and font scale grow with the image so labels stay legible on 1600-pixel LOCO images.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"draw_overlay needs an H×W×3 RGB image, got shape {out.shape}")
    scale = max(out.shape[:2]) / 800
    thickness, font_scale = max(1, round(2 * scale)), 0.5 * max(scale, 0.6)
    for obj in objects:
        colour = np.array(label_colour(obj.label), dtype=np.float32)
        if mask_alpha > 0:
            mask = obj.mask()
            if mask.shape != out.shape[:2]:
                raise ValueError(f"object {obj.label!r} has a {mask.shape} mask for a {out.shape[:2]} image")
            out[mask] = ((1 - mask_alpha) * out[mask] + mask_alpha * colour).astype(np.uint8)
    for obj in objects:
        colour = label_colour(obj.label)
        x0, y0, x1, y1 = obj.bbox
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, thickness)
        text = f"{obj.label} {obj.score:.2f}" if show_scores else obj.label
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness // 2))
        ty = y0 - base - 2 if y0 - th - base - 2 >= 0 else min(out.shape[0] - 1, y1 + th + 2)
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty + base), colour, cv2.FILLED)
        cv2.putText(
            out,
            text,
            (x0 + 1, ty),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            max(1, thickness // 2),
            cv2.LINE_AA,
        )
    return out

"""Tiny random-weight SAM and CLIP, saved to local files like real checkpoints, for tests and smoke runs.

They load through :mod:`models.grounding.weights` exactly as the official files do, so a run with
them checks the whole ``clip_sam`` plumbing in about a second per image on a CPU. Their output is
meaningless: with random weights SAM's quality estimates are near zero, so
:func:`tiny_grounding_config` switches SAM's quality filters off for masks to flow through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file

from models.atomic import default_modes
from models.grounding.base import GroundingConfig
from models.grounding.weights import SAM_BUILDERS, TINY_CLIP_MODEL, TINY_SAM_TYPE, register_clip_configs


def save_tiny_sam(path: str | Path, seed: int = 0) -> Path:
    """Save a random tiny SAM (encoder dim 96, depth 2, 2 heads; stock decoder) as a ``.pth`` state dict."""
    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(SAM_BUILDERS[TINY_SAM_TYPE]().state_dict(), path)
    return path


def save_tiny_clip(path: str | Path, seed: int = 0) -> Path:
    """Save a random ``LogiCls-Tiny-CLIP`` as ``.safetensors``, or a ``.pt`` state dict for other suffixes."""
    register_clip_configs()
    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = open_clip.create_model(TINY_CLIP_MODEL).state_dict()
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        default_modes(path)  # safetensors writes 0600
    else:
        torch.save(state, path)
    return path


def tiny_grounding_config(directory: str | Path, **overrides: Any) -> GroundingConfig:
    """A ``clip_sam`` config on tiny models saved under ``directory`` (written once, then reused).

    SAM's quality and duplicate filters are off and CLIP's minimum score is zero, since random
    weights would otherwise leave no mask to name; few points keep it fast.
    """
    directory = Path(directory)
    sam_path, clip_path = directory / "tiny_sam.pth", directory / "tiny_clip.safetensors"
    if not sam_path.is_file():
        save_tiny_sam(sam_path)
    if not clip_path.is_file():
        save_tiny_clip(clip_path)
    settings: dict[str, Any] = {
        "backend": "clip_sam",
        "sam_model_type": TINY_SAM_TYPE,
        "sam_checkpoint": str(sam_path),
        "clip_model": TINY_CLIP_MODEL,
        "clip_weights": str(clip_path),
        "clip_pretrained_tag": "",
        "points_per_side": 4,
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
        "min_score": 0.0,
        "max_area_fraction": 1.0,
        "dedup_iou": 0.9,
        **overrides,
    }
    return GroundingConfig(**settings)

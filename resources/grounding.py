"""The grounding resource: which open-vocabulary segmenter runs, with which weights and thresholds."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from models.grounding import GroundingBackend, GroundingConfig, build_backend


class Grounder(ConfigurableResource):
    """Open-vocabulary grounding (CLIP + SAM, or the weight-free ``classical`` segmenter).

    Checkpoints are local files only: ``sam_checkpoint`` (e.g. ``sam_vit_h_4b8939.pth``) and
    ``clip_weights`` (an open_clip ``.pt`` / ``.safetensors`` for ``clip_model``).
    """

    backend: str = Field(
        default="classical",
        description="clip_sam (the method's) or classical (no weights; only the five generated scenarios' objects).",
    )
    device: str = Field(default="auto", description="auto = cuda:<LOCAL_RANK> when CUDA is present, else cpu.")
    precision: str = Field(default="auto",
                           description="auto = bf16 on a CUDA device that supports it, else fp32; or fp32/bf16/fp16.")
    sam_model_type: str = Field(default="vit_h", description="vit_h, vit_l or vit_b.")
    sam_checkpoint: str = Field(default="", description="Local SAM checkpoint file.")
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    clip_model: str = Field(default="ViT-L-14", description="open_clip model name.")
    clip_weights: str = Field(default="", description="Local open_clip weights file.")
    clip_pretrained_tag: str = "datacomp_xl_s13b_b90k"
    clip_batch_size: int = 32
    min_score: float = 0.3
    min_object_area: int = 64
    max_area_fraction: float = 0.85
    dedup_iou: float = 0.7
    cache_dir: str = Field(description="Per-image results are cached here, keyed by image content and config.")

    def grounding_config(self) -> GroundingConfig:
        fields = self.model_dump(exclude={"cache_dir"})
        return GroundingConfig(**fields)

    def build(self) -> GroundingBackend:
        """Load the backend's models (clear errors for missing checkpoint files)."""
        return build_backend(self.grounding_config())

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)


GROUNDER_ENV = {
    "backend": "LOGICLS_GROUNDING_BACKEND",
    "sam_model_type": "LOGICLS_SAM_MODEL_TYPE",
    "sam_checkpoint": "LOGICLS_SAM_CHECKPOINT",
    "clip_model": "LOGICLS_CLIP_MODEL",
    "clip_weights": "LOGICLS_CLIP_WEIGHTS",
    "clip_pretrained_tag": "LOGICLS_CLIP_PRETRAINED_TAG",
    "device": "LOGICLS_GROUNDING_DEVICE",
}


def grounder_from_env(cache_dir: str) -> Grounder:
    """The grounder set by ``LOGICLS_GROUNDING_BACKEND``, ``LOGICLS_SAM_CHECKPOINT``, ``LOGICLS_CLIP_WEIGHTS``…
    (unset ones keep their defaults: the weight-free ``classical`` backend for the generated data)."""
    settings = {field: os.environ[var] for field, var in GROUNDER_ENV.items() if os.environ.get(var)}
    return Grounder(cache_dir=cache_dir, **settings)

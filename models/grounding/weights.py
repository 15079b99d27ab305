"""Loading SAM and OpenCLIP from local files only, on the chosen device.

Real checkpoints and the tiny test models go through the same functions here, so a test that loads
a tiny model exercises the path a real checkpoint takes. Nothing is ever downloaded: a missing file
is an error that names the path and where to get the file.

SAM is built by architecture name and its state dict loaded with
``torch.load(map_location=..., weights_only=True)``, because segment-anything's own loader has no
``map_location`` (a checkpoint saved on a GPU would not open on a CPU-only machine) and unpickles
arbitrary objects.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

logger = logging.getLogger(__name__)

SAM_CHECKPOINT_URLS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}
# OpenCLIP model configs shipped with this package (the tiny test model), registered on first use.
CLIP_CONFIG_DIR = Path(__file__).parent / "clip_configs"
TINY_SAM_TYPE = "vit_tiny"
TINY_CLIP_MODEL = "LogiCls-Tiny-CLIP"


def build_sam_model(
    embed_dim: int, depth: int, num_heads: int, global_attn_indexes: tuple[int, ...], image_size: int = 1024
) -> Sam:
    """A SAM with the stock prompt encoder and mask decoder and the given ViT image encoder.

    Mirrors segment-anything's ``_build_sam`` (so official state dicts fit) but lets the input size
    vary, which only the tiny model uses: its 256-pixel input makes mask generation ~16× cheaper.
    """
    prompt_dim, patch = 256, 16
    grid = image_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=depth,
            embed_dim=embed_dim,
            img_size=image_size,
            mlp_ratio=4,
            norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=num_heads,
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=global_attn_indexes,
            window_size=14,
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=2048, num_heads=8),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


# SAM architectures by model type; the official three match segment-anything's registry.
SAM_BUILDERS: dict[str, Callable[[], Sam]] = {
    "vit_h": functools.partial(build_sam_model, 1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": functools.partial(build_sam_model, 1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": functools.partial(build_sam_model, 768, 12, 12, (2, 5, 8, 11)),
    TINY_SAM_TYPE: functools.partial(build_sam_model, 96, 2, 2, (1,), image_size=256),
}


def _sam_hint(model_type: str) -> str:
    """Where a missing SAM checkpoint comes from."""
    if model_type == TINY_SAM_TYPE:
        return "build it with models.grounding.tiny.save_tiny_sam(path)"
    return f"download it from {SAM_CHECKPOINT_URLS[model_type]}"


def load_sam(model_type: str, checkpoint: str | Path, device: torch.device) -> Sam:
    """Build SAM ``model_type`` and load its state dict from the local file ``checkpoint``."""
    if model_type not in SAM_BUILDERS:
        raise ValueError(f"unknown SAM model type {model_type!r}: choose one of {sorted(SAM_BUILDERS)}")
    path = Path(checkpoint) if str(checkpoint) else None
    if path is None or not path.is_file():
        shown = path or "(GroundingConfig.sam_checkpoint is not set)"
        raise FileNotFoundError(f"SAM checkpoint {shown} not found: {_sam_hint(model_type)}")
    sam = SAM_BUILDERS[model_type]()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    except Exception as err:
        raise ValueError(
            f"SAM checkpoint {path} does not load as model type {model_type!r} ({err}); "
            f"check GroundingConfig.sam_model_type, or {_sam_hint(model_type)}"
        ) from err
    logger.info("loaded SAM %s from %s onto %s", model_type, path, device)
    return sam.to(device)


@functools.cache
def register_clip_configs() -> None:
    """Make the packaged OpenCLIP configs (the tiny model) known to open_clip, once per process."""
    open_clip.add_model_config(CLIP_CONFIG_DIR)


def _clip_hint(model_name: str, pretrained_tag: str) -> str:
    """Where missing CLIP weights come from: the open_clip model and pretrained tag, and its source."""
    if model_name == TINY_CLIP_MODEL:
        return "build it with models.grounding.tiny.save_tiny_clip(path)"
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained_tag) if pretrained_tag else {}
    source = ""
    if cfg.get("hf_hub"):
        source = f" (Hugging Face repo {cfg['hf_hub'].rstrip('/')}, file open_clip_pytorch_model.bin)"
    elif cfg.get("url"):
        source = f" ({cfg['url']})"
    return (
        f"download the open_clip weights for model {model_name!r} pretrained {pretrained_tag!r}{source}, "
        "e.g. open_clip.create_model(model, pretrained=tag) on a machine with internet, "
        "and set GroundingConfig.clip_weights to the local .bin/.pt/.safetensors file"
    )


def load_clip(
    model_name: str, weights: str | Path, pretrained_tag: str, device: torch.device
) -> tuple[torch.nn.Module, Callable[[list[str]], torch.Tensor], dict[str, Any]]:
    """OpenCLIP ``model_name`` with weights from the local file ``weights``.

    Returns the model, its tokenizer (the BPE vocabulary ships with open_clip) and its preprocessing
    config (image size, mean, std). ``pretrained_tag`` names the weights' training run; its mean and
    std are used when open_clip knows the tag, since the file alone does not record them.
    """
    register_clip_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}: see open_clip.list_models()")
    path = Path(weights) if str(weights) else None
    if path is None or not path.is_file():
        shown = path or "(GroundingConfig.clip_weights is not set)"
        raise FileNotFoundError(f"CLIP weights {shown} not found: {_clip_hint(model_name, pretrained_tag)}")
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained_tag) if pretrained_tag else {}
    force = {k: tag_cfg[k] for k in ("mean", "std") if k in tag_cfg}
    try:
        model = open_clip.create_model(
            model_name, pretrained=str(path), device=device, force_preprocess_cfg=force or None
        )
    except Exception as err:
        raise ValueError(
            f"CLIP weights {path} do not load into open_clip model {model_name!r} ({err}); "
            f"check GroundingConfig.clip_model, or {_clip_hint(model_name, pretrained_tag)}"
        ) from err
    logger.info("loaded CLIP %s from %s onto %s", model_name, path, device)
    return model.eval(), open_clip.get_tokenizer(model_name), dict(model.visual.preprocess_cfg)


def file_identity(path: str | Path) -> str:
    """Name and size of a weights file: enough to tell checkpoints apart without hashing gigabytes."""
    p = Path(path)
    return f"{p.name}:{p.stat().st_size}" if p.is_file() else f"{p.name}:missing"

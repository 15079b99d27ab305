"""Training presets: the paper's LoRA setting for real checkpoints, and one that makes the tiny model learn.

A real Qwen2.5-VL fine-tunes well with LoRA on the attention projections at lr 1e-4. The tiny
built-in model has random weights and about 200k parameters: at that lr it learns nothing in a
few epochs, so its preset also adapts the MLP projections at a much higher, constant lr.
"""

from __future__ import annotations

from typing import Any

PAPER_PRESET: dict[str, Any] = {
    "num_epochs": 3,
    "per_device_batch_size": 1,
    "gradient_accumulation_steps": 8,
    "learning_rate": 1e-4,
    "lr_schedule": "cosine",
    "warmup_steps": 10,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lora_targets": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gradient_checkpointing": True,
}

TINY_PRESET: dict[str, Any] = {
    "num_epochs": 2,
    "per_device_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-3,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "lora_targets": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gradient_checkpointing": False,
}

PRESETS = {"paper": PAPER_PRESET, "tiny": TINY_PRESET}


def preset_for(name: str, tiny_model: bool) -> dict[str, Any]:
    """``auto`` picks ``tiny`` for the built-in model and ``paper`` for a real checkpoint."""
    if name == "auto":
        name = "tiny" if tiny_model else "paper"
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose auto, {', '.join(PRESETS)}")
    return dict(PRESETS[name])

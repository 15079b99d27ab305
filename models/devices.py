"""Where a model runs and in which precision: one rule for the VLM and for grounding.

* device ``auto`` is ``cuda:<LOCAL_RANK>`` when CUDA is available (``LOCAL_RANK`` is set by
  ``torchrun``; 0 without it), else ``cpu``. An explicit ``cuda``/``cuda:N`` on a machine without
  CUDA is an error that says so, rather than a failure deep inside a library.
* dtype ``auto`` is bf16 on a CUDA device that supports it, else fp32: CPUs have no fast bf16
  matmul and the tests need exact fp32 arithmetic; fp16 overflows without loss scaling, so it is
  used only when asked for. Names: ``float32``/``fp32``, ``bfloat16``/``bf16``,
  ``float16``/``fp16``.
"""

from __future__ import annotations

import os

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}  # fmt: skip


def resolve_device(name: str) -> torch.device:
    """The device ``name`` stands for (see the module docstring)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available: use 'auto' or 'cpu'")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype ``name`` stands for on ``device`` (see the module docstring)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}: use auto or one of {', '.join(DTYPES)}")
    return DTYPES[name]

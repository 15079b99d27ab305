"""The vision-language model resource: a local Qwen2.5-VL checkpoint, or the tiny built-in model.

Users point ``checkpoint_dir`` (``LOGICLS_VLM_CHECKPOINT``) at a Qwen2.5-VL 3B/7B directory they
downloaded. Without one, the chain runs on a tiny Qwen2.5-VL-architecture model that the project
builds from a config with a locally trained tokenizer: random weights, so its predictions only
show that the chain runs, not what the method achieves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dagster import ConfigurableResource
from filelock import FileLock
from pydantic import Field

from models.vlm import LoadedVLM, VLMConfig, build_tiny_qwen25vl

TINY_NOTE = (
    "tiny built-in Qwen2.5-VL-architecture model with RANDOM weights: its results only show that the chain "
    "runs; set LOGICLS_VLM_CHECKPOINT to a Qwen2.5-VL 3B/7B directory for real results"
)


class VisionLanguageModel(ConfigurableResource):
    """Which Qwen2.5-VL checkpoint the chain fine-tunes and asks, and how it is loaded."""

    checkpoint_dir: str = Field(default="", description="Local Qwen2.5-VL directory; empty = tiny built-in model.")
    dtype: str = Field(default="auto",
                       description="auto = bf16 where CUDA supports it, else fp32; or float32/bfloat16/float16.")
    device: str = Field(default="auto", description="auto = cuda:<LOCAL_RANK> when a GPU is present, else cpu.")
    attn_implementation: str = Field(default="sdpa", description="sdpa, flash_attention_2 or eager.")
    min_pixels: int | None = Field(default=None, description="Processor resize bound; None keeps the checkpoint's.")
    max_pixels: int | None = Field(default=None, description="Processor resize bound; None keeps the checkpoint's.")
    storage_dir: str = Field(description="Where the tiny model is built once when no checkpoint is given.")
    tiny_seed: int = 0

    @property
    def is_tiny(self) -> bool:
        return not self.checkpoint_dir

    def model_dir(self) -> Path:
        """The checkpoint directory, building the tiny model once (safe across processes)."""
        if not self.is_tiny:
            return Path(self.checkpoint_dir).expanduser()
        target = Path(self.storage_dir) / "models" / f"tiny-qwen2.5-vl-seed{self.tiny_seed}"
        if (target / "config.json").is_file():
            return target  # nothing to build: no lock either, so a read-only storage serves it
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if not (target / "config.json").is_file():
                build_tiny_qwen25vl(target, seed=self.tiny_seed)
        return target

    def vlm_config(self) -> VLMConfig:
        return VLMConfig(dtype=self.dtype, device=self.device, attn_implementation=self.attn_implementation,
                         min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def load(self, adapter_dir: str | Path | None = None) -> LoadedVLM:
        """The model (and LoRA adapter) ready for inference."""
        vlm = LoadedVLM.from_pretrained(self.model_dir(), self.vlm_config())
        if adapter_dir is not None:
            vlm.load_adapter(adapter_dir)
        return vlm

    def describe(self) -> dict[str, str]:
        """For metadata: which base model, and a hash of its config and weights index."""
        directory = self.model_dir()
        return {
            "base_model": str(directory),
            "base_model_hash": checkpoint_hash(directory),
            "base_model_note": TINY_NOTE if self.is_tiny else "local checkpoint",
        }


def checkpoint_hash(directory: Path) -> str:
    """A cheap fingerprint of a checkpoint: its config and the names and sizes of its weight files."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for path in sorted(directory.glob("*.safetensors")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        digest.update(json.dumps(json.loads(index.read_text()).get("weight_map", {}), sort_keys=True).encode())
    return digest.hexdigest()[:16]

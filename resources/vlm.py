"""The vision-language model resource: a local Qwen2.5-VL checkpoint, or the tiny built-in model.

Users point ``checkpoint_dir`` (``LOGICLS_VLM_CHECKPOINT``) at a Qwen2.5-VL 3B/7B directory they
downloaded. Without one, the chain runs on a tiny Qwen2.5-VL-architecture model that the project
builds from a config with a locally trained tokenizer: random weights, so its predictions only
show that the chain runs, not what the method achieves.
"""

# No `from __future__ import annotations` here: Dagster reads the field types to find the nested `storage`
# resource, and string annotations hide it (a root set in the launchpad would not reach this resource).

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, MetadataValue
from pydantic import Field

from models.tables import markdown_table
from models.vlm import LoadedVLM, VLMConfig, ensure_tiny_qwen25vl, trained_kind
from models.vlm.encoding import PixelBudget, resolution_table
from models.vlm.model import load_tokenizer, pixel_bounds
from resources.config_mirror import mirror
from resources.storage import StorageResource

TINY_NOTE = (
    "tiny built-in Qwen2.5-VL-architecture model with RANDOM weights: its results only show that the chain "
    "runs; set LOGICLS_VLM_CHECKPOINT to a Qwen2.5-VL 3B/7B directory for real results"
)


class VisionLanguageModel(mirror(VLMConfig, base=ConfigurableResource)):
    """Which Qwen2.5-VL checkpoint the chain fine-tunes and asks, and how it is loaded (`models.vlm.VLMConfig`)."""

    checkpoint_dir: str = Field(default="", description="Local Qwen2.5-VL directory; empty = tiny built-in model.")
    storage: StorageResource  # where the tiny model is built once when no checkpoint is given
    tiny_seed: int = Field(default=0, description="Seed of the tiny built-in model's random weights.")

    @property
    def is_tiny(self) -> bool:
        return not self.checkpoint_dir

    def model_dir(self) -> Path:
        """The checkpoint directory, building the tiny model once (atomic, safe across processes)."""
        if not self.is_tiny:
            return Path(self.checkpoint_dir).expanduser()
        target = self.storage.layout.tiny_model(self.tiny_seed)
        return ensure_tiny_qwen25vl(target, seed=self.tiny_seed)

    def vlm_config(self) -> VLMConfig:
        return self.to_core()

    def load(self, adapter_dir: str | Path | None = None) -> LoadedVLM:
        """The model ready for inference, with what fine-tuning published in ``adapter_dir`` when given: a LoRA
        adapter on this base, or a fully fine-tuned checkpoint loaded in its place (`models.vlm.trained_kind`)."""
        if adapter_dir is not None and trained_kind(adapter_dir) == "full":
            return LoadedVLM.from_full_checkpoint(adapter_dir, self.vlm_config())
        vlm = LoadedVLM.from_pretrained(self.model_dir(), self.vlm_config())
        if adapter_dir is not None:
            vlm.load_adapter(adapter_dir)
        return vlm

    def tokenizer(self):
        """The checkpoint's tokenizer, without the weights: generation limits count target tokens with it."""
        return load_tokenizer(self.model_dir())

    def pixel_budget(self) -> PixelBudget:
        """The resize bounds the model is loaded with (``models.vlm.model.pixel_bounds``)."""
        return PixelBudget(*pixel_bounds(self.model_dir(), self.vlm_config()))

    def resolution_metadata(self, image_paths: Iterable[str | Path]) -> dict[str, Any]:
        """For metadata: the pixel bounds in force, and per image size what the model sees and its visual tokens."""
        budget = self.pixel_budget()
        table = resolution_table(budget, image_paths)
        return {
            "min_pixels": budget.min_pixels,
            "max_pixels": budget.max_pixels,
            "visual_tokens_per_image": int(table["visual_tokens"].max()) if len(table) else 0,
            "native_resolution": bool(((table["model_width"] - table["width"]).abs() < 28).all()
                                      and ((table["model_height"] - table["height"]).abs() < 28).all()),
            "image_sizes": MetadataValue.md(markdown_table(table, index=False)),
        }

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

"""Qwen2.5-VL for LogiCls: tiny test model, loading, Fig. 3 prompts, LoRA training with the paper's
difficulty-aware resampling, and batched inference. No Dagster here."""

from models.vlm.encoding import PromptEncoder, PromptRequest
from models.vlm.inference import ImageFeatureCache, generate, generate_with_image_cache
from models.vlm.model import LoadedVLM, VLMConfig, trained_kind
from models.vlm.prompt import SYSTEM_PROMPT, build_messages, exact_answer_match
from models.vlm.resampling import DIFFICULTY_COLUMNS, difficulty, group_probabilities
from models.vlm.tiny import TinyQwenConfig, build_tiny_qwen25vl, ensure_tiny_qwen25vl
from models.vlm.train import SAMPLE_COLUMNS, TrainConfig, TrainResult, train_lora

__all__ = [
    "DIFFICULTY_COLUMNS",
    "SAMPLE_COLUMNS",
    "SYSTEM_PROMPT",
    "ImageFeatureCache",
    "LoadedVLM",
    "PromptEncoder",
    "PromptRequest",
    "TinyQwenConfig",
    "TrainConfig",
    "TrainResult",
    "VLMConfig",
    "build_messages",
    "build_tiny_qwen25vl",
    "difficulty",
    "ensure_tiny_qwen25vl",
    "exact_answer_match",
    "generate",
    "generate_with_image_cache",
    "group_probabilities",
    "train_lora",
    "trained_kind",
]

"""``LoadedVLM``: a local Qwen2.5-VL checkpoint with its processor, ready to train or ask.

The Dagster resource ``resources.vlm.VisionLanguageModel`` says *which* checkpoint and how to load
it; ``LoadedVLM`` is the model in memory that its ``load()`` returns.

Why a wrapper: every stage (fine-tuning, difficulty scoring, LAC inference, the in-context
baseline) needs the same things decided the same way: which dtype and device, which attention
kernel, how many pixels an image may have, and that nothing is ever fetched from the hub or
executed from a checkpoint (``trust_remote_code`` is hard-wired off and ``local_files_only`` on,
so ``HF_HUB_OFFLINE`` can never be bypassed). Only a local directory is accepted; users download
the weights themselves on a machine with internet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
)

from models.devices import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
DOWNLOAD_HINT = "Qwen/Qwen2.5-VL-3B-Instruct"

NATIVE_MAX_PIXELS = 16384 * 28 * 28
"""12,845,056: the bound Qwen's published Qwen2.5-VL processor configs declare, far above every LOCO image
(at most 1600×1280 = 2,048,000), so those keep their native resolution (up to rounding to 28 px)."""
DEFAULT_MIN_PIXELS = 56 * 56
"""3,136: the lower bound Qwen's published configs declare (and the image processor's own default)."""

DType = Literal["auto", "bfloat16", "float16", "float32"]
AttnImplementation = Literal["sdpa", "flash_attention_2", "eager"]


@dataclass(frozen=True)
class VLMConfig:
    """How to load a checkpoint.

    ``dtype`` and ``device`` follow :mod:`models.devices` (``auto``: bf16 on a CUDA device that
    supports it, fp32 otherwise; ``cuda:<LOCAL_RANK>`` when a GPU is present, else CPU).
    ``min_pixels`` / ``max_pixels`` are the image processor's resize bounds, always set explicitly when
    loading (:func:`pixel_bounds`): ``None`` takes the bound the checkpoint's processor config declares,
    and where it declares none, :data:`NATIVE_MAX_PIXELS` / :data:`DEFAULT_MIN_PIXELS`, never the image
    processor class's own default (1,003,520, which silently shrinks a 1600×1280 image to 1120×896). The
    paper feeds images at native resolution; lower ``max_pixels`` to trade detail for memory and time.
    """

    dtype: DType = field(default="auto", metadata={"help": "auto = bf16 on CUDA, fp32 on CPU; or float32, "
                                                            "bfloat16, float16."})
    device: str = field(default="auto", metadata={"help": "auto = cuda:<LOCAL_RANK> when a GPU is present, else "
                                                          "cpu; or a torch device."})
    attn_implementation: AttnImplementation = field(default="sdpa", metadata={
        "help": "sdpa, flash_attention_2 or eager."})
    min_pixels: int | None = field(default=None, metadata={
        "help": "Fewest pixels an image is resized to; None: the checkpoint's declared bound, else 3,136."})
    max_pixels: int | None = field(default=None, metadata={
        "help": "Most pixels an image is resized to (the paper: native resolution); None: the checkpoint's "
                "declared bound, else 12,845,056 (native for every LOCO image). Lower it to save memory."})

    def __post_init__(self) -> None:
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 28 * 28):
                raise ValueError(f"VLMConfig.{name} must be an integer >= 784 (one 28×28 tile) or None, got {value!r}")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ValueError(f"VLMConfig.min_pixels ({self.min_pixels}) is above max_pixels ({self.max_pixels})")


def check_checkpoint_dir(path: str | Path) -> Path:
    """Refuse anything but a local Qwen2-VL-family checkpoint directory, with an actionable message."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"checkpoint directory {directory} not found; download {DOWNLOAD_HINT} with "
            f"`huggingface-cli download {DOWNLOAD_HINT} --local-dir {directory}` on a machine with "
            "internet (hub ids are not accepted: only local directories are loaded)"
        )
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} has no config.json: not a Hugging Face checkpoint directory")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{directory} holds a {model_type!r} model; expected a Qwen2.5-VL / Qwen2-VL checkpoint "
            f"(config.json model_type in {SUPPORTED_MODEL_TYPES})"
        )
    return directory


def declared_pixel_bounds(directory: Path) -> tuple[int | None, int | None]:
    """``(min_pixels, max_pixels)`` as the checkpoint's processor config declares them (None: not declared).

    Looks where transformers reads them: ``preprocessor_config.json`` (Qwen's published layout, flat
    ``min_pixels``/``max_pixels`` or ``size``) and ``processor_config.json``'s ``image_processor`` (what
    transformers 5 saves, with ``size: {shortest_edge, longest_edge}``).
    """
    found: dict[str, int] = {}
    sources = [(directory / "processor_config.json", "image_processor"), (directory / "preprocessor_config.json", None)]
    for path, key in sources:
        if not path.is_file():
            continue
        values = json.loads(path.read_text(encoding="utf-8"))
        values = values.get(key) or {} if key else values
        size = values.get("size") or {}
        for name, size_key in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            declared = values.get(name, size.get(size_key))
            if declared is not None:
                found.setdefault(name, int(declared))
    return found.get("min_pixels"), found.get("max_pixels")


def pixel_bounds(directory: Path, config: VLMConfig) -> tuple[int, int]:
    """The ``(min_pixels, max_pixels)`` a checkpoint is loaded with: the config's, else the checkpoint's
    declared ones, else native (see :class:`VLMConfig`)."""
    declared_min, declared_max = declared_pixel_bounds(directory)
    low = config.min_pixels or declared_min or DEFAULT_MIN_PIXELS
    high = config.max_pixels or declared_max or NATIVE_MAX_PIXELS
    if low > high:
        raise ValueError(f"min_pixels {low} is above max_pixels {high} for {directory}: set both in the VLM config")
    return low, high


ADAPTER_FIX = "train it again (materialize vlm_adapter) or point at another adapter directory"


def check_adapter_dir(path: str | Path) -> Path:
    """A PEFT adapter directory whose config is a JSON object and whose weights are a readable safetensors
    file (only safetensors: a pickled ``adapter_model.bin`` is never loaded); errors name the file."""
    directory = Path(path)
    config_file, weights = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} holds no LoRA adapter (adapter_config.json missing)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_file} is not valid JSON ({exc}): {ADAPTER_FIX}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} must hold a JSON object, not {type(config).__name__}: {ADAPTER_FIX}")
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} has no adapter_model.safetensors: {ADAPTER_FIX}")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except SafetensorError as exc:
        raise ValueError(f"{weights} is not a valid safetensors file ({exc}): {ADAPTER_FIX}") from None
    return directory


def trained_kind(path: str | Path) -> str:
    """What fine-tuning published in ``path``: ``lora`` (a PEFT adapter, ``adapter_config.json``) or ``full`` (a
    whole checkpoint, ``config.json``, loaded like a base checkpoint). The files say it; a folder with neither, or
    both, is refused with the fix."""
    directory = Path(path)
    adapter, checkpoint = (directory / "adapter_config.json").is_file(), (directory / "config.json").is_file()
    if adapter == checkpoint:
        found = "both adapter_config.json and config.json" if adapter else "neither adapter_config.json (LoRA) " \
            "nor config.json (full fine-tuning)"
        raise FileNotFoundError(f"{directory} holds no fine-tuned weights ({found}): {ADAPTER_FIX}")
    return "lora" if adapter else "full"


def load_tokenizer(path: str | Path):
    """The checkpoint's tokenizer alone (for counting target tokens without loading the weights)."""
    return AutoTokenizer.from_pretrained(check_checkpoint_dir(path), local_files_only=True, trust_remote_code=False)


def greedy_generation_config(tokenizer, max_new_tokens: int) -> GenerationConfig:
    """Pure greedy decoding, whatever sampling defaults the checkpoint's generation_config carries.

    Qwen's released generation_config sets ``repetition_penalty=1.05`` and sampling parameters;
    generate() fills only unset (None) fields from it, so every field that changes the argmax path
    is set explicitly here.
    """
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )


def _output_requires_grad(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
    output.requires_grad_(True)


class LoadedVLM:
    """A Qwen2.5-VL model (optionally with a LoRA adapter) and its processor on one device."""

    def __init__(self, model: PreTrainedModel | PeftModel, processor, config: VLMConfig, path: Path) -> None:
        self.model = model
        self.processor = processor
        self.config = config
        self.path = path

    @classmethod
    def from_pretrained(cls, path: str | Path, config: VLMConfig | None = None) -> LoadedVLM:
        """Load model and processor from a local checkpoint directory (never from the hub)."""
        config = config or VLMConfig()
        directory = check_checkpoint_dir(path)
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        min_pixels, max_pixels = pixel_bounds(directory, config)
        processor = AutoProcessor.from_pretrained(
            directory, local_files_only=True, trust_remote_code=False,
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        )
        model = AutoModelForImageTextToText.from_pretrained(
            directory,
            local_files_only=True,
            trust_remote_code=False,
            dtype=dtype,
            attn_implementation=config.attn_implementation,
            device_map={"": device},  # straight onto the device: no full-size copy in host memory
        )
        model.eval()
        logger.info("loaded %s (%s, %s, %s) from %s", type(model).__name__, dtype, device,
                    config.attn_implementation, directory)
        return cls(model, processor, config, directory)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def base_model(self) -> PreTrainedModel:
        """The ``…ForConditionalGeneration`` module (inside the PEFT wrapper when there is one)."""
        return self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass, with a gradient path into the language model only.

        transformers' ``activation_checkpointing_enable`` (and PEFT, when it wraps a checkpointed model)
        call ``enable_input_require_grads``, which hooks *every* sub-model's input embeddings, the vision
        tower's ``patch_embed`` included: its output then requires grad, and autograd records and runs the
        backward pass through the whole frozen vision tower (see ``benchmarks/finetune.py --compare-hooks``).
        Only the language model's input needs the hook (checkpointed decoder layers with LoRA weights must
        see an input that requires grad); :meth:`_language_inputs_only` puts it there instead, after every
        step that adds transformers' hooks. LoRA on the vision tower still trains: its own weights require
        grad, and checkpointing is non-reentrant.
        """
        self.base_model.activation_checkpointing_enable({"use_reentrant": False})
        self._language_inputs_only()

    def _language_inputs_only(self) -> None:
        """Replace the require-grads hooks on every sub-model's input embeddings by one on the language model's."""
        model = self.base_model
        if not model.is_activation_checkpointing:
            return
        model.disable_input_require_grads()
        hook = model.get_input_embeddings().register_forward_hook(_output_requires_grad)
        model._require_grads_hooks = [hook]  # so that transformers' disable_input_require_grads removes it

    def add_lora(self, lora_config: LoraConfig) -> PeftModel:
        """Wrap the model with a fresh, trainable LoRA adapter (every base weight frozen)."""
        self.model = get_peft_model(self.model, lora_config)
        self._language_inputs_only()  # PEFT re-adds transformers' hooks to a checkpointed model
        return self.model

    def load_trained(self, trained_dir: str | Path) -> None:
        """Swap in what fine-tuning published (:func:`trained_kind`): a LoRA adapter is attached to this base, a
        fully fine-tuned checkpoint replaces model and processor (loaded with this instance's settings)."""
        if trained_kind(trained_dir) == "lora":
            self.load_adapter(trained_dir)
            return
        full = LoadedVLM.from_full_checkpoint(trained_dir, self.config)
        self.model, self.processor, self.path = full.model, full.processor, full.path

    @classmethod
    def from_full_checkpoint(cls, trained_dir: str | Path, config: VLMConfig | None = None) -> LoadedVLM:
        """A fully fine-tuned checkpoint, loaded like a base one; a damaged one is a ``ValueError`` naming the
        folder and the fix, not a library traceback (as a damaged adapter is)."""
        try:
            return cls.from_pretrained(trained_dir, config)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"the fully fine-tuned checkpoint in {trained_dir} does not load ({first}): "
                             f"{ADAPTER_FIX}") from exc

    def load_adapter(self, adapter_dir: str | Path, *, trainable: bool = False) -> PeftModel:
        """Attach a saved LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

        A damaged or foreign adapter is a ``ValueError`` naming the file, not a library traceback.
        """
        directory = check_adapter_dir(adapter_dir)
        try:
            self.model = PeftModel.from_pretrained(self.model, directory, is_trainable=trainable)
            self._language_inputs_only()
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"the LoRA adapter in {directory} does not load onto {self.path} ({first}): {ADAPTER_FIX}"
            ) from exc
        if not trainable:
            self.model.eval()
        logger.info("loaded adapter %s", directory)
        return self.model

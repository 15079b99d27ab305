"""Fine-tuning (LoRA or every weight) with difficulty-aware resampling, per-epoch checkpoints and exact resume.

A plain PyTorch loop (not ``Trainer``/``SFTTrainer``): the sampler changes every epoch from fresh
difficulty scores, difficulty needs per-sample perplexity, and resume must be bit-exact. The same
code runs alone, or under ``torchrun`` as DDP (gloo on CPU, NCCL on GPU); only rank 0 writes
checkpoints and calls ``progress_callback``. A run's folder, its process entry point and its
results for the pipeline live in ``models.vlm.fine_tuning``.

Input contract (``samples``: one row per CoT sample, any extra columns are ignored):

=====================  =====================================================================
``sample_id``          unique key (str or int)
``subquery_id``        base subquery; the default resampling group (``TrainConfig.group_key``)
``question``           the (possibly paraphrased) subquery text
``target``             assistant text ``<think>…</think><answer>…</answer>``
``image_path``         the image under test
``example_image_path`` a normal training image of the same scenario (Fig. 3's example)
``example_target``     that example's target text for the same subquery
=====================  =====================================================================

Outputs (``TrainResult``; the same tables sit in every ``epoch_NNN/`` as Parquet):

* ``difficulty``: ``epoch, sample_id, subquery_id, correct, perplexity, difficulty, generated`` (plus
  the group column when ``group_key`` is not ``subquery_id``), one row per scored sample and epoch;
  ``epoch`` counts from 1 and the scores are taken with the weights at the end of that epoch.
* ``probabilities``: ``epoch, <group_key>, probability``; the rows of epoch ``e`` are Eq. 5 from
  that epoch's scores and drive the draws of epoch ``e + 1`` (recorded even when resampling is off,
  for the ablation's comparison). They sum to 1 per epoch.
* ``epoch_losses``: token-weighted mean training NLL per epoch; ``adapter_dir``: ``final/``, a PEFT
  adapter (``method="lora"``) or a whole checkpoint with its processor (``method="full"``) that
  ``LoadedVLM.from_pretrained`` loads like a base checkpoint (``models.vlm.model.trained_kind`` tells
  them apart).

Full fine-tuning trains every weight, the vision tower included: the built-in model is random
everywhere, so a frozen tower would feed the language model noise it cannot learn from; with a real
checkpoint, LoRA (tower frozen unless ``vision_lora_targets`` says otherwise) is the usual choice.

Loss: summed NLL of the target tokens (and ``<|im_end|>``) divided by the number of such tokens in
the whole optimizer step across all ranks and accumulation steps, so gradients do not depend on
how a global batch is split into devices and micro-batches.

Epoch ``e`` (from 1): draw the epoch's order (uniform shuffle for ``e = 1`` or without
resampling; Eq. 5 probabilities from the end of epoch ``e−1`` otherwise), train on it, score every
sample (greedy output, correctness, answer perplexity, Eq. 4), compute next probabilities (Eq. 5),
write ``epoch_NNN/``, report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from peft import LoraConfig
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from models.atomic import default_modes
from models.devices import resolve_device
from models.vlm.checkpoint import (
    capture_rng_state,
    complete_checkpoints,
    load_epoch_checkpoint,
    read_state,
    read_tables,
    remove_stale,
    save_epoch_checkpoint,
)
from models.vlm.distributed import DistContext, init_distributed, shutdown_distributed
from models.vlm.encoding import (
    IGNORE_INDEX,
    EncodedExample,
    PromptEncoder,
    cache_pixel_values,
    collate_for_loss,
    move_to,
    request_from_row,
)
from models.vlm.inference import TOKEN_BUDGET, prompt_batches
from models.vlm.model import LoadedVLM, VLMConfig
from models.vlm.prompt import exact_answer_match
from models.vlm.resampling import (
    difficulty,
    group_probabilities,
    resampled_epoch_order,
    uniform_epoch_order,
)
from models.vlm.scoring import AnswerChecker, TargetTokenNLL, score_rows

logger = logging.getLogger(__name__)

TRAINING_VERSION = 2
"""Bump when training gives another adapter for the same settings, data and base model: it is part of the run
key (`models.vlm.fine_tuning.run_key`), so runs of the old code are not resumed, and of the fine-tuning assets'
code version, so the retraining schedule starts a run. 2: the tiny preset trains every weight (``method: full``)."""
SAMPLE_COLUMNS = ("sample_id", "subquery_id", "question", "target", "image_path", "example_image_path",
                  "example_target")

ProgressCallback = Callable[[dict[str, Any]], None]
StepCallback = Callable[[int, nn.Module], None]


LR_SCHEDULES = ("constant", "linear", "cosine")
METHODS = ("lora", "full")
LANGUAGE_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Leaf names inside ``model.language_model.layers.N`` (``self_attn`` and ``mlp``)."""
VISION_LORA_TARGETS = ("qkv", "proj", "gate_proj", "up_proj", "down_proj")
"""Leaf names inside ``model.visual.blocks.N`` (``attn`` and ``mlp``)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint); validated on construction.

    Batch: ``per_device_batch_size × gradient_accumulation_steps × world_size`` samples per
    optimizer step. Fields marked ``runtime`` in their metadata (workers, scoring batch size, logging,
    gradient checkpointing) change speed, memory or logging but not the result: they stay out of the
    run key and the resume check (:meth:`result_settings`), so changing one resumes a run.
    """

    seed: int = field(default=0, metadata={"help": "Seed of the LoRA initialisation, the epoch orders and the "
                                                   "scored subsample."})
    method: Literal["lora", "full"] = field(default="lora", metadata={
        "help": "lora: a LoRA adapter on a frozen base (the lora_* fields); full: every weight, vision tower "
                "included, saved as a whole checkpoint (the lora_* fields are then unused)."})
    num_epochs: int = field(default=3, metadata={"help": "Epochs; each one is trained, then scored (Eq. 4) to "
                                                         "draw the next (Eq. 5)."})
    per_device_batch_size: int = field(default=1, metadata={"help": "Samples per micro-batch on each process."})
    gradient_accumulation_steps: int = field(default=8, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate (> 0)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (>= 0)."})
    adam_betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW betas, each in [0, 1)."})
    adam_eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon (> 0)."})
    lr_schedule: Literal["constant", "linear", "cosine"] = field(default="cosine", metadata={
        "help": f"Learning-rate decay after the warm-up: one of {', '.join(LR_SCHEDULES)}."})
    warmup_steps: int = field(default=0, metadata={"help": "Optimizer steps of linear warm-up from zero."})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "Gradient clipping norm (> 0); None: no "
                                                                       "clipping."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory, same gradients, slower.", "runtime": True})
    bf16_autocast: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA (no effect on CPU)."})
    max_length: int | None = field(default=None, metadata={"help": "Token limit of a sample; cuts targets only, "
                                                                   "never image tokens. None: no limit."})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes (0: encode in the "
                                                          "training process).", "runtime": True})
    pixel_cache_images: int = field(default=0, metadata={
        "help": "Images whose preprocessed pixel values are kept in memory (about 13 ms of CPU each to recompute): "
                "for the whole run with num_workers 0, for an epoch in each DataLoader worker; 0: none.",
        "runtime": True})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (the update is scaled by "
                                                          "lora_alpha / lora_r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input, in [0, 1)."})
    lora_targets: tuple[str, ...] = field(default=("q_proj", "k_proj", "v_proj", "o_proj"), metadata={
        "help": f"Language-model projections to adapt: any of {', '.join(LANGUAGE_LORA_TARGETS)}."})
    vision_lora_targets: tuple[str, ...] = field(default=(), metadata={
        "help": f"Vision-tower layers to adapt (frozen if empty): any of {', '.join(VISION_LORA_TARGETS)}."})
    resampling: bool = field(default=True, metadata={"help": "Difficulty-aware resampling (Eq. 5); off: a uniform "
                                                             "shuffle every epoch (the ablation)."})
    alpha: float = field(default=1.0, metadata={"help": "Eq. 4 weight of a wrong answer (>= 0; the paper: 1)."})
    beta: float = field(default=0.2, metadata={"help": "Eq. 4 weight of the answer's perplexity (>= 0; the paper: "
                                                       "0.2)."})
    gamma: float = field(default=1.0, metadata={"help": "Eq. 5 exponent (> 0): how strongly difficulty steers "
                                                        "sampling; 1 is proportional."})
    group_key: str = field(default="subquery_id", metadata={"help": "Sample column whose values are Eq. 5's "
                                                                    "groups."})
    samples_per_epoch: int | None = field(default=None, metadata={"help": "Draws per epoch; None: the data set "
                                                                          "size."})
    score_max_samples: int | None = field(default=None, metadata={
        "help": "Samples scored after each epoch (a seeded subsample); None: every sample (the paper)."})
    score_batch_size: int | None = field(default=None, metadata={
        "help": "Most samples per batch when scoring; None: as many as score_token_budget holds.", "runtime": True})
    score_token_budget: int = field(default=TOKEN_BUDGET, metadata={
        "help": "Tokens per scoring batch: samples × (longest prompt, images included, + max_new_tokens); "
                "a native-resolution LOCO prompt has up to 5.3k tokens.", "runtime": True})
    max_new_tokens: int = field(default=256, metadata={"help": "Token limit of the greedy output that is scored."})
    log_every_steps: int = field(default=10, metadata={"help": "Report the loss every this many optimizer steps.",
                                                       "runtime": True})

    def __post_init__(self) -> None:
        for name in ("lora_targets", "vision_lora_targets", "adam_betas"):
            value = getattr(self, name)
            if isinstance(value, list):  # JSON and launchpad lists; the config stays hashable
                object.__setattr__(self, name, tuple(value))
        for name in ("num_epochs", "per_device_batch_size", "gradient_accumulation_steps", "lora_r", "lora_alpha",
                     "score_token_budget", "max_new_tokens", "log_every_steps"):
            _check_int(self, name, minimum=1)
        for name in ("seed", "warmup_steps", "num_workers", "pixel_cache_images"):
            _check_int(self, name, minimum=0)
        for name in ("max_length", "samples_per_epoch", "score_max_samples", "score_batch_size"):
            if getattr(self, name) is not None:
                _check_int(self, name, minimum=1)
        for name in ("learning_rate", "adam_eps", "gamma"):
            _check_number(self, name, lambda v: v > 0, "> 0")
        for name in ("weight_decay", "alpha", "beta"):
            _check_number(self, name, lambda v: v >= 0, ">= 0")
        if self.max_grad_norm is not None:
            _check_number(self, "max_grad_norm", lambda v: v > 0, "> 0 (or None: no clipping)")
        _check_number(self, "lora_dropout", lambda v: 0 <= v < 1, "in [0, 1)")
        betas = self.adam_betas
        if (not isinstance(betas, tuple) or len(betas) != 2
                or not all(_is_number(b) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"TrainConfig.adam_betas must be two numbers in [0, 1), got {betas!r}")
        for name in ("gradient_checkpointing", "bf16_autocast", "resampling"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.method not in METHODS:
            raise ValueError(f"TrainConfig.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainConfig.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                             f"got {self.lr_schedule!r}")
        _check_targets(self, "lora_targets", LANGUAGE_LORA_TARGETS)
        _check_targets(self, "vision_lora_targets", VISION_LORA_TARGETS)
        if self.method == "lora" and not self.lora_targets and not self.vision_lora_targets:
            raise ValueError("TrainConfig: no LoRA targets; set lora_targets or vision_lora_targets "
                             "(or method: full)")
        if not isinstance(self.group_key, str) or not self.group_key:
            raise ValueError(f"TrainConfig.group_key must name a sample column, got {self.group_key!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """From JSON: unknown keys are an error, lists become tuples."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def result_settings(self) -> dict[str, Any]:
        """The settings that determine the result: :meth:`to_dict` without the runtime fields."""
        return without_runtime_settings(self.to_dict())


RUNTIME_SETTINGS = frozenset(f.name for f in fields(TrainConfig) if f.metadata.get("runtime"))


def without_runtime_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config (``to_dict`` form) without the fields that change speed or logging only."""
    return {k: v for k, v in values.items() if k not in RUNTIME_SETTINGS}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(config: TrainConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"TrainConfig.{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(config: TrainConfig, name: str, accept: Callable[[float], bool], rule: str) -> None:
    value = getattr(config, name)
    if not _is_number(value) or not accept(value):
        raise ValueError(f"TrainConfig.{name} must be a number {rule}, got {value!r}")


def _check_targets(config: TrainConfig, name: str, allowed: Sequence[str]) -> None:
    targets = getattr(config, name)
    if not isinstance(targets, tuple) or not all(isinstance(t, str) for t in targets):
        raise ValueError(f"TrainConfig.{name} must be a list of layer names, got {targets!r}")
    unknown = [t for t in targets if t not in allowed]
    if unknown:
        raise ValueError(f"TrainConfig.{name} has unknown layers {unknown}; allowed: {', '.join(allowed)}")


@dataclass
class TrainResult:
    """What a finished run produced (tables cover every epoch, resumed ones included)."""

    adapter_dir: Path
    output_dir: Path
    epoch_losses: list[float]
    difficulty: pd.DataFrame  # DIFFICULTY_COLUMNS
    probabilities: pd.DataFrame  # epoch, <group_key>, probability
    global_step: int
    resumed_from_epoch: int  # 0: started fresh
    config: TrainConfig = field(repr=False)


def lora_target_regex(language_targets: Sequence[str], vision_targets: Sequence[str]) -> str:
    """A PEFT ``target_modules`` regex that hits only the named layers (never the vision blocks'
    ``gate/up/down_proj`` by accident, which a plain list of names would)."""
    def names(targets: Sequence[str]) -> str:
        return "|".join(re.escape(t) for t in targets)

    parts = []
    if language_targets:
        parts.append(rf"model\.language_model\.layers\.\d+\.(?:self_attn|mlp)\.(?:{names(language_targets)})")
    if vision_targets:
        parts.append(rf"model\.visual\.blocks\.\d+\.(?:attn|mlp)\.(?:{names(vision_targets)})")
    if not parts:
        raise ValueError("no LoRA targets configured")
    return "|".join(f"(?:{p})" for p in parts)


def lora_config(config: TrainConfig) -> LoraConfig:
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_regex(config.lora_targets, config.vision_lora_targets),
        bias="none",
        task_type="CAUSAL_LM",
    )


def trainable_model(vlm: LoadedVLM, config: TrainConfig) -> nn.Module:
    """The module the optimizer trains: a fresh LoRA adapter on the frozen base, or the whole model."""
    if config.method == "lora":
        return vlm.add_lora(lora_config(config))
    vlm.model.requires_grad_(True)
    return vlm.model


def check_samples(samples: pd.DataFrame, group_key: str) -> pd.DataFrame:
    """Validate the input contract; return the rows with a clean 0..n-1 index."""
    missing = [c for c in (*SAMPLE_COLUMNS, group_key) if c not in samples.columns]
    if missing:
        raise ValueError(f"samples lack columns {missing}; required: {list(SAMPLE_COLUMNS)}")
    if samples.empty:
        raise ValueError("samples is empty")
    if samples["sample_id"].duplicated().any():
        raise ValueError("sample_id must be unique")
    return samples.reset_index(drop=True)


def data_fingerprint(samples: pd.DataFrame, group_key: str) -> str:
    """Hash of what training reads from the table, to refuse resuming on other data."""
    columns = list(dict.fromkeys([*SAMPLE_COLUMNS, group_key]))
    digest = hashlib.sha256()
    for row in samples[columns].astype(str).itertuples(index=False):
        digest.update("\x1f".join(row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(step: int, *, warmup: int, total: int, schedule: str) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    return 1.0


class _SampleDataset(Dataset):
    """Encodes samples on demand (pixels are too large to keep for a whole data set)."""

    def __init__(self, encoder: PromptEncoder, rows: list[dict[str, Any]]) -> None:
        self.encoder = encoder
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> EncodedExample:
        row = self.rows[index]
        return self.encoder.encode_example(request_from_row(row), str(row["target"]))


def step_plan(order: np.ndarray, config: TrainConfig, ctx: DistContext) -> list[list[list[int]]]:
    """This rank's micro-batches, grouped by optimizer step.

    The epoch order is padded (wrapping around) to a multiple of the world size, so each rank has
    at least one sample in every step; a step's global chunk is dealt out rank-strided like
    ``DistributedSampler``.
    """
    order = [int(i) for i in order]
    if ctx.world_size > 1 and len(order) % ctx.world_size:
        order += order[: ctx.world_size - len(order) % ctx.world_size]
    per_step = config.per_device_batch_size * config.gradient_accumulation_steps * ctx.world_size
    plan = []
    for start in range(0, len(order), per_step):
        local = order[start:start + per_step][ctx.rank::ctx.world_size]
        size = config.per_device_batch_size
        plan.append([local[i:i + size] for i in range(0, len(local), size)])
    return plan


def steps_per_epoch(n_samples: int, config: TrainConfig, world_size: int) -> int:
    total = config.samples_per_epoch or n_samples
    total = -(-total // world_size) * world_size
    return -(-total // (config.per_device_batch_size * config.gradient_accumulation_steps * world_size))


class Trainer:
    """State of one run; ``train_lora`` is the entry point."""

    def __init__(self, vlm: LoadedVLM, samples: pd.DataFrame, config: TrainConfig, output_dir: Path,
                 answer_checker: AnswerChecker, ctx: DistContext, progress_callback: ProgressCallback | None,
                 step_callback: StepCallback | None) -> None:
        self.vlm, self.samples, self.config, self.output_dir = vlm, samples, config, output_dir
        self.answer_checker, self.ctx = answer_checker, ctx
        self.progress_callback, self.step_callback = progress_callback, step_callback
        self.rows = samples.to_dict("records")
        self.groups = samples[config.group_key].tolist()
        cache_pixel_values(vlm.processor, config.pixel_cache_images)
        self.encoder = PromptEncoder(vlm.processor, max_length=config.max_length)
        self.device = vlm.device
        if config.gradient_checkpointing:
            vlm.enable_gradient_checkpointing()
        self.model: nn.Module = trainable_model(vlm, config)
        self.nll = TargetTokenNLL(self.model)
        self.module: nn.Module = DistributedDataParallel(self.nll) if ctx.enabled else self.nll
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=config.adam_betas,
                                           eps=config.adam_eps, weight_decay=config.weight_decay)
        total = config.num_epochs * steps_per_epoch(len(samples), config, ctx.world_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, partial(
            _lr_lambda, warmup=config.warmup_steps, total=total, schedule=config.lr_schedule))
        self.global_step = 0
        self.epoch_losses: list[float] = []
        self.probabilities: pd.Series | None = None
        self.fingerprint = data_fingerprint(samples, config.group_key)

    # -- helpers ---------------------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager:
        if self.device.type == "cuda" and self.config.bf16_autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def emit(self, event: dict[str, Any]) -> None:
        if self.ctx.is_main and self.progress_callback is not None:
            self.progress_callback(event)

    def epoch_order(self, epoch: int) -> np.ndarray:
        cfg = self.config
        if cfg.resampling and self.probabilities is not None:
            return resampled_epoch_order(self.groups, self.probabilities, epoch, cfg.seed,
                                         cfg.samples_per_epoch)
        return uniform_epoch_order(len(self.rows), epoch, cfg.seed, cfg.samples_per_epoch)

    # -- resume ----------------------------------------------------------------------------------
    def resume_or_start(self, resume: bool) -> int:
        """Restore the last complete checkpoint if asked; return the first epoch to run."""
        if self.ctx.is_main:
            remove_stale(self.output_dir, everything=not resume)
        self.ctx.barrier()
        checkpoints = complete_checkpoints(self.output_dir) if resume else []
        if not checkpoints:
            return 1
        last = checkpoints[-1]
        saved = read_state(last)
        same_settings = without_runtime_settings(saved["config"]) == self.config.result_settings()
        if not same_settings or saved["data_fingerprint"] != self.fingerprint:
            raise ValueError(f"{last} was written by a run with another config or other data; "
                             "use a fresh output_dir or resume=False")
        load_epoch_checkpoint(last, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                              rank=self.ctx.rank, method=self.config.method)
        self.global_step = saved["global_step"]
        self.epoch_losses = list(saved["epoch_losses"])
        self.probabilities = pd.Series(saved["next_probabilities"]["values"],
                                       index=saved["next_probabilities"]["groups"], name="probability")
        logger.info("resuming after epoch %d from %s", saved["epoch"], last)
        self.emit({"event": "resumed", "from_epoch": saved["epoch"], "checkpoint": str(last)})
        return saved["epoch"] + 1

    # -- training --------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        cfg = self.config
        plan = step_plan(self.epoch_order(epoch), cfg, self.ctx)
        micro_batches = [mb for step in plan for mb in step]
        loader = DataLoader(_SampleDataset(self.encoder, self.rows), batch_sampler=micro_batches,
                            collate_fn=partial(collate_for_loss, pad_token_id=self.encoder.pad_token_id),
                            num_workers=cfg.num_workers)
        batches = iter(loader)
        self.model.train()
        nll_total, token_total = 0.0, 0.0
        for step in tqdm(plan, desc=f"epoch {epoch}", disable=not self.ctx.is_main, leave=False):
            step_batches = [next(batches) for _ in step]
            nll, tokens = self.optimizer_step(step_batches)
            nll_total, token_total = nll_total + nll, token_total + tokens
        return nll_total / token_total

    def optimizer_step(self, batches: list[dict[str, torch.Tensor]]) -> tuple[float, float]:
        """One optimizer step over this rank's micro-batches; returns global (NLL sum, tokens)."""
        local_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
        global_tokens = self.ctx.sum(float(local_tokens))
        scale = self.ctx.world_size / global_tokens  # DDP averages gradients over ranks
        local_nll = 0.0
        for k, batch in enumerate(batches):
            last = k == len(batches) - 1
            sync = nullcontext() if last or not self.ctx.enabled else self.module.no_sync()
            with sync:
                with self.autocast():
                    nll, _ = self.module(**move_to(batch, self.device))
                (nll.sum() * scale).backward()
            local_nll += float(nll.detach().sum())
        self.global_step += 1
        if self.step_callback is not None:
            self.step_callback(self.global_step, self.model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        global_nll = self.ctx.sum(local_nll)
        if self.global_step % self.config.log_every_steps == 0:
            self.emit({"event": "step", "global_step": self.global_step, "loss": global_nll / global_tokens,
                       "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm})
        return global_nll, global_tokens

    # -- scoring ---------------------------------------------------------------------------------
    def scored_indices(self, epoch: int) -> list[int]:
        cap = self.config.score_max_samples
        n = len(self.rows)
        if cap is None or cap >= n:
            return list(range(n))
        rng = np.random.default_rng([self.config.seed, epoch, 1])
        return sorted(rng.choice(n, size=cap, replace=False).tolist())

    def score_epoch(self, epoch: int) -> pd.DataFrame:
        """Eq. 4 inputs and difficulty of the scored samples, gathered from every rank."""
        cfg = self.config
        indices = self.scored_indices(epoch)[self.ctx.rank::self.ctx.world_size]
        self.model.eval()
        local = []
        batches = prompt_batches([request_from_row(self.rows[i]) for i in indices], self.encoder,
                                 max_new_tokens=cfg.max_new_tokens, batch_size=cfg.score_batch_size,
                                 token_budget=cfg.score_token_budget)
        for positions, prompts in tqdm(batches, desc=f"score {epoch}", disable=not self.ctx.is_main, leave=False):
            chunk = [indices[p] for p in positions]
            scores = score_rows(self.vlm, self.nll, self.encoder, [self.rows[i] for i in chunk], prompts,
                                self.answer_checker, cfg.max_new_tokens, self.autocast)
            local.extend(zip(chunk, scores, strict=True))
        self.model.train()
        scored = sorted((pair for part in self.ctx.gather(local) for pair in part), key=lambda p: p[0])
        frame = pd.DataFrame({
            "epoch": epoch,
            "sample_id": [self.rows[i]["sample_id"] for i, _ in scored],
            "subquery_id": [self.rows[i]["subquery_id"] for i, _ in scored],
            "correct": [s.correct for _, s in scored],
            "perplexity": [s.perplexity for _, s in scored],
            "generated": [s.generated for _, s in scored],
        })
        frame.insert(5, "difficulty", difficulty(frame["correct"], frame["perplexity"], cfg.alpha, cfg.beta))
        if cfg.group_key != "subquery_id":
            frame[cfg.group_key] = [self.rows[i][cfg.group_key] for i, _ in scored]
        return frame

    def next_probabilities(self, scores: pd.DataFrame) -> pd.Series:
        cfg = self.config
        groups = scores[cfg.group_key] if cfg.group_key in scores else scores["subquery_id"]
        sizes = None
        if len(scores) < len(self.rows):
            sizes = pd.Series(self.groups).value_counts().to_dict()
        return group_probabilities(scores["difficulty"], groups, cfg.gamma, group_sizes=sizes)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, start_epoch: int) -> None:
        cfg = self.config
        for epoch in range(start_epoch, cfg.num_epochs + 1):
            began = time.perf_counter()
            loss = self.train_epoch(epoch)
            self.epoch_losses.append(loss)
            scores = self.score_epoch(epoch)
            self.probabilities = self.next_probabilities(scores)
            probs = pd.DataFrame({"epoch": epoch, cfg.group_key: self.probabilities.index,
                                  "probability": self.probabilities.to_numpy()})
            rng_states = self.ctx.gather(capture_rng_state())
            path = self.output_dir / f"epoch_{epoch:03d}"
            if self.ctx.is_main:
                path = save_epoch_checkpoint(
                    self.output_dir, epoch, model=self.model, optimizer=self.optimizer,
                    scheduler=self.scheduler, rng_states=rng_states, state=self.state(epoch), method=cfg.method,
                    tables={"difficulty": scores, "probabilities": probs})
            self.ctx.barrier()
            logger.info("epoch %d: loss %.4f, accuracy %.3f, mean perplexity %.3f", epoch, loss,
                        scores["correct"].mean(), scores["perplexity"].mean())
            self.emit({
                "event": "epoch_end", "epoch": epoch, "num_epochs": cfg.num_epochs, "loss": loss,
                "global_step": self.global_step, "accuracy": float(scores["correct"].mean()),
                "mean_perplexity": float(scores["perplexity"].mean()),
                "mean_difficulty": float(scores["difficulty"].mean()),
                "probabilities": {str(k): float(v) for k, v in self.probabilities.items()},
                "resampling": cfg.resampling, "checkpoint": str(path),
                "seconds": time.perf_counter() - began,
            })

    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "global_step": self.global_step,
            "epoch_losses": self.epoch_losses,
            "next_probabilities": {"groups": [_json_scalar(g) for g in self.probabilities.index],
                                   "values": self.probabilities.tolist()},
            "config": self.config.to_dict(),
            "data_fingerprint": self.fingerprint,
            "world_size": self.ctx.world_size,
            "base_model": str(self.vlm.path),
        }

    def save_final(self) -> Path:
        final = self.output_dir / "final"
        if self.ctx.is_main:
            tmp = self.output_dir / ".final.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save_pretrained(tmp, safe_serialization=True)
            if self.config.method == "full":  # a whole checkpoint: from_pretrained needs the processor too
                self.vlm.processor.save_pretrained(tmp)
            default_modes(tmp)  # safetensors writes 0600: the adapter is read by other users and pods
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        self.ctx.barrier()
        return final


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def train_lora(model_dir: str | Path, samples: pd.DataFrame, config: TrainConfig, output_dir: str | Path, *,
               answer_checker: AnswerChecker = exact_answer_match, model_config: VLMConfig | None = None,
               resume: bool = True, progress_callback: ProgressCallback | None = None,
               step_callback: StepCallback | None = None) -> TrainResult:
    """Fine-tune ``samples`` (see the module doc; a LoRA adapter or every weight, ``config.method``) and return
    the run's results.

    ``answer_checker(sample_row, generated_text) -> bool`` decides ``1[ŷ ≠ y]`` of Eq. 4 (default:
    normalised exact match of the ``<answer>`` blocks). ``resume=True`` continues from the last
    complete ``epoch_NNN/`` in ``output_dir`` (same data, same config up to its runtime fields);
    ``resume=False`` deletes earlier checkpoints there. ``progress_callback`` gets event dicts on rank 0;
    ``step_callback(global_step, model)`` (the trained module) runs on every rank after each step's backward (the
    gradients are complete and all-reduced) and before clipping.
    """
    model_config = model_config or VLMConfig()
    ctx = init_distributed(resolve_device(model_config.device))
    try:
        samples = check_samples(samples, config.group_key)
        output = Path(output_dir)
        if ctx.is_main:
            output.mkdir(parents=True, exist_ok=True)
        seed_everything(config.seed)
        vlm = LoadedVLM.from_pretrained(model_dir, model_config)
        trainer = Trainer(vlm, samples, config, output, answer_checker, ctx, progress_callback, step_callback)
        start_epoch = trainer.resume_or_start(resume)
        trainer.run(start_epoch)
        adapter_dir = trainer.save_final()
        checkpoints = complete_checkpoints(output)
        result = TrainResult(
            adapter_dir=adapter_dir, output_dir=output, epoch_losses=trainer.epoch_losses,
            difficulty=read_tables(checkpoints, "difficulty"),
            probabilities=read_tables(checkpoints, "probabilities"),
            global_step=trainer.global_step, resumed_from_epoch=start_epoch - 1, config=config)
        trainer.emit({"event": "finished", "adapter_dir": str(adapter_dir),
                      "epoch_losses": result.epoch_losses, "global_step": result.global_step})
        return result
    finally:
        shutdown_distributed(ctx)

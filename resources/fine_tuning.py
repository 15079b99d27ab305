"""The Dagster side of a fine-tuning run, shared by the `fine_tuning` and `ablation` stages.

The run itself (its folder, process, result and adapter) is `models.vlm.fine_tuning`; here are only
its launchpad settings and its start through Dagster Pipes, so that the training process streams its
logs into the Dagster run and stops when the run is cancelled.
"""

from __future__ import annotations

import dataclasses

from dagster import AssetExecutionContext, Config, PipesSubprocessClient
from pydantic import Field

from models.storage import PROJECT_ROOT
from models.vlm import TrainConfig
from models.vlm.fine_tuning import FineTuningRun
from models.vlm.presets import preset_for
from models.vlm.train import TrainResult

LAUNCH_SETTINGS = {"preset", "nproc_per_node", "resume"}


class FineTuneConfig(Config):
    """Training settings; unset fields come from the preset (``auto``: tiny model → ``tiny``, else
    ``lora_r16_attention``)."""

    preset: str = Field(default="auto", description="auto, lora_r16_attention (LoRA r16 on attention, lr 1e-4: "
                                                    "the project's choice, not the paper's) or tiny.")
    num_epochs: int | None = None
    per_device_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    learning_rate: float | None = None
    lr_schedule: str | None = Field(default=None, description="constant, linear or cosine.")
    warmup_steps: int | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_targets: list[str] | None = Field(default=None, description="Language-model projections to adapt.")
    vision_lora_targets: list[str] | None = Field(default=None, description="Vision blocks to adapt (frozen if unset).")
    gradient_checkpointing: bool | None = None
    resampling: bool = Field(default=True, description="Difficulty-aware resampling (off: uniform, the ablation).")
    alpha: float = Field(default=1.0, description="Eq. 4 weight of a wrong answer.")
    beta: float = Field(default=0.2, description="Eq. 4 weight of the answer's perplexity.")
    gamma: float = Field(default=1.0, description="Eq. 5 exponent: how strongly difficulty steers sampling.")
    samples_per_epoch: int | None = Field(default=None, description="None: the data set size.")
    score_max_samples: int | None = Field(default=None, description="None: score every sample (the paper).")
    score_batch_size: int | None = None
    max_new_tokens: int | None = Field(default=None, description="None: the longest target plus a margin.")
    seed: int = 0
    nproc_per_node: int = Field(default=1, description="Processes (GPUs) per node; >1 launches torchrun (DDP).")
    resume: bool = Field(default=True, description="Resume an interrupted run with the same config and data.")

    def train_config(self, tiny_model: bool, max_new_tokens: int) -> TrainConfig:
        """The preset with every set field on top; ``max_new_tokens`` when the config leaves it unset."""
        overrides = {k: v for k, v in self.model_dump(exclude=LAUNCH_SETTINGS).items() if v is not None}
        overrides.setdefault("max_new_tokens", max_new_tokens)
        return dataclasses.replace(preset_for(self.preset, tiny_model), **overrides)


def train_in_pipes(context: AssetExecutionContext, client: PipesSubprocessClient, run: FineTuningRun,
                   nproc_per_node: int = 1) -> TrainResult:
    """Run a prepared training run in a Pipes subprocess (torchrun for several processes); its result."""
    context.log.info(f"training in {run.directory} ({nproc_per_node} process(es))")
    client.run(command=run.command(nproc_per_node), context=context, cwd=str(PROJECT_ROOT))
    return run.result()

"""The Dagster side of a fine-tuning run, shared by the `fine_tuning` and `ablation` stages.

The run itself (its folder, process, result and adapter) is `models.vlm.fine_tuning`; here are only
its launchpad settings and its start through Dagster Pipes, so that the training process streams its
logs into the Dagster run and stops when the run is cancelled.
"""

from __future__ import annotations

from dagster import AssetExecutionContext, PipesSubprocessClient
from pydantic import Field

from models.storage import PROJECT_ROOT
from models.vlm import TrainConfig
from models.vlm.fine_tuning import FineTuningRun
from models.vlm.presets import preset_for
from models.vlm.train import TrainResult
from resources.config_mirror import mirror

TrainSettings = mirror(
    TrainConfig,
    unset="Unset: the preset's value.",
    unset_help={"max_new_tokens": "Unset: room for the longest training target (not the preset's value)."},
)


class FineTuneConfig(TrainSettings):
    """Training settings: every `models.vlm.TrainConfig` field, unset ones taken from the preset (``auto``: tiny
    model → ``tiny``, else ``lora_r16_attention``), and how the run is launched."""

    preset: str = Field(default="auto", description="auto, lora_r16_attention (LoRA r16 on attention, lr 1e-4: "
                                                    "the project's choice, not the paper's) or tiny.")
    nproc_per_node: int = Field(default=1, description="Processes (GPUs) per node; >1 launches torchrun (DDP).")
    resume: bool = Field(default=True, description="Resume an interrupted run with the same config and data.")

    def train_config(self, tiny_model: bool, max_new_tokens: int) -> TrainConfig:
        """The preset with every set field on top; ``max_new_tokens`` when the config leaves it unset."""
        preset = preset_for(self.preset, tiny_model)
        return self.to_core(base=preset, max_new_tokens=self.max_new_tokens or max_new_tokens)


def train_in_pipes(context: AssetExecutionContext, client: PipesSubprocessClient, run: FineTuningRun,
                   nproc_per_node: int = 1) -> TrainResult:
    """Run a prepared training run in a Pipes subprocess (torchrun for several processes); its result."""
    context.log.info(f"training in {run.directory} ({nproc_per_node} process(es))")
    client.run(command=run.command(nproc_per_node), context=context, cwd=str(PROJECT_ROOT))
    return run.result()

"""Stage 4: LoRA fine-tuning of Qwen2.5-VL with difficulty-aware resampling.

One op, three assets: `vlm_adapter` (the adapter folder, a checkpoint asset), `difficulty_scores`
(Eq. 4 for every sample after every epoch) and `resampling_probabilities` (Eq. 5 per subquery group
and epoch). Training runs in a separate process started through Dagster Pipes (under torchrun for
several GPUs), so its logs stream into the run, a cancelled run stops it, and the next run resumes
from the last complete epoch.
"""

import hashlib
import json
import shutil
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    Config,
    DataVersion,
    MetadataValue,
    Nothing,
    Output,
    PipesSubprocessClient,
    multi_asset,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import Field

from models.storage import adapter_dir, training_dir
from models.vlm import SAMPLE_COLUMNS, TrainConfig
from models.vlm.fine_tuning import DIFFICULTY_FILE, PROBABILITIES_FILE, RESULT_FILE
from models.vlm.inference import generation_room
from models.vlm.presets import preset_for
from models.vlm.train import data_fingerprint
from resources.metadata import frame_data_version, image_markdown, markdown_table
from resources.parquet_io import write_parquet_atomic
from resources.partitions import scenario_partitions
from resources.vlm import VisionLanguageModel

GPU_TAGS = {"logicls/compute": "gpu"}
TRAINING_CODE_VERSION = "1"
TRAINING_COLUMNS = [*SAMPLE_COLUMNS, "scenario", "answer_value"]


class FineTuneConfig(Config):
    """Training settings; unset fields come from the preset (``auto``: tiny model → ``tiny``, else ``paper``)."""

    preset: str = Field(default="auto", description="auto, paper (LoRA on attention, lr 1e-4) or tiny.")
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
        values: dict[str, Any] = preset_for(self.preset, tiny_model)
        overrides = self.model_dump(exclude={"preset", "nproc_per_node", "resume"})
        values |= {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
        values.setdefault("max_new_tokens", max_new_tokens)
        return TrainConfig.from_dict(values)


def training_samples(cot_dataset: pd.DataFrame) -> pd.DataFrame:
    """The columns training needs, in a stable order (the data fingerprint depends on it)."""
    missing = [c for c in TRAINING_COLUMNS if c not in cot_dataset.columns]
    if missing:
        raise ValueError(f"cot_dataset lacks columns {missing}: re-materialize cot_dataset")
    if cot_dataset.empty:
        raise ValueError("the CoT data has no rows to train on: see cot_dataset's flagged_images metadata (grounding "
                         "that contradicts every label drops every row under the `drop` policy)")
    return cot_dataset[TRAINING_COLUMNS].sort_values("sample_id", ignore_index=True)


def run_key(train_config: TrainConfig, samples: pd.DataFrame, base_model_hash: str) -> str:
    """Names the run folder: the same config, data and base model resume; anything else starts afresh."""
    payload = json.dumps([train_config.to_dict(), data_fingerprint(samples, train_config.group_key),
                          base_model_hash], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def worker_command(run_file: Path, nproc_per_node: int) -> list[str]:
    """One process, or torchrun (DDP) for several GPUs; both run the same worker module."""
    worker = ["-m", "models.vlm.fine_tuning", "--run", str(run_file)]
    if nproc_per_node <= 1:
        return [sys.executable, *worker]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            *worker]


def publish_adapter(run_dir: Path, target: Path) -> None:
    """Replace the scenario's current adapter with the run's final one, never leaving half a folder."""
    staging = target.parent / f".final-{uuid.uuid4().hex}"
    shutil.copytree(run_dir / "final", staging)
    old = target.parent / f".old-{uuid.uuid4().hex}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def adapter_data_version(directory: Path) -> DataVersion:
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.safetensors")):
        digest.update(path.read_bytes())
    return DataVersion(digest.hexdigest()[:16])


def remove_other_runs(scenario_dir: Path, keep: Path) -> None:
    """Earlier runs of other configs are superseded once a run finishes: free their disk space."""
    for path in scenario_dir.glob("run-*"):
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)


def epoch_summary(difficulty: pd.DataFrame, losses: list[float]) -> pd.DataFrame:
    summary = difficulty.groupby("epoch").agg(
        accuracy=("correct", "mean"), mean_perplexity=("perplexity", "mean"), mean_difficulty=("difficulty", "mean")
    )
    summary.insert(0, "loss", pd.Series(losses, index=np.arange(1, len(losses) + 1)))
    return summary.round(4)


def probability_plot(probabilities: pd.DataFrame, group_key: str) -> np.ndarray:
    """Eq. 5 probabilities per subquery group across epochs, as an RGB picture."""
    fig = Figure(figsize=(6, 3.2), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.subplots()
    table = probabilities.pivot(index="epoch", columns=group_key, values="probability")
    for column in table.columns:
        ax.plot(table.index, table[column], marker="o", label=str(column))
    ax.set_xlabel("after epoch")
    ax.set_ylabel("sampling probability")
    ax.set_xticks(table.index)
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


@multi_asset(
    name="fine_tuning",
    outs={
        "vlm_adapter": AssetOut(
            dagster_type=Nothing, kinds={"pytorch", "safetensors"}, code_version=TRAINING_CODE_VERSION,
            tags=GPU_TAGS, description="The scenario's LoRA adapter (PEFT folder) and its per-epoch checkpoints.",
        ),
        "difficulty_scores": AssetOut(
            kinds={"parquet"}, code_version=TRAINING_CODE_VERSION,
            description="Eq. 4 for every sample after every epoch: correct, perplexity, difficulty.",
        ),
        "resampling_probabilities": AssetOut(
            kinds={"parquet"}, code_version=TRAINING_CODE_VERSION,
            description="Eq. 5: the probability of every subquery group for the next epoch's minibatches.",
        ),
    },
    ins={"cot_dataset": AssetIn()},
    partitions_def=scenario_partitions,
    group_name="training",
    pool="gpu",
    op_tags=GPU_TAGS,
)
def fine_tuning(context: AssetExecutionContext, config: FineTuneConfig, cot_dataset: pd.DataFrame,
                vlm: VisionLanguageModel, pipes_subprocess_client: PipesSubprocessClient):
    """LoRA fine-tuning on the scenario's CoT data with difficulty-aware resampling (the paper's Eq. 4-5)."""
    scenario = context.partition_key
    samples = training_samples(cot_dataset)
    base = vlm.describe()
    train_config = config.train_config(vlm.is_tiny, generation_room(samples["target"]))
    scenario_dir = training_dir(vlm.storage_dir, scenario)
    run_dir = train_through_pipes(context, pipes_subprocess_client, vlm, scenario, samples, train_config,
                                  scenario_dir, nproc_per_node=config.nproc_per_node, resume=config.resume)
    yield from _outputs(run_dir, adapter_dir(vlm.storage_dir, scenario), train_config, samples, cot_dataset, base)
    remove_other_runs(scenario_dir, keep=run_dir)


def train_through_pipes(context: AssetExecutionContext, client: PipesSubprocessClient, vlm: VisionLanguageModel,
                        scenario: str, samples: pd.DataFrame, train_config: TrainConfig, runs_dir: Path, *,
                        nproc_per_node: int = 1, resume: bool = True) -> Path:
    """Train in a Pipes subprocess (torchrun for several processes); the run folder with ``final/``.

    The folder is named by config, data and base model, so an interrupted run with the same inputs
    resumes from its last complete epoch, and any change starts afresh in a new folder.
    """
    base = vlm.describe()
    run_dir = runs_dir / f"run-{run_key(train_config, samples, base['base_model_hash'])}"
    run_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(samples, run_dir / "samples.parquet")
    run_file = run_dir / "run.json"
    run_file.write_text(json.dumps({
        "scenario": scenario, "model_dir": base["base_model"], "samples": str(run_dir / "samples.parquet"),
        "output_dir": str(run_dir), "resume": resume,
        "model": asdict(vlm.vlm_config()), "train": train_config.to_dict(),
    }, indent=2))
    context.log.info(f"training {len(samples)} samples on {base['base_model']} in {run_dir}")
    client.run(command=worker_command(run_file, nproc_per_node), context=context,
               cwd=str(Path(__file__).resolve().parents[1]))
    return run_dir


def _outputs(run_dir: Path, final_dir: Path, train_config: TrainConfig, samples: pd.DataFrame,
             cot_dataset: pd.DataFrame, base: dict[str, str]):
    result = json.loads((run_dir / RESULT_FILE).read_text())
    difficulty = pd.read_parquet(run_dir / DIFFICULTY_FILE)
    probabilities = pd.read_parquet(run_dir / PROBABILITIES_FILE)
    publish_adapter(run_dir, final_dir)
    summary = epoch_summary(difficulty, result["epoch_losses"])
    yield Output(
        None,
        output_name="vlm_adapter",
        data_version=adapter_data_version(final_dir),
        metadata={
            "adapter_dir": MetadataValue.path(str(final_dir)),
            "checkpoints": MetadataValue.path(str(run_dir)),
            **base,
            "cot_dataset_data_version": frame_data_version(cot_dataset).value,
            "samples": len(samples),
            "training_config": MetadataValue.json(train_config.to_dict()),
            "epoch_losses": MetadataValue.json(result["epoch_losses"]),
            "epochs": MetadataValue.md(markdown_table(summary)),
            "resumed_from_epoch": result["resumed_from_epoch"],
            "global_step": result["global_step"],
        },
    )
    yield Output(difficulty, output_name="difficulty_scores", data_version=frame_data_version(difficulty),
                 metadata={"epochs": MetadataValue.md(markdown_table(summary))})
    wide = probabilities.pivot(index=train_config.group_key, columns="epoch", values="probability").round(4)
    yield Output(
        probabilities,
        output_name="resampling_probabilities",
        data_version=frame_data_version(probabilities),
        metadata={
            "probabilities": MetadataValue.md(markdown_table(wide)),
            "plot": MetadataValue.md(image_markdown(probability_plot(probabilities, train_config.group_key),
                                                    "sampling probability per subquery after each epoch")),
        },
    )

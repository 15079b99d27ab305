"""Stage 5: LoRA fine-tuning of Qwen2.5-VL with difficulty-aware resampling (``fine_tuning``).

One op, three assets: `vlm_adapter` (the adapter folder, a checkpoint asset), `difficulty_scores`
(Eq. 4 for every sample after every epoch) and `resampling_probabilities` (Eq. 5 per subquery group
and epoch). The op is named after its primary asset (its launchpad config sits under
``ops: vlm_adapter``), since Dagster refuses an op with the name of a job (the stage's job is
``fine_tuning``). The run itself is `models.vlm.fine_tuning`: this module prepares it from the launchpad
config, starts its process through Dagster Pipes (under torchrun for several GPUs; logs stream into
the run, a cancelled run stops it, and the next run resumes from the last complete epoch), and turns
its result into the three outputs.
"""

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    DataVersion,
    MetadataValue,
    Nothing,
    Output,
    PipesSubprocessClient,
    multi_asset,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.vlm import trained_kind
from models.vlm.fine_tuning import FineTuningRun, adapter_digest, epoch_summary, training_samples
from models.vlm.inference import generation_room
from resources.fine_tuning import FineTuneConfig, train_in_pipes
from resources.metadata import frame_data_version, image_markdown, markdown_table
from resources.partitions import scenario_partitions
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel

GPU_TAGS = {"logicls/compute": "gpu"}
TRAINING = ["models.vlm.train.TRAINING_VERSION"]
CODE_VERSIONS = {"vlm_adapter": TRAINING, "difficulty_scores": TRAINING, "resampling_probabilities": TRAINING}


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
    outs={
        "vlm_adapter": AssetOut(
            dagster_type=Nothing, kinds={"pytorch", "safetensors"},
            tags=GPU_TAGS, description="The scenario's LoRA adapter (PEFT folder) and its per-epoch checkpoints.",
        ),
        "difficulty_scores": AssetOut(
            kinds={"parquet"},
            description="Eq. 4 for every sample after every epoch: correct, perplexity, difficulty.",
        ),
        "resampling_probabilities": AssetOut(
            kinds={"parquet"},
            description="Eq. 5: the probability of every subquery group for the next epoch's minibatches.",
        ),
    },
    ins={"cot_dataset": AssetIn()},
    partitions_def=scenario_partitions,
    pool="gpu",
    op_tags=GPU_TAGS,
)
def vlm_adapter(context: AssetExecutionContext, config: FineTuneConfig, cot_dataset: pd.DataFrame,
                vlm: VisionLanguageModel, storage: StorageResource, pipes_subprocess_client: PipesSubprocessClient):
    """LoRA fine-tuning on the scenario's CoT data with difficulty-aware resampling (the paper's Eq. 4-5)."""
    scenario = context.partition_key
    samples = training_samples(cot_dataset)
    base = vlm.describe()
    train_config = config.train_config(vlm.is_tiny, generation_room(samples["target"], vlm.tokenizer()))
    run = FineTuningRun.prepare(storage.layout.training_dir(scenario), samples, train_config,
                                model_dir=base["base_model"], base_model_hash=base["base_model_hash"],
                                model_config=vlm.vlm_config(), scenario=scenario, resume=config.resume)
    context.log.info(f"training {len(samples)} samples on {base['base_model']}")
    result = train_in_pipes(context, pipes_subprocess_client, run, config.nproc_per_node)
    final_dir = storage.layout.adapter_dir(scenario)
    run.publish_adapter(final_dir)
    summary = epoch_summary(result.difficulty, result.epoch_losses)
    yield Output(
        None,
        output_name="vlm_adapter",
        data_version=DataVersion(adapter_digest(final_dir)),
        metadata={
            "adapter_dir": MetadataValue.path(str(final_dir)),
            "weights": trained_kind(final_dir),
            "checkpoints": MetadataValue.path(str(run.directory)),
            **base,
            "cot_dataset_data_version": frame_data_version(cot_dataset).value,
            "samples": len(samples),
            **vlm.resolution_metadata([*samples["image_path"], *samples["example_image_path"]]),
            "training_config": MetadataValue.json(train_config.to_dict()),
            "epoch_losses": MetadataValue.json(result.epoch_losses),
            "epochs": MetadataValue.md(markdown_table(summary)),
            "resumed_from_epoch": result.resumed_from_epoch,
            "global_step": result.global_step,
        },
    )
    difficulty, probabilities = result.difficulty, result.probabilities
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
    run.remove_other_runs()

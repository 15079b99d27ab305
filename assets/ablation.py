"""The Table III ablation (the unnumbered stage `ablation`): what each ingredient of LogiCls adds.

| Table III row | configuration |
|---|---|
| decomposition only | the base model in context (`lac_predictions`, method `icl`) |
| + SFT (answers only) | `sft_answers`: LoRA on answers without reasoning, original images, uniform sampling |
| + reasoning | `sft_reasoning`: reasoning without box coordinates |
| + boxes in the reasoning | `sft_reasoning_boxes`: reasoning citing the grounded boxes |
| + augmentation and resampling | the main chain (`lac_predictions`, method `finetuned`) |

`lac_ablation` trains and evaluates the three middle rows per scenario (through the same fine-tuning
run, `models.vlm.fine_tuning`, and the same prediction code as the main chain); `lac_metrics` adds its rows,
labelled by configuration, and shows them in the Table III order.
"""

from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, PipesSubprocessClient, asset
from pydantic import Field

from models.evaluation import build_questions, predict, select_examples
from models.evaluation.answerers import PredictionConfig, local_answerer
from models.instruct.cot import CotConfig, build_cot, original_records, questions_by_subquery
from models.objects import objects_from_frame
from models.vlm.fine_tuning import FineTuningRun, training_samples
from models.vlm.inference import generation_room
from resources.config_mirror import mirror
from resources.fine_tuning import FineTuneConfig, train_in_pipes
from resources.metadata import frame_data_version, markdown_table
from resources.partitions import scenario_partitions, spec_for
from resources.storage import StorageResource
from resources.tags import GPU_POOL, gpu_tags
from resources.vlm import VisionLanguageModel


@dataclass(frozen=True)
class Ablation:
    """One middle row of Table III: how its training data and sampling differ from the full method."""

    reasoning: str
    table_iii_row: str
    resampling: bool = False


ABLATIONS = {
    "sft_answers": Ablation("answer_only", "+ SFT (answers only)"),
    "sft_reasoning": Ablation("no_boxes", "+ reasoning"),
    "sft_reasoning_boxes": Ablation("boxes", "+ boxes in the reasoning"),
}

CODE_VERSIONS = {"lac_ablation": ["models.vlm.train.TRAINING_VERSION", "models.instruct.cot.COT_VERSION",
                                   "models.evaluation.predict.PREDICTION_VERSION"]}

# Table III in the paper's order: (row, method, configuration) of lac_metrics.
TABLE_III_ROWS = [
    ("decomposition only", "icl", "default"),
    *[(a.table_iii_row, "finetuned", name) for name, a in ABLATIONS.items()],
    ("+ augmentation and resampling", "finetuned", "default"),
]


class AblationConfig(mirror(PredictionConfig, hidden={"api_concurrency": "the ablation asks the local model "
                                                                           "only, never an endpoint"})):
    """Which ablations run, and the training and generation settings they share with the main chain: generation
    follows `models.evaluation.PredictionConfig` as `lac_predictions` does, so each Table III row is produced
    under the same limit as the rows it is compared with."""

    configurations: list[str] = Field(default=list(ABLATIONS), description=f"Any of {list(ABLATIONS)}.")
    training: FineTuneConfig = Field(default_factory=FineTuneConfig, description="As for vlm_adapter.")


@asset(
    partitions_def=scenario_partitions,
    kinds={"pytorch", "parquet"},
    pool=GPU_POOL,
    tags=gpu_tags(),
)
def lac_ablation(context: AssetExecutionContext, config: AblationConfig, loco_fc_split: pd.DataFrame,
                 grounding: pd.DataFrame, subquery_paraphrases: pd.DataFrame, vlm: VisionLanguageModel,
                 storage: StorageResource, pipes_subprocess_client: PipesSubprocessClient):
    """Table III's middle rows for one scenario: for each ablation, its CoT data (original training images, the
    configured reasoning), a LoRA adapter trained without resampling, and its predictions on the test split, in
    the columns of lac_predictions plus `configuration`."""
    unknown = sorted(set(config.configurations) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"unknown ablation configurations {unknown}; choose from {list(ABLATIONS)}")
    spec = spec_for(context.partition_key)
    settings = config.to_core()
    train = loco_fc_split[loco_fc_split["split"] == "train"]
    test = loco_fc_split[loco_fc_split["split"] == "test"]
    truth = dict(zip(test["image_id"], test["labels"], strict=True))
    records = original_records(spec, train, objects_from_frame(grounding))
    questions = questions_by_subquery(subquery_paraphrases)
    base = vlm.describe()
    frames = []
    tokenizer = vlm.tokenizer()
    for name in config.configurations:
        ablation = ABLATIONS[name]
        cot = build_cot(spec, records, questions, CotConfig(reasoning=ablation.reasoning)).table
        samples = training_samples(cot)
        train_config = config.training.model_copy(update={"resampling": ablation.resampling}).train_config(
            vlm.is_tiny, generation_room(samples["target"], tokenizer))
        run = FineTuningRun.prepare(storage.layout.ablation_dir(name, spec.scenario), samples, train_config,
                                    model_dir=base["base_model"], base_model_hash=base["base_model_hash"],
                                    model_config=vlm.vlm_config(), scenario=spec.scenario,
                                    resume=config.training.resume)
        train_in_pipes(context, pipes_subprocess_client, run, config.training.nproc_per_node)
        asked = build_questions(test, spec, select_examples(cot, spec, train["image_id"]))
        answerer = local_answerer(vlm.load(run.adapter_dir), batch_size=settings.batch_size,
                                  token_budget=settings.token_budget,
                                  max_new_tokens=settings.generation_limit(samples["target"], tokenizer,
                                                                           tiny=vlm.is_tiny))
        table = predict(spec, asked, answerer, method="finetuned", model=vlm.model_dir().name, true_labels=truth,
                        policy=settings.policy)
        frames.append(table.assign(configuration=name))
        context.log.info(f"{name}: trained on {len(samples)} samples, {len(asked)} questions answered")
    table = pd.concat(frames, ignore_index=True)
    summary = table.groupby("configuration")["parseable"].mean().round(3).rename("parseable").to_frame()
    return Output(table, data_version=frame_data_version(table),
                  metadata={**vlm.describe(), "configurations": MetadataValue.json(config.configurations),
                            "parseable": MetadataValue.md(markdown_table(summary))})

"""Jobs: the chain's stages, each selectable per scenario partition, and the cross-scenario metrics.

Jobs select assets by stage, and a stage's asset group is its module's name (`pipelines.definitions`);
a job that runs one stage alone carries the stage's name (`fine_tuning`, `evaluation`, `ablation`).

Per-scenario jobs leave out the assets computed over every scenario at once (``lac_metrics`` and its
siblings, tagged ``logicls/scope: all_scenarios``): those run once the scenarios are done, through
``lac_metrics_job`` (or by themselves when the automation sensor is on). The Table III ablation trains
three more adapters per scenario, so it has its own job and stays out of the main chain.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from resources.tags import ALL_SCENARIOS, SCOPE_TAG

METRICS_ASSETS = AssetSelection.tag(SCOPE_TAG, ALL_SCENARIOS)
ABLATION = AssetSelection.groups("ablation")
DATASET = AssetSelection.groups("split", "grounding", "instruction_data")
FINE_TUNING = AssetSelection.groups("fine_tuning")
EVALUATION = AssetSelection.groups("evaluation") - METRICS_ASSETS

# A training run may take many hours on real checkpoints; with run monitoring on (deploy/*/dagster.yaml) a
# run past this is stopped rather than holding a GPU forever. Crashed runs (not failed steps) are retried.
TRAINING_RUN_TAGS = {"dagster/max_runtime": str(48 * 3600), "dagster/max_retries": "1"}

build_dataset = define_asset_job(
    "build_dataset",
    selection=DATASET,
    description="Re-split, grounding, paraphrases, augmentation and the CoT data set of one scenario.",
)

fine_tuning = define_asset_job(
    "fine_tuning",
    selection=FINE_TUNING,
    tags=TRAINING_RUN_TAGS,
    description="LoRA fine-tuning of one scenario: vlm_adapter, difficulty_scores, resampling_probabilities.",
)

evaluation = define_asset_job(
    "evaluation",
    selection=EVALUATION,
    description="Predictions and the evidence report of one scenario; lac_metrics_job then scores all scenarios.",
)

train_and_evaluate = define_asset_job(
    "train_and_evaluate",
    selection=FINE_TUNING | EVALUATION,
    tags=TRAINING_RUN_TAGS,
    description="Training and evaluation in one run, so predictions use the new adapter (scheduled retraining).",
)

full_pipeline = define_asset_job(
    "full_pipeline",
    selection=DATASET | FINE_TUNING | EVALUATION,
    tags=TRAINING_RUN_TAGS,
    description="Every stage of LogiCls for one scenario: re-split, grounding, instruction data, "
    "fine-tuning, evaluation (predictions and report). Run lac_metrics_job once all scenarios are done.",
)

refresh_from_split = define_asset_job(
    "refresh_from_split",
    selection=AssetSelection.assets("loco_fc_split").downstream() - METRICS_ASSETS - ABLATION,
    tags=TRAINING_RUN_TAGS,
    description="Re-split one scenario and re-materialize everything downstream of the split; the "
    "new-data sensor requests it when labelled images are added.",
)

ablation = define_asset_job(
    "ablation",
    selection=ABLATION,
    tags=TRAINING_RUN_TAGS,
    description="Table III for one scenario: three more adapters (answers only, reasoning, reasoning with boxes), "
    "each evaluated; lac_metrics_job then adds their rows.",
)

lac_metrics_job = define_asset_job(
    "lac_metrics_job",
    selection=METRICS_ASSETS,
    description="Table II- and Table III-shaped metrics over every scenario's lac_predictions (and lac_ablation).",
)

JOBS = [build_dataset, fine_tuning, evaluation, train_and_evaluate, full_pipeline, refresh_from_split, ablation,
        lac_metrics_job]

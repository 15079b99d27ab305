"""Stage 6: evaluation, i.e. LAC predictions with evidence trails, Table II metrics and evidence reports.

``lac_predictions`` and ``lac_report`` are per scenario; ``lac_metrics`` (with ``lac_class_metrics``
and ``lac_confusion``) is unpartitioned and reads every scenario's predictions, so it runs after
the per-scenario runs (``pipelines/demo.py`` launches it once they are done).
"""

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AutomationCondition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pydantic import Field

from assets.ablation import TABLE_III_ROWS
from models.evaluation import (
    METHODS,
    Answerer,
    api_answerer,
    build_questions,
    compute_metrics,
    confusion_summary,
    local_answerer,
    missing_scenarios,
    predict,
    scenario_report,
    select_examples,
    write_html,
)
from models.evaluation.answerers import PredictionConfig
from models.evaluation.grounded import GROUNDED, grounded_answers, measured_share
from models.evaluation.metrics import DEFAULT_CONFIGURATION
from models.evaluation.plots import table_ii_figure
from models.evaluation.predict import image_rows, parse_rate
from models.spec import ScenarioSpec
from models.spec.metrics import scenario_scores
from models.vlm import trained_kind
from resources.config_mirror import mirror
from resources.llm import ChatEndpoint
from resources.metadata import frame_data_version, image_markdown, markdown_table
from resources.partitions import SCENARIO_SPECS, scenario_partitions, spec_for
from resources.retries import retry_on_endpoint_outage
from resources.storage import StorageResource
from resources.tags import GPU_POOL, all_scenarios_tags, gpu_tags
from resources.vlm import TINY_NOTE, VisionLanguageModel

PARSEABLE_TARGET = 0.9
LOCAL_METHODS = {"icl", "finetuned"}  # the methods that load the local base model
PREVIEW_IMAGES = 12
METRICS = ["models.evaluation.metrics.METRICS_VERSION"]
CODE_VERSIONS = {
    "lac_predictions": ["models.evaluation.predict.PREDICTION_VERSION",
                        "models.evaluation.answerers.API_CACHE_TAG",
                        "models.instruct.cot.COT_VERSION"],  # the grounded method's reasoning is the CoT's
    "lac_report": ["models.evaluation.report.REPORT_VERSION"],
    "lac_metrics": METRICS, "lac_class_metrics": METRICS, "lac_confusion": METRICS,
}


# lac_metrics follows its inputs by itself once the automation sensor is switched on (off by default):
# after every scenario's predictions exist, any new predictions (a scheduled retraining) refresh it.
METRICS_AUTOMATION = AutomationCondition.eager()


class LacPredictionsConfig(mirror(PredictionConfig)):
    """Which methods answer the test split, how generation runs (`models.evaluation.PredictionConfig`, shared
    with the Table III rows), and step retries."""

    methods: list[str] = Field(
        default=list(METHODS),
        description="finetuned (base + the scenario's adapter), icl (base model in context), icl_api "
                    "(the icl_endpoint resource in context; skipped when no endpoint is configured), grounded "
                    "(training-free: the grounding table through the spec's measures, no model).",
    )
    endpoint_retries: int = Field(default=2, description="Step retries, a minute apart, after an endpoint outage "
                                  "(connection errors, timeouts, HTTP 408/409/429/5xx; 0: fail at once). A refused "
                                  "request (HTTP 400/401/403/404/422) fails at once.")


@asset(
    partitions_def=scenario_partitions,
    deps=[AssetKey("vlm_adapter")],
    kinds={"pytorch", "parquet"},
    pool=GPU_POOL,
    tags=gpu_tags(),
    check_specs=[
        AssetCheckSpec("answers_parseable", asset="lac_predictions",
                       description=f"At least {PARSEABLE_TARGET:.0%} of each method's replies could be parsed."),
    ],
)
def lac_predictions(context: AssetExecutionContext, config: LacPredictionsConfig, loco_fc_split: pd.DataFrame,
                    cot_dataset: pd.DataFrame, grounding: pd.DataFrame, vlm: VisionLanguageModel,
                    icl_endpoint: ChatEndpoint, storage: StorageResource):
    """Every subquery of every test image asked in the paper's Fig. 3 format (one normal training image from
    cot_dataset as the example), by the fine-tuned model, the same base model in context, and optionally an
    OpenAI-compatible endpoint, and answered without a model from the test images' grounding through the spec's
    measures (grounded); replies parsed and h applied. One row per (image, subquery, method) with the raw reply,
    the parsed answer and, repeated per image, the true and predicted label sets and the evidence."""
    spec = spec_for(context.partition_key)
    settings = config.to_core()
    methods, skipped = _methods(config.methods, icl_endpoint)
    adapter = storage.layout.adapter_dir(spec.scenario)
    if "finetuned" in methods:
        try:
            trained_kind(adapter)
        except FileNotFoundError:
            raise Failure(f"no fine-tuned weights (LoRA adapter or full checkpoint) at {adapter}: materialize "
                          f"vlm_adapter for {spec.scenario} first, or leave 'finetuned' out of methods") from None
    train_ids = loco_fc_split.loc[loco_fc_split["split"] == "train", "image_id"]
    test = loco_fc_split[loco_fc_split["split"] == "test"]
    truth = dict(zip(test["image_id"], test["labels"], strict=True))
    frames, timing, usage = [], {}, {}
    asked = [m for m in methods if m != GROUNDED]
    questions = build_questions(test, spec, select_examples(cot_dataset, spec, train_ids)) if asked else []
    # grounded alone loads no model, not even its tokenizer
    max_new_tokens = settings.generation_limit(cot_dataset["target"], vlm.tokenizer(), tiny=vlm.is_tiny) if asked \
        else None
    with retry_on_endpoint_outage(config.endpoint_retries):
        for method, model, answerer in _answerers(asked, vlm, icl_endpoint, adapter, settings, max_new_tokens,
                                                  usage):
            began = time.perf_counter()
            frames.append(predict(spec, questions, answerer, method=method, model=model, true_labels=truth,
                                  policy=settings.policy))
            timing[method] = time.perf_counter() - began
            context.log.info(f"{method} ({model}): {len(questions)} questions in {timing[method]:.1f} s")
    if GROUNDED in methods:
        began = time.perf_counter()
        frames.append(grounded_answers(spec, grounding, test, true_labels=truth, policy=settings.policy))
        timing[GROUNDED] = time.perf_counter() - began
        context.log.info(f"grounded: {len(test)} images answered from the grounding in {timing[GROUNDED]:.1f} s")
    table = pd.concat(frames, ignore_index=True)
    rates = parse_rate(table)
    yield Output(
        table,
        data_version=frame_data_version(table),
        metadata={
            **(vlm.describe() if set(methods) & LOCAL_METHODS else {}),  # grounded alone loads no model
            **icl_endpoint.describe(),
            "adapter": MetadataValue.path(str(adapter)),
            "methods_run": MetadataValue.json(methods),
            "methods_skipped": MetadataValue.json(skipped),
            "test_images": len(test),
            "questions_per_method": len(test) * len(spec.subqueries),
            "max_new_tokens": max_new_tokens,
            **(vlm.resolution_metadata([p for q in questions for p in (q.image_path, q.example.image_path)])
               if asked else {}),
            "icl_example_images": MetadataValue.json(sorted({q.example.image_id for q in questions})),
            "per_method": MetadataValue.md(markdown_table(_per_method(spec, table, timing), index=False)),
            "predictions": MetadataValue.md(markdown_table(_preview(table), index=False)),
            "llm_usage": MetadataValue.json(usage),
            "grounded_measured_share": MetadataValue.json(measured_share(table)),
        },
    )
    yield AssetCheckResult(
        check_name="answers_parseable",
        passed=all(rate >= PARSEABLE_TARGET for rate in rates.values()),
        severity=AssetCheckSeverity.WARN,
        metadata={"parseable_share": MetadataValue.json(rates)},
    )


def _methods(requested: list[str], endpoint: ChatEndpoint) -> tuple[list[str], list[str]]:
    """The methods to run (in a fixed order) and those skipped: icl_api needs a configured endpoint."""
    unknown = sorted(set(requested) - set(METHODS))
    if unknown:
        raise Failure(f"unknown methods {unknown}; choose from {list(METHODS)}")
    skipped = ["icl_api"] if "icl_api" in requested and not endpoint.is_configured else []
    methods = [m for m in METHODS if m in requested and m not in skipped]
    if not methods:
        raise Failure("no method to run: icl_api was requested but no icl_endpoint is configured "
                      "(set LOGICLS_ICL_BASE_URL and LOGICLS_ICL_MODEL)")
    return methods, skipped


def _answerers(methods: list[str], vlm: VisionLanguageModel, endpoint: ChatEndpoint, adapter: Path,
               settings: PredictionConfig, max_new_tokens: int,
               usage: dict[str, int]) -> Iterator[tuple[str, str, Answerer]]:
    """(method, model name, answerer) in turn; the base model is loaded once, ``icl`` answers before the
    adapter is attached for ``finetuned``; the endpoint's usage counts land in ``usage``."""
    local = [m for m in ("icl", "finetuned") if m in methods]  # LOCAL_METHODS, icl first
    if local:
        loaded = vlm.load()
        for method in local:
            if method == "finetuned":
                loaded.load_trained(adapter)
            yield method, vlm.model_dir().name, local_answerer(loaded, batch_size=settings.batch_size,
                                                                token_budget=settings.token_budget,
                                                                max_new_tokens=max_new_tokens)
    if "icl_api" in methods:
        with endpoint.client() as client:
            yield "icl_api", endpoint.model, api_answerer(client, concurrency=settings.api_concurrency)
            usage.update(client.report())


def _per_method(spec: ScenarioSpec, table: pd.DataFrame, timing: dict[str, float]) -> pd.DataFrame:
    rows = []
    for (model, method), part in table.groupby(["model", "method"], sort=False):
        images = image_rows(part)
        scores = scenario_scores(spec.scenario, images["true_labels"], images["predicted_labels"], spec.class_names)
        rows.append({"method": method, "model": model, "binary_f1": round(100 * scores.binary_f1, 2),
                     "macro_f1": round(100 * scores.macro_f1, 2), "parseable": round(part["parseable"].mean(), 3),
                     "seconds": round(timing[method], 1),
                     "s_per_question": round(timing[method] / max(len(part), 1), 4)})
    return pd.DataFrame(rows)


def _preview(table: pd.DataFrame) -> pd.DataFrame:
    """Truth and each method's label set for the first images."""
    images = image_rows(table)
    wide = images.pivot(index="image_id", columns="method", values="predicted_labels")
    truth = images.drop_duplicates("image_id").set_index("image_id")["true_labels"]
    wide.insert(0, "truth", truth)
    wide = wide.head(PREVIEW_IMAGES).map(lambda labels: ", ".join(labels))
    return wide.reset_index()


METRICS_CHECK = "metrics_cover_every_scenario"


@multi_asset(
    outs={
        "lac_metrics": AssetOut(kinds={"pandas", "parquet"}, tags=all_scenarios_tags(),
                                automation_condition=METRICS_AUTOMATION,
                                description="Table II: binary and macro F1 (%) per scenario and on average, "
                                            "one row per model × method (× configuration)."),
        "lac_class_metrics": AssetOut(kinds={"pandas", "parquet"}, tags=all_scenarios_tags(),
                                      automation_condition=METRICS_AUTOMATION,
                                      description="Per class: precision, recall, F1, support (one-vs-rest)."),
        "lac_confusion": AssetOut(kinds={"pandas", "parquet"}, tags=all_scenarios_tags(),
                                  automation_condition=METRICS_AUTOMATION,
                                  description="Images per (true label set, predicted label set) with its outcome."),
    },
    ins={"lac_predictions": AssetIn(partition_mapping=AllPartitionMapping(),
                                    metadata={"allow_missing_partitions": True}),
         "lac_ablation": AssetIn(partition_mapping=AllPartitionMapping(),
                                 metadata={"allow_missing_partitions": True})},
    check_specs=[
        AssetCheckSpec(METRICS_CHECK, asset="lac_metrics", blocking=True,
                       description="Every scenario partition has predictions, for every model × method row."),
    ],
)
def lac_metrics(context: AssetExecutionContext, lac_predictions: dict[str, pd.DataFrame],
                lac_ablation: dict[str, pd.DataFrame], vlm: VisionLanguageModel):
    """Table II-shaped metrics over every scenario's lac_predictions (the paper's binary F1 and macro F1), per-class
    precision / recall / F1 and a confusion summary. Ablation predictions (Table III) with a `configuration`
    column can be concatenated to the input and come out as rows labelled by configuration."""
    scenarios = list(SCENARIO_SPECS)
    predictions = pd.concat([*lac_predictions.values(), *lac_ablation.values()], ignore_index=True)
    classes = {s: spec.class_names for s, spec in SCENARIO_SPECS.items()}
    tables = compute_metrics(predictions, classes, scenarios)
    absent = [s for s in scenarios if s not in lac_predictions]
    main_rows = tables.table_ii["configuration"] == DEFAULT_CONFIGURATION
    missing = missing_scenarios(tables.table_ii[main_rows], scenarios)
    ablation_missing = missing_scenarios(tables.table_ii[~main_rows], scenarios)  # optional: reported, not blocking
    notes = [TINY_NOTE] if vlm.is_tiny else []
    plot = image_markdown(table_ii_figure(tables.table_ii, scenarios), "Table II (binary / macro F1, %)",
                          max_width=1000)
    summary = confusion_summary(tables.confusion)
    yield Output(tables.table_ii, output_name="lac_metrics", data_version=frame_data_version(tables.table_ii),
                 metadata={"table_ii": MetadataValue.md(markdown_table(tables.table_ii.round(2), index=False)),
                           "table_iii": MetadataValue.md(markdown_table(table_iii(tables.table_ii), index=False)),
                           "plot": MetadataValue.md(plot), "notes": MetadataValue.json(notes),
                           "scenarios_present": MetadataValue.json(sorted(lac_predictions))})
    yield Output(tables.per_class, output_name="lac_class_metrics",
                 data_version=frame_data_version(tables.per_class),
                 metadata={"classes": MetadataValue.md(markdown_table(tables.per_class.round(3), index=False))})
    yield Output(tables.confusion, output_name="lac_confusion", data_version=frame_data_version(tables.confusion),
                 metadata={"outcomes": MetadataValue.md(markdown_table(summary, index=False))})
    yield AssetCheckResult(
        check_name=METRICS_CHECK,
        asset_key="lac_metrics",
        passed=not absent and not missing,
        metadata={"scenarios_without_predictions": MetadataValue.json(absent),
                  "rows_missing_scenarios": MetadataValue.json(missing),
                  "ablation_rows_missing_scenarios": MetadataValue.json(ablation_missing)},
    )
    if absent:
        context.log.error(f"metrics missing a scenario: no lac_predictions for {absent}")


def table_iii(table_ii: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table III view of the metrics: one row per ingredient, in its order, where measured."""
    rows = []
    for row, method, configuration in TABLE_III_ROWS:
        hit = table_ii[(table_ii["method"] == method) & (table_ii["configuration"] == configuration)]
        for _, found in hit.iterrows():
            rows.append({"table_iii_row": row, "model": found["model"], "configuration": configuration,
                         "binary_f1": round(found["average/binary_f1"], 2),
                         "macro_f1": round(found["average/macro_f1"], 2)})
    return pd.DataFrame(rows, columns=["table_iii_row", "model", "configuration", "binary_f1", "macro_f1"])


@asset(
    partitions_def=scenario_partitions,
    kinds={"html"},
)
def lac_report(context: AssetExecutionContext, lac_predictions: pd.DataFrame, grounding: pd.DataFrame,
               vlm: VisionLanguageModel, storage: StorageResource) -> MaterializeResult:
    """A self-contained HTML page per scenario: each test image with its grounded boxes, every subquery with each
    model's reasoning and parsed answer, the classes h fired with their evidence, and the truth."""
    spec = spec_for(context.partition_key)
    notes = [TINY_NOTE] if vlm.is_tiny else []
    html = scenario_report(spec, lac_predictions, grounding, notes=notes)
    path = write_html(storage.layout.report(spec.scenario), html)
    return MaterializeResult(
        metadata={
            "report": MetadataValue.path(str(path)),
            "report_url": MetadataValue.url(path.resolve().as_uri()),
            "images": int(lac_predictions["image_id"].nunique()),
            "size_kb": round(path.stat().st_size / 1024, 1),
        },
        data_version=DataVersion(hashlib.sha256(html.encode()).hexdigest()[:16]),
    )

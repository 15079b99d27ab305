"""Stage 4: instruction data, i.e. subquery paraphrases, augmented images and the CoT data set."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from models.grounding import Calibration, calibration_of, draw_overlay, ground_images, queries_from_spec
from models.images import read_rgb
from models.instruct.augment import (
    CUT_PASTE,
    KINDS,
    Augmentation,
    AugmentConfig,
    Parent,
    augment_split,
    h_disagreements,
    reground_agreement,
)
from models.instruct.cot import (
    CotBuild,
    CotConfig,
    ImageRecord,
    answer_agreement,
    augmented_records,
    build_cot,
    llamafactory_dataset_info,
    original_records,
    questions_by_subquery,
    unparseable_answers,
    write_jsonl,
)
from models.instruct.paraphrase import PARAPHRASE_COLUMNS, ParaphraseConfig, paraphrase_subquery
from models.objects import objects_from_frame
from models.spec import ScenarioSpec, inverse, paraphrase_invariants
from resources.config_mirror import mirror
from resources.grounding import Grounder
from resources.llm import ChatEndpoint
from resources.loco import LocoDataset
from resources.metadata import frame_data_version, image_markdown, markdown_table
from resources.partitions import scenario_partitions, spec_for
from resources.retries import retry_on_endpoint_outage
from resources.storage import StorageResource

VISIBLE_TARGET = 0.9  # share of cut-paste images whose edit grounding must see again
AGREEMENT_TARGET = 0.95  # share of CoT answers that must equal the generator's truth
CODE_VERSIONS = {
    "subquery_paraphrases": ["models.instruct.paraphrase.PROMPT_VERSION"],
    "augmented_images": ["models.instruct.augment.AUGMENT_VERSION"],
    "cot_dataset": ["models.instruct.cot.COT_VERSION"],
}


class SubqueryParaphrasesConfig(mirror(ParaphraseConfig)):
    """How many paraphrases each subquery gets (`models.instruct.paraphrase.ParaphraseConfig`), and step retries."""

    endpoint_retries: int = Field(default=2, description="Step retries, a minute apart, after an endpoint outage "
                                  "(connection errors, timeouts, HTTP 408/409/429/5xx; 0: fail at once). A refused "
                                  "request (HTTP 400/401/403/404/422) fails at once.")


@asset(
    partitions_def=scenario_partitions,
    kinds={"openai", "parquet"},
    check_specs=[
        AssetCheckSpec("paraphrase_counts", asset="subquery_paraphrases",
                       description="Every subquery has between n_min and n_max paraphrases."),
    ],
)
def subquery_paraphrases(context: AssetExecutionContext, config: SubqueryParaphrasesConfig,
                         paraphraser: ChatEndpoint):
    """10–20 paraphrases per subquery (row 0 of each subquery is its original text) from an OpenAI-compatible
    endpoint, validated to keep numbers, objects and the answer format; offline rule-based when none is set."""
    spec = spec_for(context.partition_key)
    settings = config.to_core()
    rows = []
    with retry_on_endpoint_outage(config.endpoint_retries), paraphraser.client() as client:
        for sub in spec.subqueries:
            found = paraphrase_subquery(sub.text, paraphrase_invariants(sub), settings.n_min, settings.n_max,
                                        client=client, seed=settings.seed, max_rounds=settings.max_rounds)
            rows.append((spec.scenario, sub.id, 0, sub.text, "original", None))
            rows += [(spec.scenario, sub.id, i, p.text, p.source, p.model) for i, p in enumerate(found, start=1)]
        usage = client.report() if client is not None else {}
    table = pd.DataFrame(rows, columns=PARAPHRASE_COLUMNS)
    counts = table[table["paraphrase_source"] != "original"].groupby("subquery_id").size()
    sources = table["paraphrase_source"].value_counts().to_dict()
    yield Output(
        table,
        data_version=frame_data_version(table),
        metadata={
            **paraphraser.describe(),
            "sources": MetadataValue.json(sources),
            "paraphrases_per_subquery": MetadataValue.md(markdown_table(counts.rename("paraphrases").to_frame())),
            "llm_usage": MetadataValue.json(usage),
        },
    )
    short = counts[(counts < config.n_min) | (counts > config.n_max)]
    yield AssetCheckResult(
        check_name="paraphrase_counts",
        passed=short.empty and len(counts) == len(spec.subqueries),
        severity=AssetCheckSeverity.WARN,
        metadata={"min": int(counts.min()), "max": int(counts.max()),
                  "outside_range": MetadataValue.json(short.to_dict())},
    )


# --- augmented_images ----------------------------------------------------------------------------


class AugmentedImagesConfig(mirror(AugmentConfig)):
    """How many augmentations of each kind every training image gets, deterministic for the seed
    (`models.instruct.augment.AugmentConfig`), and how many the visibility check grounds again."""

    reground_limit: int = Field(default=200, description="Cut-paste images grounded again by the visibility check.")


@asset(
    partitions_def=scenario_partitions,
    kinds={"opencv", "parquet"},
    check_specs=[
        AssetCheckSpec("augmented_labels_follow_h", asset="augmented_images", blocking=True,
                       description="Every augmented image's labels are h of its recorded answers."),
        AssetCheckSpec("cut_paste_visible", asset="augmented_images",
                       description=f"Grounding the cut-paste images again measures the recorded answers on "
                                   f">= {VISIBLE_TARGET:.0%} of them (the edit shows in the pixels)."),
    ],
)
def augmented_images(context: AssetExecutionContext, config: AugmentedImagesConfig, loco_fc_split: pd.DataFrame,
                     grounding: pd.DataFrame, storage: StorageResource, grounder: Grounder):
    """Training images edited by Poisson cut-paste (paste / remove / move an object, labels and answers
    through h) or by noise and colour-statistics style transfer (labels unchanged); PNGs under
    <storage>/augmented_images/<scenario>/, one row per augmented image."""
    spec = spec_for(context.partition_key)
    train = loco_fc_split[loco_fc_split["split"] == "train"]
    out_dir = storage.layout.augmented_images(spec.scenario)
    run = augment_split(spec, train, objects_from_frame(grounding), out_dir, config.to_core())
    table = run.table
    _remove_stale_images(out_dir, table["image_path"])
    kinds = table["kind"].value_counts().reindex(list(KINDS), fill_value=0)
    changes = table[table["label_changed"]].assign(
        change=lambda t: t["parent_labels"].map(", ".join) + " → " + t["labels"].map(", ".join))
    context.log.info(f"{len(table)} augmented images from {len(train)} training images: {kinds.to_dict()}")
    yield Output(
        table,
        data_version=frame_data_version(table),
        metadata={
            "images_dir": MetadataValue.path(str(out_dir)),
            "training_images": len(train),
            "by_kind": MetadataValue.md(markdown_table(kinds.rename("images").to_frame())),
            "label_changes": MetadataValue.md(markdown_table(
                changes.groupby(["kind", "change"]).size().rename("images").to_frame()) if len(changes) else "none"),
            "rejected_edits": MetadataValue.json(dict(sorted(run.rejected.items()))),
            "before_after": MetadataValue.md(_before_after(run.examples)),
        },
    )
    bad = h_disagreements(spec, table)
    yield AssetCheckResult(check_name="augmented_labels_follow_h", passed=not bad,
                           metadata={"disagreements": len(bad), "examples": MetadataValue.json(bad[:10])})
    yield _visibility_check(spec, table, grounder, calibration_of(grounding), config.reground_limit, config.seed)


def _remove_stale_images(out_dir: Path, kept: pd.Series) -> None:
    """PNGs of an earlier run with other settings that this table no longer lists."""
    keep = {Path(p).name for p in kept}
    for path in out_dir.glob("*.png"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _before_after(examples: list[tuple[Parent, Augmentation]]) -> str:
    """Parent and edited image side by side, the edited object's kind boxed in both."""
    parts = []
    for parent, aug in examples:
        label = aug.edited_label
        before = draw_overlay(parent.image, [o for o in parent.objects if o.label == label], show_scores=False)
        after = draw_overlay(aug.image, [o for o in aug.objects if o.label == label], show_scores=False)
        caption = (f"{aug.aug_id} ({aug.kind} {label}): {', '.join(aug.parent_labels)} → "
                   f"{', '.join(aug.labels)}")
        parts.append(image_markdown(np.concatenate([before, after], axis=1), caption))
    return "\n\n".join(parts) or "no cut-paste edit changed a label"


def _visibility_check(spec: ScenarioSpec, table: pd.DataFrame, grounder: Grounder, calibration: Calibration | None,
                      limit: int, seed: int) -> AssetCheckResult:
    """Ground a seeded sample of the cut-paste images again with the configured backend and the grounding's
    attribute calibration, and compare."""
    cut = table[table["kind"].isin(CUT_PASTE)]
    if cut.empty:
        return AssetCheckResult(check_name="cut_paste_visible", passed=True, severity=AssetCheckSeverity.WARN,
                                metadata={"note": "no cut-paste images (no editable objects or no valid edits)"})
    sample = cut.sample(n=min(limit, len(cut)), random_state=seed) if limit < len(cut) else cut
    try:  # a missing checkpoint or a backend without this scenario's objects must not fail the asset
        backend = grounder.build()
        run = ground_images(backend, list(zip(sample["aug_id"], sample["image_path"], strict=True)),
                            queries_from_spec(spec), cache_dir=grounder.cache_path, progress=False, spec=spec,
                            calibration=calibration)
    except Exception as err:
        return AssetCheckResult(check_name="cut_paste_visible", passed=False, severity=AssetCheckSeverity.WARN,
                                metadata={"error": f"grounding again failed: {type(err).__name__}: {err}"})
    result = reground_agreement(spec, sample, objects_from_frame(run.objects))
    rate = float(result["answers_agree"].mean())
    per_kind = result.groupby("kind")[["answers_agree", "count_agrees"]].mean().round(3)
    return AssetCheckResult(
        check_name="cut_paste_visible",
        passed=rate >= VISIBLE_TARGET,
        severity=AssetCheckSeverity.WARN,
        metadata={"backend": backend.name, "checked": len(result), "answers_agree": rate,
                  "count_agrees": float(result["count_agrees"].mean()),
                  "by_kind": MetadataValue.md(markdown_table(per_kind)),
                  "disagreeing": MetadataValue.json(result.loc[~result["answers_agree"], "aug_id"].head(10).tolist())},
    )


# --- cot_dataset ---------------------------------------------------------------------------------


class CotDatasetConfig(mirror(CotConfig)):
    """The paper's ablation switch, the policy for rows whose grounding contradicts the label, the seed
    (`models.instruct.cot.CotConfig`), and what the checks and metadata show."""

    max_flagged_rate: float = Field(default=0.1, description="The contradiction check warns above this share.")
    max_class_removed_share: float = Field(default=0.2, ge=0.0, le=1.0, description=(
        "The blocking class_share_removed check stops the chain when policy drop removes more than this share "
        "of any class's images (original and augmented); 1: never."))
    examples: int = Field(default=3, description="Example rows shown in the metadata.")
    jsonl_media_dir: str | None = Field(default=None, description=(
        "Folder the JSONL export's image paths are relative to (LLaMA-Factory's media_dir); it must hold every "
        "image. Unset: the deepest folder that holds them all, shown as jsonl_media_dir in the metadata."))


@asset(
    partitions_def=scenario_partitions,
    kinds={"pandas", "parquet"},
    check_specs=[
        AssetCheckSpec("cot_answers_parse", asset="cot_dataset", blocking=True,
                       description="Every answer and target parses back (parse_answer) to its true value."),
        AssetCheckSpec("grounding_contradictions", asset="cot_dataset",
                       description="Share of samples whose grounding contradicts their labels (flagged)."),
        AssetCheckSpec("class_share_removed", asset="cot_dataset", blocking=True,
                       description="No class loses more than max_class_removed_share of its images to policy "
                                   "drop (a grounding failure on one kind of image would silently thin it)."),
        AssetCheckSpec("cot_answer_agreement", asset="cot_dataset",
                       description=f"On generated data, >= {AGREEMENT_TARGET:.0%} of answers equal the generator's "
                                   f"truth (augmented rows: the answers recorded with the edit)."),
    ],
)
def cot_dataset(context: AssetExecutionContext, config: CotDatasetConfig, loco_fc_split: pd.DataFrame,
                grounding: pd.DataFrame, subquery_paraphrases: pd.DataFrame, augmented_images: pd.DataFrame,
                loco: LocoDataset, storage: StorageResource):
    """One row per (image, subquery) over the training split and the augmented images: question (original or
    paraphrase), chain of thought citing the grounded boxes, true answer, target text and the Fig. 3 in-context
    example; also written as LLaMA-Factory sharegpt JSONL to <storage>/cot_dataset/<scenario>.jsonl."""
    spec = spec_for(context.partition_key)
    cot = config.to_core()
    train = loco_fc_split[loco_fc_split["split"] == "train"]
    objects = objects_from_frame(grounding)
    records = original_records(spec, train, objects) + augmented_records(spec, augmented_images)
    build = build_cot(spec, records, questions_by_subquery(subquery_paraphrases), cot)
    table = build.table
    jsonl = storage.layout.cot_jsonl(spec.scenario)
    export = write_jsonl(jsonl, table, config.jsonl_media_dir)
    context.log.info(f"{len(table)} samples ({build.flagged_rows} flagged before policy {cot.policy}); {jsonl} "
                     f"(images relative to {export.media_dir})")
    yield Output(
        table,
        data_version=frame_data_version(table),
        metadata={
            "jsonl": MetadataValue.path(str(jsonl)),
            "jsonl_media_dir": MetadataValue.path(str(export.media_dir)),
            "jsonl_lines": export.lines,
            "jsonl_without_example": export.without_example,
            "llamafactory_dataset_info": MetadataValue.json(
                llamafactory_dataset_info(f"logicls_{spec.scenario}", jsonl.name)),
            "reasoning": cot.reasoning,
            "policy": cot.policy,
            "rows": len(table),
            "rows_by_image_origin": MetadataValue.json(table["image_origin"].value_counts().to_dict()),
            "rows_by_reasoning_type": MetadataValue.json(table["reasoning_type"].value_counts().to_dict()),
            "flagged_rate": build.flagged_rate,
            "flagged_images": MetadataValue.json([f"{i}: {why}" for i, why in build.flagged_images[:20]]),
            "removed_by_class": MetadataValue.md(markdown_table(build.removed.set_index("class").round(3))
                                                 if len(build.removed) else "no images"),
            "examples": MetadataValue.md(_example_rows(table, records, config.examples)),
        },
    )
    yield from _cot_checks(spec, table, build, augmented_images, loco, config.max_flagged_rate)
    yield class_removal_check(build, config.max_class_removed_share)


def class_removal_check(build: CotBuild, limit: float) -> AssetCheckResult:
    """Fails (blocking) when the drop policy removed more than ``limit`` of some class's images."""
    removed = build.removed
    over = removed[removed["removed_share"] > limit]
    return AssetCheckResult(
        check_name="class_share_removed",
        passed=over.empty,
        metadata={"limit": limit, "classes_over_limit": MetadataValue.json(over["class"].tolist()),
                  "removed_images": int(removed["removed"].sum()),
                  "removed_by_class": MetadataValue.md(markdown_table(removed.set_index("class").round(3))
                                                       if len(removed) else "no images"),
                  **({"fix": "look at the flagged images of these classes (grounding_quality, flagged_images): "
                             "fix the grounding, or set policy keep_label_answer"} if len(over) else {})},
    )


def _example_rows(table: pd.DataFrame, records: list[ImageRecord], n: int) -> str:
    """A few samples of different subqueries: the image with its boxes, question, think and answer."""
    by_id = {r.image_id: r for r in records}
    picks = table.drop_duplicates("subquery_id").head(n)
    parts = []
    for row in picks.itertuples(index=False):
        record = by_id[row.image_id]
        picture = draw_overlay(read_rgb(row.image_path), record.objects, show_scores=False)
        parts.append(image_markdown(picture, f"{row.sample_id} ({row.image_origin})")
                     + f"\n\n**Q:** {row.question}\n\n**think:** {row.think or '(none)'}\n\n**answer:** {row.answer}")
    return "\n\n---\n\n".join(parts) or "no rows"


def _cot_checks(spec: ScenarioSpec, table: pd.DataFrame, build: CotBuild, augmented: pd.DataFrame,
                loco: LocoDataset, max_flagged_rate: float) -> list[AssetCheckResult]:
    bad = unparseable_answers(spec, table)
    checks = [
        AssetCheckResult(check_name="cot_answers_parse", passed=not bad,
                         metadata={"unparseable": len(bad), "examples": MetadataValue.json(bad[:10])}),
        AssetCheckResult(check_name="grounding_contradictions", passed=build.flagged_rate <= max_flagged_rate,
                         severity=AssetCheckSeverity.WARN,
                         metadata={"flagged_rate": build.flagged_rate, "flagged_rows": build.flagged_rows,
                                   "flagged_images": len(build.flagged_images), "images": build.images}),
    ]
    path = loco.annotations_path(spec.scenario)
    if path is None:
        checks.append(AssetCheckResult(check_name="cot_answer_agreement", passed=True,
                                       metadata={"note": "no generator annotations: real data"}))
        return checks
    truth = _true_answers(spec, table, pd.read_parquet(path), augmented)
    agree = answer_agreement(table, truth)
    rate = float(agree.mean()) if len(agree) else 1.0
    by_origin = agree.groupby(table["image_origin"]).mean().round(4).to_dict()
    checks.append(AssetCheckResult(
        check_name="cot_answer_agreement", passed=rate >= AGREEMENT_TARGET, severity=AssetCheckSeverity.WARN,
        metadata={"agreement": rate, "by_image_origin": MetadataValue.json(by_origin),
                  "disagreeing": MetadataValue.json(table.loc[~agree, "sample_id"].head(10).tolist())},
    ))
    return checks


def _true_answers(spec: ScenarioSpec, table: pd.DataFrame, annotations: pd.DataFrame,
                  augmented: pd.DataFrame) -> dict[str, dict]:
    """Image id → true answers: the inverse on the generator's annotations for training images, the
    recorded answers for augmented ones."""
    truth_objects = objects_from_frame(annotations[annotations["image_id"].isin(table["image_id"])])
    labels = table.drop_duplicates("image_id").set_index("image_id")["labels"]
    truth = {image_id: inverse(spec, labels[image_id], found).answers for image_id, found in truth_objects.items()}
    truth.update({row.aug_id: json.loads(row.answers) for row in augmented.itertuples(index=False)})
    return truth

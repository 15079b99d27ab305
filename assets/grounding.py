"""Stage 3: grounding, i.e. every object's mask, box and label (CLIP + SAM, or the classical segmenter)."""

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

from models.grounding import ALL_LABELS, draw_overlay, ground_images, queries_from_spec
from models.grounding import grounding_quality as measure_quality
from models.grounding.attributes import check_backend
from models.grounding.quality import GROUNDING_QUALITY_COLUMNS
from models.images import read_rgb
from models.objects import objects_from_frame
from models.spec import ScenarioSpec
from models.split import normal_training_ids
from resources.grounding import Grounder
from resources.loco import LocoDataset
from resources.metadata import frame_data_version, image_markdown, markdown_table
from resources.partitions import scenario_partitions, spec_for

GPU_TAGS = {"logicls/compute": "gpu"}
MAX_FAILED_SHARE = 0.1
QUALITY_TARGET = 0.9
CODE_VERSIONS = {
    "grounding": ["models.grounding.base.GROUNDING_VERSION", "models.grounding.classical.RECIPE_VERSION"],
    "grounding_quality": ["models.grounding.quality.QUALITY_VERSION"],
}


@asset(
    partitions_def=scenario_partitions,
    kinds={"pytorch", "parquet"},
    pool="gpu",
    tags=GPU_TAGS,
    check_specs=[
        AssetCheckSpec("grounding_not_empty", asset="grounding", blocking=True,
                       description=f"Objects were found and at most {MAX_FAILED_SHARE:.0%} of images failed."),
    ],
)
def grounding(context: AssetExecutionContext, loco_fc_split: pd.DataFrame, grounder: Grounder):
    """One row per detected object: label (a spec object name), score, box and centroid in original pixels,
    area, COCO RLE mask and the attributes its spec object declares (read from the pixels by the attribute
    stage, calibrated on the normal training images; the calibration is kept in the table's Parquet
    metadata). Images already grounded with the same backend and settings come from the cache."""
    spec = spec_for(context.partition_key)
    check_backend(spec, grounder.backend)  # a spec the backend cannot serve fails before its models load
    backend = grounder.build()
    items = list(zip(loco_fc_split["image_id"], loco_fc_split["image_path"], strict=True))
    run = ground_images(backend, items, queries_from_spec(spec), cache_dir=grounder.cache_path, progress=False,
                        spec=spec, normal_ids=normal_training_ids(loco_fc_split))
    for failure in run.failures.itertuples():
        context.log.error(f"grounding failed for {failure.image_path}: {failure.error}")
    objects = run.objects
    status = run.images["status"].value_counts().to_dict()
    empty = int((run.images["n_objects"] == 0).sum())
    context.log.info(f"grounded {len(items)} images with {backend.name}: {status}, {len(objects)} objects")
    yield Output(
        objects,
        data_version=frame_data_version(objects),
        metadata={
            "backend": backend.name,
            "images": len(items),
            "images_by_status": MetadataValue.json(status),
            "images_without_objects": empty,
            "objects_per_label": MetadataValue.md(markdown_table(_objects_per_label(objects, spec))),
            "failed_images": MetadataValue.json(run.failures[["image_path", "error"]].to_dict("records")),
            "overlays": MetadataValue.md(_overlays(objects, loco_fc_split)),
            "attribute_calibration": MetadataValue.json(run.calibration.to_dict() if run.calibration else {}),
            "calibration_defaults": MetadataValue.json(list(run.calibration.defaults) if run.calibration else []),
        },
    )
    failed = len(run.failures)
    yield AssetCheckResult(
        check_name="grounding_not_empty",
        passed=len(objects) > 0 and failed <= MAX_FAILED_SHARE * max(len(items), 1),
        metadata={"objects": len(objects), "failed_images": failed, "images_without_objects": empty},
    )


def _objects_per_label(objects: pd.DataFrame, spec: ScenarioSpec) -> pd.DataFrame:
    images = max(objects["image_id"].nunique(), 1)
    counts = objects["label"].value_counts().reindex([o.name for o in spec.objects], fill_value=0)
    return pd.DataFrame({"objects": counts, "per_image": (counts / images).round(2)}).rename_axis("label")


def _overlays(objects: pd.DataFrame, split: pd.DataFrame, n: int = 2) -> str:
    """Boxes drawn on the first normal and the first anomalous training image."""
    by_image = objects_from_frame(objects)
    picks = [split[split["n_defect_types"] == 0], split[split["n_defect_types"] > 0]]
    parts = []
    for rows in picks:
        for row in rows.head(1).itertuples():
            image = read_rgb(row.image_path)
            overlay = draw_overlay(image, by_image.get(row.image_id, []))
            parts.append(image_markdown(overlay, f"{row.image_id} ({', '.join(row.labels)})"))
    return "\n\n".join(parts[:n]) or "no images"


@asset(
    partitions_def=scenario_partitions,
    kinds={"pandas", "parquet"},
    check_specs=[
        AssetCheckSpec("grounding_recall", asset="grounding_quality",
                       description=f"On generated data: box precision and recall ≥ {QUALITY_TARGET} at IoU 0.5 "
                                   f"for every label, and counts right on ≥ {QUALITY_TARGET:.0%} of normal images."),
    ],
)
def grounding_quality(context: AssetExecutionContext, grounding: pd.DataFrame, loco_fc_split: pd.DataFrame,
                      loco: LocoDataset):
    """Grounding measured against the generator's instance annotations (generated data only): precision and
    recall of boxes at IoU ≥ 0.5 per label, and per-image count accuracy on all and on normal images."""
    spec = spec_for(context.partition_key)
    path = loco.annotations_path(context.partition_key)
    if path is None:
        yield Output(pd.DataFrame(columns=GROUNDING_QUALITY_COLUMNS), metadata={"note": "no annotations: real data"})
        yield AssetCheckResult(check_name="grounding_recall", passed=True, metadata={"note": "no annotations"})
        return
    truth = pd.read_parquet(path)
    truth = truth[truth["image_id"].isin(loco_fc_split["image_id"])]
    labels = [o.name for o in spec.objects]
    quality = measure_quality(grounding, truth, labels=labels)
    normal_ids = loco_fc_split.loc[loco_fc_split["n_defect_types"] == 0, "image_id"]
    normal = measure_quality(grounding, truth, labels=labels, image_ids=normal_ids)
    quality = quality.merge(
        normal[["label", "count_accuracy"]].rename(columns={"count_accuracy": "count_accuracy_normal"}),
        on="label", how="left",
    )
    per_label = quality[quality["label"] != ALL_LABELS]
    low = per_label[(per_label["precision"] < QUALITY_TARGET) | (per_label["recall"] < QUALITY_TARGET)]
    normal_all = float(quality.loc[quality["label"] == ALL_LABELS, "count_accuracy_normal"].iloc[0])
    yield Output(quality, metadata={"quality": MetadataValue.md(markdown_table(quality.round(3), index=False))})
    yield AssetCheckResult(
        check_name="grounding_recall",
        passed=low.empty and normal_all >= QUALITY_TARGET,
        severity=AssetCheckSeverity.WARN,
        metadata={"labels_below_target": MetadataValue.json(low["label"].tolist()),
                  "normal_images_with_right_counts": normal_all},
    )

"""Stage 1: the LOCO FC re-split (``loco_fc_split``), one partition per scenario, and where its images come from.

Lineage starts where the data does. Without ``LOGICLS_DATA_ROOT`` the images are the generated data set,
the asset ``generated_loco`` (`models.synth`), which the split depends on. With a real MVTec LOCO AD root,
``generated_loco`` is left out (it would generate data nobody reads) and the split depends on
``loco_data`` instead: an external asset, that root, made outside Dagster and watched by the
``new_labelled_images`` sensor (:func:`stage_assets` makes the choice when the definitions load).

As the first stage, it also shows the user specs that were skipped when the code location loaded
(their scenarios have no partition): in its definition metadata ``skipped_scenario_specs``, on the
asset's page before anything runs, and in the ``scenario_specs`` check, which fails with a warning
on every materialization until the files are fixed.
"""

from collections.abc import Sequence

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)

from models.loco import LocoScenario, scan_loco_scenario
from models.spec import SkippedSpec
from models.split import SplitConfig, split_counts, table_one_row
from models.split import loco_fc_split as compute_split
from models.storage import data_root
from models.synth import SCENARIOS, GeneratorConfig, ensure_generated, read_manifest
from resources.config_mirror import mirror
from resources.loco import LocoDataset, no_generated_data
from resources.metadata import frame_data_version, markdown_table
from resources.partitions import SCENARIO_CATALOG, scenario_partitions
from resources.storage import StorageResource

CHECKS = [
    AssetCheckSpec("no_split_leakage", asset="loco_fc_split", blocking=True,
                   description="No image is in both train and test."),
    AssetCheckSpec("classes_in_both_splits", asset="loco_fc_split",
                   description="Every class has at least 2 images in train and in test."),
    AssetCheckSpec("split_counts", asset="loco_fc_split", blocking=True,
                   description="Normal counts equal the source folders; single anomalies follow the scenario's "
                               "ratio and min_test_per_class exactly per class; multi-anomaly images are all in "
                               "test."),
    AssetCheckSpec("excluded_images", asset="loco_fc_split",
                   description="Images left out, each with the reason and the fix: an image or mask file that "
                               "does not decode (truncated, not a PNG, too large), or masks holding pixel values "
                               "that defects_config.json does not list."),
    AssetCheckSpec("scenario_specs", asset="loco_fc_split",
                   description="Every spec file in LOGICLS_SCENARIO_DIR loads; a broken one is skipped (its "
                               "scenario has no partition) and listed here with its fields."),
]
SPEC_FIX = "Correct each file, then reload the code location (Deployment → Reload, or restart dagster)."


def skipped_specs_markdown(skipped: Sequence[SkippedSpec]) -> str:
    """The skipped user specs as a Markdown list: file, scenario and every (field: problem)."""
    if not skipped:
        return "none"
    lines = [f"{len(skipped)} spec file(s) in LOGICLS_SCENARIO_DIR did not load; their scenarios have no "
             f"partition. {SPEC_FIX}", ""]
    for spec in skipped:
        lines.append(f"- `{spec.path}` (scenario `{spec.scenario}`)")
        lines += [f"  - `{field}`: {' '.join(message.split())}" for field, message in spec.error.problems]
    return "\n".join(lines)


def scenario_specs_check(skipped: Sequence[SkippedSpec]) -> AssetCheckResult:
    """Fails (warning) while a user spec is skipped, naming each file and field."""
    listing = [
        {"file": spec.path, "scenario": spec.scenario,
         "problems": [f"{field}: {' '.join(message.split())}" for field, message in spec.error.problems]}
        for spec in skipped
    ]
    return AssetCheckResult(
        check_name="scenario_specs",
        passed=not skipped,
        severity=AssetCheckSeverity.WARN,
        metadata={"skipped": len(skipped), "specs": MetadataValue.json(listing),
                  **({"fix": SPEC_FIX} if skipped else {})},
    )


class GeneratedLocoConfig(mirror(GeneratorConfig)):
    """Launchpad settings of the generated data set: `models.synth.GeneratorConfig`'s fields."""


@asset(partitions_def=scenario_partitions, kinds={"opencv", "png"})
def generated_loco(context: AssetExecutionContext, config: GeneratedLocoConfig,
                   storage: StorageResource) -> MaterializeResult:
    """The generated MVTec LOCO AD data set of one scenario (used when LOGICLS_DATA_ROOT is unset): images, logical
    anomaly masks and defects_config.json in the exact LOCO layout, with the generator's instance annotations
    beside the tree. Made once and reused while the generator's version and settings stay the same."""
    scenario = context.partition_key
    if scenario not in SCENARIOS:
        raise Failure(no_generated_data(scenario))
    out_dir = storage.layout.generated
    root = ensure_generated(scenario, out_dir, config.to_core())
    manifest = read_manifest(out_dir, scenario)
    counts = manifest["image_counts"]
    context.log.info(f"{scenario}: {sum(counts.values())} images under {root / scenario}")
    return MaterializeResult(
        metadata={
            "loco_root": MetadataValue.path(str(root)),
            "images": sum(counts.values()),
            "image_counts": MetadataValue.json(counts),
            "generator_version": manifest["version"],
            "generator_config": MetadataValue.json(manifest["config"]),
        },
        data_version=DataVersion(manifest["content_sha256"][:16]),
    )


LOCO_DATA = "loco_data"
CODE_VERSIONS = {
    "generated_loco": ["models.synth.generate.GENERATOR_VERSION"],
    "loco_fc_split": ["models.split.SPLIT_VERSION"],
}


def stage_assets(assets: Sequence[AssetsDefinition], group_name: str) -> list[AssetsDefinition | AssetSpec]:
    """The stage's assets for this deployment's data: as declared (``generated_loco`` → ``loco_fc_split``)
    without ``LOGICLS_DATA_ROOT``; with one, ``loco_data`` (that root, an external asset) in place of
    ``generated_loco``."""
    root = data_root()
    if root is None:
        return list(assets)
    source = AssetSpec(LOCO_DATA, partitions_def=scenario_partitions, group_name=group_name,
                       description="MVTec LOCO AD images and masks at LOGICLS_DATA_ROOT, made outside Dagster "
                                   "(the new_labelled_images sensor watches it).",
                       metadata={"data_root": MetadataValue.path(str(root))})

    def read_the_root(spec: AssetSpec) -> AssetSpec:
        return spec.replace_attributes(deps=[source]) if spec.key == loco_fc_split.key else spec

    return [source, *(a.map_asset_specs(read_the_root) for a in assets if generated_loco.key not in a.keys)]


class LocoFcSplitConfig(mirror(SplitConfig)):
    """Launchpad settings of the re-split: `models.split.SplitConfig`'s fields."""


@asset(
    partitions_def=scenario_partitions,
    check_specs=CHECKS,
    deps=[generated_loco],  # stage_assets puts loco_data here when LOGICLS_DATA_ROOT is set
    kinds={"pandas", "parquet"},
    metadata={"skipped_scenario_specs": MetadataValue.md(skipped_specs_markdown(SCENARIO_CATALOG.skipped))},
)
def loco_fc_split(context: AssetExecutionContext, config: LocoFcSplitConfig, loco: LocoDataset):
    """LOCO FC: train holds train/good and about 80% of each class's single-anomaly images; test holds
    test/good, the other single-anomaly images and every multi-anomaly image. One row per image, with its
    classes read from the ground-truth masks."""
    scenario = context.partition_key
    root = loco.root_for(scenario)
    scanned = scan_loco_scenario(root, scenario)
    split_config = config.to_core()
    frame = compute_split(scanned, split_config)
    for excluded in scanned.excluded:
        context.log.warning(excluded.reason)
    counts = split_counts(frame)
    yield Output(  # data_version: staleness follows content, not run ids
        frame,
        data_version=frame_data_version(frame),
        metadata={
            "data_root": MetadataValue.path(str(root)),
            "generated_data": loco.is_generated,
            "table_i": MetadataValue.json(table_one_row(frame)),
            "counts_per_split_and_class": MetadataValue.md(markdown_table(counts)),
            "excluded_images": len(scanned.excluded),
        },
    )
    yield from split_checks(frame, scanned, split_config)
    yield scenario_specs_check(SCENARIO_CATALOG.skipped)


def split_checks(frame: pd.DataFrame, scanned: LocoScenario, config: SplitConfig) -> list[AssetCheckResult]:
    """The four checks of the re-split, computed from the table and the scan it came from."""
    return [
        _leakage_check(frame),
        _both_splits_check(frame),
        _counts_check(frame, scanned, config),
        _excluded_check(scanned),
    ]


def _leakage_check(frame: pd.DataFrame) -> AssetCheckResult:
    splits_per_image = frame.groupby("image_id")["split"].nunique()
    leaked = sorted(splits_per_image[splits_per_image > 1].index)
    dup_paths = int(frame["image_path"].duplicated().sum())
    return AssetCheckResult(
        check_name="no_split_leakage",
        passed=not leaked and dup_paths == 0,
        metadata={"images_in_both_splits": len(leaked), "examples": MetadataValue.json(leaked[:10]),
                  "duplicate_image_paths": dup_paths},
    )


def _both_splits_check(frame: pd.DataFrame) -> AssetCheckResult:
    counts = split_counts(frame)
    short = counts[(counts["train"] < 2) | (counts["test"] < 2)]
    return AssetCheckResult(
        check_name="classes_in_both_splits",
        passed=short.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={"classes_short": len(short),
                  "short_classes": MetadataValue.md(markdown_table(short) if len(short) else "none")},
    )


def _counts_check(frame: pd.DataFrame, scanned: LocoScenario, config: SplitConfig) -> AssetCheckResult:
    row = table_one_row(frame)
    single = frame[frame["n_defect_types"] == 1]
    problems: list[str] = []
    for folder, key in (("train/good", "train_normal"), ("test/good", "test_normal")):
        expected = len(scanned.in_folder(folder))
        if row[key] != expected:
            problems.append(f"{key} is {row[key]}, {folder} holds {expected}")
    if (frame[frame["n_defect_types"] > 1]["split"] != "test").any():
        problems.append("a multi-anomaly image is in train")
    scenario = scanned.scenario
    for label, group in single.groupby(single["labels"].str[0]):
        n_train, expected = int((group["split"] == "train").sum()), config.n_train(len(group), scenario)
        if n_train != expected:
            problems.append(f"{label}: {n_train} of {len(group)} in train, expected {expected} (ratio "
                            f"{config.ratio_for(scenario)}, min_test_per_class {config.min_test_per_class})")
    return AssetCheckResult(
        check_name="split_counts",
        passed=not problems,
        metadata={"table_i": MetadataValue.json(row), "train_ratio": config.ratio_for(scenario),
                  "problems": MetadataValue.json(problems)},
    )


def _excluded_check(scanned: LocoScenario) -> AssetCheckResult:
    listing = [
        {"image": str(e.image_path), "reason": e.reason, "unknown_pixel_values": list(e.unknown_pixel_values),
         "unreadable_file": str(e.unreadable_file) if e.unreadable_file else None}
        for e in scanned.excluded
    ]
    return AssetCheckResult(
        check_name="excluded_images",
        passed=not listing,
        severity=AssetCheckSeverity.WARN,
        metadata={"excluded": len(listing), "images": MetadataValue.json(listing)},
    )




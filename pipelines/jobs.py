"""Jobs: the main chain, selectable per scenario partition, and the cross-scenario metrics."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from assets.tags import ALL_SCENARIOS, SCOPE_TAG

# lac_metrics and its siblings: unpartitioned, they read every scenario's predictions, so they run once
# after the per-scenario runs. Selected by tag, which also resolves where they are not defined.
METRICS_ASSETS = AssetSelection.tag(SCOPE_TAG, ALL_SCENARIOS)

full_pipeline = define_asset_job(
    "full_pipeline",
    selection=AssetSelection.all() - METRICS_ASSETS,
    description="Every stage of LogiCls for one scenario: re-split, grounding, instruction data, "
    "fine-tuning, evaluation (predictions and report). Run lac_metrics once all scenarios are done.",
)

refresh_from_split = define_asset_job(
    "refresh_from_split",
    selection=AssetSelection.assets("loco_fc_split").downstream() - METRICS_ASSETS,
    description="Re-split one scenario and re-materialize everything downstream of the split; the "
    "new-data sensor requests it when labelled images are added.",
)

lac_metrics_job = define_asset_job(
    "lac_metrics_job",
    selection=METRICS_ASSETS,
    description="Table II-shaped metrics over every scenario's lac_predictions (run after the per-scenario runs).",
)

JOBS = [full_pipeline, refresh_from_split, lac_metrics_job]

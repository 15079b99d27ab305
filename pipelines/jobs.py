"""Jobs: the main chain, selectable per scenario partition."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

full_pipeline = define_asset_job(
    "full_pipeline",
    selection=AssetSelection.all(),
    description="Every stage of LogiCls for one scenario: re-split, grounding, instruction data, "
    "fine-tuning, evaluation.",
)

refresh_from_split = define_asset_job(
    "refresh_from_split",
    selection=AssetSelection.assets("loco_fc_split").downstream(),
    description="Re-split one scenario and re-materialize everything downstream of the split; the "
    "new-data sensor requests it when labelled images are added.",
)

JOBS = [full_pipeline, refresh_from_split]

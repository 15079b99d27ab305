"""Jobs: the main chain, selectable per scenario partition."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

full_pipeline = define_asset_job(
    "full_pipeline",
    selection=AssetSelection.all(),
    description="Every stage of LogiCls for one scenario: re-split, grounding, instruction data, "
    "fine-tuning, evaluation.",
)

JOBS = [full_pipeline]

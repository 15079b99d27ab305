"""The one `Definitions` of the project: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_package_module, load_assets_from_package_module

import assets
from resources.parquet_io import ParquetIOManager
from resources.settings import storage_dir


def build_definitions() -> Definitions:
    """Assemble the definitions; a function so tests can build them under other environment settings."""
    return Definitions(
        assets=load_assets_from_package_module(assets),
        asset_checks=load_asset_checks_from_package_module(assets),
        resources={"io_manager": ParquetIOManager(base_dir=storage_dir())},
    )


defs = build_definitions()

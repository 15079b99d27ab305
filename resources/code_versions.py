"""Asset code versions that follow the core: each asset names the version constants its `models/` code bumps.

A stage module declares, per asset, the constants whose bump changes what the asset computes, by
their dotted names (``CODE_VERSIONS``, e.g. ``"models.grounding.base.GROUNDING_VERSION"``); the
definitions set each asset's ``code_version`` to :func:`code_version` of them when they are built
(`pipelines.definitions.Stage`). So a bumped
constant shows as a new code version in the UI, makes the asset stale, and the retraining schedule
(`pipelines.schedules`) starts a run for every partition materialized under the old one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

from dagster import AssetsDefinition, AssetSpec

CoreVersions = Sequence[str]
"""The constants an asset follows, by dotted name (``module.CONSTANT``), read when the definitions are built."""


def core_constant(dotted: str) -> object:
    """The value of ``module.CONSTANT`` now."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def code_version(constants: CoreVersions) -> str:
    """``NAME=value`` of each constant, joined by ``+`` (e.g. ``GROUNDING_VERSION=1+RECIPE_VERSION=1``)."""
    if not constants:
        raise ValueError("an asset's code version needs at least one core version constant")
    return "+".join(f"{dotted.rpartition('.')[2]}={core_constant(dotted)}" for dotted in constants)


def with_code_versions(assets: Sequence[AssetsDefinition | AssetSpec],
                       versions: Mapping[str, CoreVersions]) -> list[AssetsDefinition | AssetSpec]:
    """``assets`` with the code version of every executable asset from ``versions`` (asset name → constants);
    an executable asset without an entry is an error, so none is left at Dagster's default (the run id)."""
    out: list[AssetsDefinition | AssetSpec] = []
    for item in assets:
        if isinstance(item, AssetSpec) or not item.is_executable:
            out.append(item)
            continue
        missing = sorted(k.to_user_string() for k in item.keys if k.to_user_string() not in versions)
        if missing:
            raise ValueError(f"no CODE_VERSIONS entry for {missing}: name the core version constants they follow")
        out.append(item.map_asset_specs(
            lambda spec: spec.replace_attributes(code_version=code_version(versions[spec.key.to_user_string()]))))
    return out

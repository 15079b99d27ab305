"""The scenario partitions shared by every per-scenario asset."""

from __future__ import annotations

from dagster import StaticPartitionsDefinition

from models.loco import LOCO_CATEGORIES


def scenario_names() -> list[str]:
    """The five MVTec LOCO AD categories."""
    return list(LOCO_CATEGORIES)


scenario_partitions = StaticPartitionsDefinition(scenario_names())

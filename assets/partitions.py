"""The scenario partitions shared by every per-scenario asset.

The partition keys are the shipped scenario specs plus every spec in ``LOGICLS_SCENARIO_DIR``,
read when the definitions load: adding a product line takes a YAML file, not code.
"""

from __future__ import annotations

import os

from dagster import StaticPartitionsDefinition

from models.spec import ScenarioSpec, load_specs


def scenario_specs() -> dict[str, ScenarioSpec]:
    """Shipped specs and the user's (``LOGICLS_SCENARIO_DIR``); a malformed spec raises ``SpecError``."""
    return load_specs(os.getenv("LOGICLS_SCENARIO_DIR") or None)


SCENARIO_SPECS = scenario_specs()
scenario_partitions = StaticPartitionsDefinition(list(SCENARIO_SPECS))


def spec_for(scenario: str) -> ScenarioSpec:
    """The spec of a partition key."""
    return SCENARIO_SPECS[scenario]

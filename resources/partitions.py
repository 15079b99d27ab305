"""The scenario partitions shared by every per-scenario asset.

The partition keys are the shipped scenario specs plus every spec in ``LOGICLS_SCENARIO_DIR``,
read when the definitions load: adding a product line takes a YAML file, not code. A user spec
that does not load is skipped (its scenario has no partition, every other one has): it is logged
when the code location loads and shown in the UI by ``loco_fc_split``'s ``scenario_specs`` check
and its ``skipped_scenario_specs`` definition metadata.
"""

from __future__ import annotations

from dagster import StaticPartitionsDefinition

from models.spec import ScenarioCatalog, ScenarioSpec, load_catalog
from models.storage import scenario_dir


def scenario_catalog() -> ScenarioCatalog:
    """Shipped specs and the user's (``LOGICLS_SCENARIO_DIR``), with the user files that were skipped."""
    return load_catalog(scenario_dir())


SCENARIO_CATALOG = scenario_catalog()
SCENARIO_CATALOG.warn()  # in the code location's log when it loads
SCENARIO_SPECS = SCENARIO_CATALOG.specs
scenario_partitions = StaticPartitionsDefinition(list(SCENARIO_SPECS))


def spec_for(scenario: str) -> ScenarioSpec:
    """The spec of a partition key."""
    return SCENARIO_SPECS[scenario]

"""The generated MVTec LOCO AD data set: the default data of the whole chain.

MVTec LOCO AD cannot be downloaded on every machine, so this package draws scenes that follow the
five scenarios' rules (docs/design.md, "Scenario vocabulary and the rendering of every logical
defect") and writes them in the exact LOCO layout, with instance annotations beside the tree.

Public API::

    GeneratorConfig, SCENARIOS
    generate_scenario(scenario, out_dir, config) -> Path   # always (re)writes
    ensure_generated(scenario, out_dir, config) -> Path    # reuses a matching tree

CLI: ``python -m models.synth --out DIR [--scenarios ...] [--seed N] [--scale S] ...``.
"""

from models.synth.config import LOGICAL_DEFECTS, MULTI_COMBOS, SCENARIOS, GeneratorConfig
from models.synth.generate import (
    GENERATOR_VERSION,
    ensure_generated,
    generate_scenario,
    image_count,
    is_current,
)

__all__ = [
    "GENERATOR_VERSION",
    "LOGICAL_DEFECTS",
    "MULTI_COMBOS",
    "SCENARIOS",
    "GeneratorConfig",
    "ensure_generated",
    "generate_scenario",
    "image_count",
    "is_current",
]

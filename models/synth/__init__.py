"""The generated MVTec LOCO AD data set: the default data of the whole chain.

MVTec LOCO AD cannot be downloaded on every machine, so this package draws scenes that follow the
five scenarios' rules (docs/design.md, "Scenario vocabulary and the rendering of every logical
defect") and writes them in the exact LOCO layout, with instance annotations beside the tree.

Public API::

    GeneratorConfig, SCENARIOS
    generate_scenario(scenario, out_dir, config) -> Path   # always (re)writes
    ensure_generated(scenario, out_dir, config) -> Path    # reuses a matching tree
    loco_root(out_dir), annotations_path(out_dir, scenario), read_manifest(out_dir, scenario)

CLI: ``python -m models.synth --out DIR [--scenarios ...] [--seed N] [--scale S] ...``.
"""

from models.synth.config import LOGICAL_DEFECTS, MULTI_COMBOS, SCENARIOS, GeneratorConfig
from models.synth.generate import (
    GENERATOR_VERSION,
    annotations_path,
    ensure_generated,
    generate_scenario,
    image_annotations_path,
    image_count,
    is_current,
    loco_root,
    read_manifest,
)

__all__ = [
    "GENERATOR_VERSION",
    "LOGICAL_DEFECTS",
    "MULTI_COMBOS",
    "SCENARIOS",
    "GeneratorConfig",
    "annotations_path",
    "ensure_generated",
    "generate_scenario",
    "image_annotations_path",
    "image_count",
    "is_current",
    "loco_root",
    "read_manifest",
]

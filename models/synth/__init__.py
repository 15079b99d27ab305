"""The generated MVTec LOCO AD data set: the default data of the whole chain.

MVTec LOCO AD cannot be downloaded on every machine, so this package draws scenes that follow the
five categories' rules (docs/design.md, "Scenario vocabulary and the rendering of every logical
defect") and writes them in the exact LOCO layout, with instance annotations beside the tree.

Public API::

    GeneratorConfig, CATEGORIES
    generate_category(category, out_dir, config) -> Path   # always (re)writes
    ensure_generated(category, out_dir, config) -> Path    # reuses a matching tree
    loco_root(out_dir), annotations_path(out_dir, category), read_manifest(out_dir, category)

CLI: ``python -m models.synth --out DIR [--categories ...] [--seed N] [--scale S] ...``.
"""

from models.synth.config import CATEGORIES, LOGICAL_DEFECTS, MULTI_COMBOS, GeneratorConfig
from models.synth.generate import (
    GENERATOR_VERSION,
    annotations_path,
    ensure_generated,
    generate_category,
    image_annotations_path,
    image_count,
    is_current,
    loco_root,
    read_manifest,
)

__all__ = [
    "CATEGORIES",
    "GENERATOR_VERSION",
    "LOGICAL_DEFECTS",
    "MULTI_COMBOS",
    "GeneratorConfig",
    "annotations_path",
    "ensure_generated",
    "generate_category",
    "image_annotations_path",
    "image_count",
    "is_current",
    "loco_root",
    "read_manifest",
]

"""What the generator makes: scenarios, their defect vocabulary, image sizes, and its settings.

The defect names, multi-anomaly combinations and image sizes follow MVTec LOCO AD (see
``docs/design.md``), so that every later stage reads generated and real data the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from importlib import resources
from typing import Any

SCENARIOS: tuple[str, ...] = (
    "breakfast_box",
    "juice_bottle",
    "pushpins",
    "screw_bag",
    "splicing_connectors",
)

#: Height × width of the real images; the generator multiplies them by ``GeneratorConfig.scale``.
ORIGINAL_SIZES: dict[str, tuple[int, int]] = {
    "breakfast_box": (1280, 1600),
    "juice_bottle": (1600, 800),
    "pushpins": (1000, 1700),
    "screw_bag": (1100, 1600),
    "splicing_connectors": (850, 1700),
}

#: The logical defect types (the anomaly classes of LOCO FC), in ``defects_config.json`` order.
LOGICAL_DEFECTS: dict[str, tuple[str, ...]] = {
    "breakfast_box": (
        "missing_almonds", "missing_bananas", "missing_toppings", "missing_cereals",
        "missing_cereals_and_toppings", "2_nectarines_1_tangerine", "1_nectarine_1_tangerine",
        "0_nectarines_2_tangerines", "0_nectarines_3_tangerines", "3_nectarines_0_tangerines",
        "0_nectarines_1_tangerine", "0_nectarines_0_tangerines", "0_nectarines_4_tangerines",
        "compartments_swapped", "overflow", "underflow", "wrong_ratio",
    ),
    "juice_bottle": (
        "missing_top_label", "missing_bottom_label", "swapped_labels", "misplaced_label_top",
        "misplaced_label_bottom", "empty_bottle", "wrong_fill_level_too_much",
        "wrong_fill_level_not_enough", "misplaced_fruit_icon", "missing_fruit_icon", "wrong_juice_type",
    ),
    "pushpins": ("1_additional_pushpin", "2_additional_pushpins", "missing_pushpin", "missing_separator"),
    "screw_bag": (
        "screw_too_long", "screw_too_short", "1_very_short_screw", "2_very_short_screws",
        "1_additional_long_screw", "1_additional_short_screw", "1_additional_nut", "2_additional_nuts",
        "1_additional_washer", "2_additional_washers", "1_missing_long_screw", "1_missing_short_screw",
        "1_missing_nut", "2_missing_nuts", "1_missing_washer", "2_missing_washers",
    ),
    "splicing_connectors": (
        "wrong_connector_type_5_2", "wrong_connector_type_5_3", "wrong_connector_type_3_2",
        "cable_too_short_T2", "cable_too_short_T3", "cable_too_short_T5", "missing_connector",
        "missing_connector_and_cable", "missing_cable", "extra_cable", "cable_color", "cable_cut",
        "wrong_cable_location",
    ),
}  # fmt: skip

#: Images with two logical defect types, where the real data set has them.
MULTI_COMBOS: dict[str, tuple[tuple[str, str], ...]] = {
    "breakfast_box": (),
    "juice_bottle": (("missing_top_label", "missing_bottom_label"),),
    "pushpins": (("1_additional_pushpin", "missing_pushpin"),),
    "screw_bag": (
        ("1_additional_nut", "1_missing_washer"),
        ("1_additional_washer", "1_missing_nut"),
        ("1_additional_long_screw", "1_missing_short_screw"),
        ("1_additional_short_screw", "1_missing_long_screw"),
    ),
    "splicing_connectors": (),
}

SCALE_RANGE = (0.1, 1.0)


def check_scenario(scenario: str) -> None:
    """Raise a clear error for a name that is not one of :data:`SCENARIOS`."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: the generator makes {', '.join(SCENARIOS)}")


@cache
def defects_config(scenario: str) -> tuple[dict[str, Any], ...]:
    """The shipped ``defects_config.json`` entries of a scenario (logical and structural types)."""
    check_scenario(scenario)
    text = resources.files("models.synth.defects_config").joinpath(f"{scenario}.json").read_text()
    return tuple(json.loads(text))


def defects_config_bytes(scenario: str) -> bytes:
    """The shipped ``defects_config.json`` byte for byte (thresholds for the real image size)."""
    check_scenario(scenario)
    return resources.files("models.synth.defects_config").joinpath(f"{scenario}.json").read_bytes()


def scaled_defects_config(scenario: str, scale: float, smallest_regions: Mapping[str, int] | None = None) -> bytes:
    """The ``defects_config.json`` of images drawn at ``scale``: absolute saturation thresholds multiplied
    by the image area's ratio to the real size (rounded, at least 1 pixel), relative ones unchanged.

    An absolute ``saturation_threshold`` is a number of pixels at full resolution: a copy of the real
    value over a quarter-scale mask asks for more pixels than most defect regions have, and the
    official MVTec LOCO evaluator warns on every such ground-truth channel. ``smallest_regions``
    (defect name → the fewest pixels one of its drawn regions has) caps them further where the
    generator draws an object smaller than the real one. At scale 1 without it: the shipped file byte for byte.
    """
    height, width = image_size(scenario, scale)
    real_height, real_width = ORIGINAL_SIZES[scenario]
    ratio = height * width / (real_height * real_width)
    smallest = dict(smallest_regions or {})
    if ratio == 1 and not smallest:
        return defects_config_bytes(scenario)
    entries = [dict(entry) for entry in defects_config(scenario)]
    for entry in entries:
        if not entry["relative_saturation"]:
            scaled = max(1, round(entry["saturation_threshold"] * ratio))
            entry["saturation_threshold"] = min(scaled, smallest.get(entry["defect_name"], scaled))
    return (json.dumps(entries, indent=4) + "\n").encode()


def pixel_values(scenario: str) -> dict[str, int]:
    """Defect name → the mask pixel value that marks it."""
    return {d["defect_name"]: int(d["pixel_value"]) for d in defects_config(scenario)}


def structural_defects(scenario: str) -> tuple[str, ...]:
    """The types of ``defects_config.json`` that are not logical: only drawn as blotches and scratches."""
    logical = set(LOGICAL_DEFECTS[scenario])
    return tuple(d["defect_name"] for d in defects_config(scenario) if d["defect_name"] not in logical)


def image_size(scenario: str, scale: float) -> tuple[int, int]:
    """Height × width at ``scale``, each rounded to the nearest even integer (halves round up)."""
    check_scenario(scenario)
    return tuple(2 * math.floor(v * scale / 2 + 0.5) for v in ORIGINAL_SIZES[scenario])  # type: ignore[return-value]


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that decides the generated files; the manifest records it to tell when to regenerate.

    The defaults keep the whole chain (grounding, instruction data, fine-tuning, evaluation) at a
    few minutes on 2 CPU cores, yet give every logical class ten single-anomaly images, so that an
    80/20 split leaves at least two per class on each side.
    """

    scale: float = field(default=0.25, metadata={"help": "Image size relative to MVTec LOCO AD, in [0.1, 1] "
                                                         "(1: the real size)."})
    train_good: int = field(default=12, metadata={"help": "Normal images in train/good."})
    validation_good: int = field(default=2, metadata={"help": "Normal images in validation/good."})
    test_good: int = field(default=8, metadata={"help": "Normal images in test/good."})
    per_logical_class: int = field(default=10, metadata={"help": "Single-anomaly images per logical defect type."})
    per_multi_combo: int = field(default=3, metadata={"help": "Images per multi-anomaly combination."})
    structural: int = field(default=2, metadata={"help": "Structural-anomaly images (not used by LOCO FC)."})
    seed: int = field(default=0, metadata={"help": "Seed of the generated data set."})

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float):
            raise TypeError(f"GeneratorConfig.scale must be a number, got {self.scale!r}")
        lo, hi = SCALE_RANGE
        if not lo <= self.scale <= hi:
            raise ValueError(
                f"GeneratorConfig.scale={self.scale} is outside [{lo}, {hi}]: below {lo} the small "
                "objects (almonds, pins) vanish; 1.0 is the real image size"
            )
        for f in fields(self):
            if f.name == "scale":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"GeneratorConfig.{f.name} must be an integer, got {value!r}")
            if value < 0:
                raise ValueError(f"GeneratorConfig.{f.name} must be >= 0, got {value}")
        object.__setattr__(self, "scale", float(self.scale))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields, as written to the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GeneratorConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(data))

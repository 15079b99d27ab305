"""Where the MVTec LOCO AD images come from: a real root, or the generated default data set."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from models.loco import LAYOUT_HINT, LocoFormatError


class LocoDataset(ConfigurableResource):
    """An MVTec LOCO AD root (``LOGICLS_DATA_ROOT``), or, when none is set, the generated data set.

    The generated set is made once per scenario under ``<storage_dir>/generated`` and reused while
    the generator's version and settings stay the same, so every later run reads the same files.
    """

    data_root: str | None = Field(
        default=None, description="MVTec LOCO AD root; unset = generate the default data set once."
    )
    storage_dir: str = Field(description="Storage directory (LOGICLS_STORAGE); generated data lives below it.")
    generator_seed: int = Field(default=0, description="Seed of the generated data set.")
    generator_scale: float = Field(default=0.25, description="Generated image size relative to MVTec LOCO AD.")
    generator_per_logical_class: int = Field(
        default=10, description="Generated single-anomaly images per logical defect type."
    )

    @property
    def is_generated(self) -> bool:
        return not self.data_root

    @property
    def generated_dir(self) -> Path:
        return Path(self.storage_dir) / "generated"

    @property
    def loco_root(self) -> Path:
        """The LOCO root that is read, without generating anything (the new-data sensor watches it)."""
        if self.data_root:
            return Path(self.data_root).expanduser()
        return self.generated_dir / "loco"

    def root_for(self, scenario: str) -> Path:
        """The LOCO root that holds ``<root>/<scenario>``, generating it first where needed."""
        if self.data_root:
            root = Path(self.data_root).expanduser()
            if not (root / scenario).is_dir():
                raise LocoFormatError(
                    f"LOGICLS_DATA_ROOT={root} has no folder {scenario}/. {LAYOUT_HINT}"
                )
            return root
        from models.synth import SCENARIOS, GeneratorConfig, ensure_generated

        if scenario not in SCENARIOS:
            raise LocoFormatError(
                f"Scenario {scenario!r} has no generated data (the generator draws {', '.join(SCENARIOS)}): "
                f"set LOGICLS_DATA_ROOT to a LOCO-format root that holds {scenario}/."
            )
        config = GeneratorConfig(
            seed=self.generator_seed,
            scale=self.generator_scale,
            per_logical_class=self.generator_per_logical_class,
        )
        return ensure_generated(scenario, self.generated_dir, config)

    def annotations_path(self, scenario: str) -> Path | None:
        """The generator's instance annotations for ``scenario`` (only for generated data)."""
        if self.data_root:
            return None
        path = self.generated_dir / "annotations" / f"{scenario}.parquet"
        return path if path.is_file() else None

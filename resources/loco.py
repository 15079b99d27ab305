"""Where the MVTec LOCO AD images come from: a real root, or the generated data set (asset ``generated_loco``)."""

# No `from __future__ import annotations` here: Dagster reads the field types to find the nested `storage`
# resource, and string annotations hide it (a root set in the launchpad would not reach this resource).

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from models.loco import LAYOUT_HINT, LocoFormatError
from models.synth import SCENARIOS, annotations_path, loco_root
from resources.storage import StorageResource


class LocoDataset(ConfigurableResource):
    """An MVTec LOCO AD root (``LOGICLS_DATA_ROOT``), or, when none is set, the generated data set.

    The generated set is the ``generated_loco`` asset, made under the storage folder
    (`models.storage.StorageLayout.generated`); this resource only reads it, so lineage shows where the
    images come from.
    """

    data_root: str | None = Field(
        default=None, description="MVTec LOCO AD root (LOGICLS_DATA_ROOT); unset = the generated data set "
                                  "(asset generated_loco)."
    )
    storage: StorageResource

    @property
    def is_generated(self) -> bool:
        return not self.data_root

    @property
    def generated_dir(self) -> Path:
        """Where ``generated_loco`` writes the generated data set."""
        return self.storage.layout.generated

    @property
    def loco_root(self) -> Path:
        """The LOCO root that is read (the new-data sensor watches it)."""
        if self.data_root:
            return Path(self.data_root).expanduser()
        return loco_root(self.generated_dir)

    def root_for(self, scenario: str) -> Path:
        """The LOCO root that holds ``<root>/<scenario>``; a clear error naming the fix when it does not."""
        root = self.loco_root
        if (root / scenario).is_dir():
            return root
        if self.data_root:
            raise LocoFormatError(f"LOGICLS_DATA_ROOT={root} has no folder {scenario}/. {LAYOUT_HINT}")
        if scenario not in SCENARIOS:
            raise LocoFormatError(no_generated_data(scenario))
        raise LocoFormatError(f"no generated data for {scenario} under {root}: materialize generated_loco for "
                              f"{scenario} first (or set LOGICLS_DATA_ROOT to a LOCO root)")

    def annotations_path(self, scenario: str) -> Path | None:
        """The generator's instance annotations for ``scenario`` (only for generated data)."""
        if self.data_root:
            return None
        path = annotations_path(self.generated_dir, scenario)
        return path if path.is_file() else None


def no_generated_data(scenario: str) -> str:
    """Why a scenario the generator does not draw has no generated data, and the fix."""
    return (f"Scenario {scenario!r} has no generated data (the generator draws {', '.join(SCENARIOS)}): "
            f"set LOGICLS_DATA_ROOT to a LOCO-format root that holds {scenario}/.")

"""The storage resource: one root for every table, file and folder the chain writes (``LOGICLS_STORAGE``).

The locations below the root are `models.storage.StorageLayout`'s, the one place they are built; the
Parquet IO manager, the assets and the resources that keep files (the built-in model, the generated
data) all take this resource, so setting the root once in the launchpad moves everything together.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from models.storage import StorageLayout


class StorageResource(ConfigurableResource):
    """Where tables, generated data, augmented images, checkpoints, reports and caches live."""

    root: str = Field(description="Storage folder (LOGICLS_STORAGE), local or mounted; every location below "
                                  "it is models.storage.StorageLayout's.")

    @property
    def layout(self) -> StorageLayout:
        return StorageLayout(Path(self.root).expanduser())

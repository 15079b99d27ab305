"""The grounding resource: which open-vocabulary segmenter runs, with which weights and thresholds."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from models.grounding import GroundingBackend, GroundingConfig, build_backend
from models.storage import grounder_settings
from resources.config_mirror import mirror


class Grounder(mirror(GroundingConfig, base=ConfigurableResource)):
    """Open-vocabulary grounding: every `models.grounding.GroundingConfig` field (the weight-free ``classical``
    segmenter by default, CLIP + SAM with local checkpoint files), and where results are cached."""

    cache_dir: str = Field(description="Per-image results are cached here, keyed by image content and config.")

    def build(self) -> GroundingBackend:
        """Load the backend's models (clear errors for missing checkpoint files)."""
        return build_backend(self.to_core())

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)


def grounder_from_env(cache_dir: str) -> Grounder:
    """The grounder set by ``LOGICLS_GROUNDING_BACKEND``, ``LOGICLS_SAM_CHECKPOINT``, ``LOGICLS_CLIP_WEIGHTS``…
    (`models.storage.GROUNDER_VARIABLES`; unset ones keep their defaults: the weight-free ``classical``
    backend for the generated data)."""
    return Grounder(cache_dir=cache_dir, **grounder_settings())

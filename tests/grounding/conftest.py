"""Fixtures of the grounding tests: tiny models saved once per session, a fresh fake backend."""

from __future__ import annotations

import pytest
from grounding_helpers import FakeBackend

from models.grounding import GroundingBackend, GroundingConfig, build_backend


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> GroundingConfig:
    """A clip_sam config on a tiny SAM and a tiny CLIP saved to local files for this session."""
    from models.grounding.tiny import tiny_grounding_config

    return tiny_grounding_config(tmp_path_factory.mktemp("tiny_models"), device="cpu")


@pytest.fixture(scope="session")
def tiny_backend(tiny_config: GroundingConfig) -> GroundingBackend:
    """The clip_sam backend loaded from the tiny files through the real loading path."""
    return build_backend(tiny_config)


@pytest.fixture()
def fake_backend() -> FakeBackend:
    return FakeBackend(GroundingConfig(backend="fake"))

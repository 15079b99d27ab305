"""Shared fixtures of the spec tests: the shipped specs, the user spec, an object factory."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models.objects import ImageObject
from models.spec import ScenarioSpec, load_spec, shipped_specs
from tests.spec.helpers import DATA, make_object


@pytest.fixture(scope="session")
def specs() -> dict[str, ScenarioSpec]:
    return shipped_specs()


@pytest.fixture(scope="session")
def tray() -> ScenarioSpec:
    return load_spec(DATA / "tray.yaml")


@pytest.fixture
def obj() -> Callable[..., ImageObject]:
    return make_object

"""One small generated data set for the whole test area (all five categories, about 160 images)."""

from __future__ import annotations

import pytest

from models.synth import CATEGORIES, ensure_generated
from tests.synth.synth_helpers import SMALL, Generated


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("synth")
    for category in CATEGORIES:
        ensure_generated(category, out, SMALL)
    return Generated(out, SMALL)

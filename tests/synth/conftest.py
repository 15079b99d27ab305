"""One small generated data set for the whole test area (all five scenarios, about 160 images)."""

from __future__ import annotations

import pytest

from models.synth import SCENARIOS, ensure_generated
from tests.synth.synth_helpers import SMALL, Generated


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("synth")
    for scenario in SCENARIOS:
        ensure_generated(scenario, out, SMALL)
    return Generated(out, SMALL)

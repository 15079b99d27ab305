"""Issue 4's acceptance of the classical backend, on the default generated data set (all five scenarios)."""

from __future__ import annotations

import pytest
from grounding_helpers import TARGET, assert_acceptance, generate_all

from models.grounding import GroundingConfig, build_backend
from models.grounding.evaluate import evaluate_generated
from models.spec import load_specs
from models.synth import SCENARIOS, GeneratorConfig


@pytest.mark.slow
def test_acceptance_on_the_default_generated_data(tmp_path) -> None:
    """~730 LOCO FC images: P/R ≥ 0.9 per label, counts right on ≥ 90 % of normal images, attributes ≥ 0.9."""
    out = generate_all(tmp_path, GeneratorConfig())
    backend = build_backend(GroundingConfig(backend="classical"))
    specs = load_specs(None)
    for scenario in SCENARIOS:
        evaluation = evaluate_generated(backend, out, specs[scenario])
        assert_acceptance(evaluation, specs[scenario])
        assert (evaluation.attributes["accuracy"] >= TARGET).all(), evaluation.attributes.to_string()

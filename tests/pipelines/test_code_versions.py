"""Each asset's code version follows the version constants its `models/` code bumps, so the retraining
schedule sees real code changes."""

from __future__ import annotations

import pandas as pd
import pytest

import models.grounding.base
import models.vlm.fine_tuning
from pipelines.definitions import STAGES, build_definitions
from resources.code_versions import code_version, core_constant

EXPECTED = {  # asset → the constants it follows
    "generated_loco": ["GENERATOR_VERSION"],
    "loco_fc_split": ["SPLIT_VERSION"],
    "grounding": ["GROUNDING_VERSION", "RECIPE_VERSION"],
    "grounding_quality": ["QUALITY_VERSION"],
    "subquery_paraphrases": ["PROMPT_VERSION"],
    "augmented_images": ["AUGMENT_VERSION"],
    "cot_dataset": ["COT_VERSION"],
    "vlm_adapter": ["TRAINING_VERSION"],
    "difficulty_scores": ["TRAINING_VERSION"],
    "resampling_probabilities": ["TRAINING_VERSION"],
    "lac_predictions": ["PREDICTION_VERSION", "API_CACHE_TAG", "COT_VERSION"],
    "lac_report": ["REPORT_VERSION"],
    "lac_metrics": ["METRICS_VERSION"],
    "lac_class_metrics": ["METRICS_VERSION"],
    "lac_confusion": ["METRICS_VERSION"],
    "lac_ablation": ["TRAINING_VERSION", "COT_VERSION", "PREDICTION_VERSION"],
}


def _code_versions() -> dict[str, str]:
    graph = build_definitions().resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()
            if graph.get(key).is_executable}


def test_every_asset_follows_its_core_constants() -> None:
    declared = {name: constants for stage in STAGES for name, constants in stage.module.CODE_VERSIONS.items()}
    assert {name: [c.rpartition(".")[2] for c in constants] for name, constants in declared.items()} == EXPECTED
    versions = _code_versions()
    assert set(versions) == set(EXPECTED)
    for name, constants in declared.items():
        assert all(dotted.startswith("models.") for dotted in constants), name  # the core's constants
        expected = "+".join(f"{dotted.rpartition('.')[2]}={core_constant(dotted)}" for dotted in constants)
        assert versions[name] == expected == code_version(constants), name
    assert versions["grounding"] == "GROUNDING_VERSION=2+RECIPE_VERSION=2"


def test_bumping_a_constant_changes_only_the_assets_that_follow_it(monkeypatch) -> None:
    before = _code_versions()
    monkeypatch.setattr(models.grounding.base, "GROUNDING_VERSION", models.grounding.base.GROUNDING_VERSION + 1)
    after = _code_versions()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"grounding"}
    assert after["grounding"].startswith("GROUNDING_VERSION=3+")


def test_a_new_training_version_starts_a_new_run(monkeypatch) -> None:
    """A bumped TRAINING_VERSION must train again, not resume the old code's finished run."""
    samples = pd.DataFrame({"sample_id": ["a"], "subquery_id": ["q"], "question": ["?"], "target": ["t"],
                            "image_path": ["i"], "example_image_path": ["e"], "example_target": ["t"]})
    config = models.vlm.fine_tuning.TrainConfig()
    key = models.vlm.fine_tuning.run_key(config, samples, "base")
    monkeypatch.setattr(models.vlm.fine_tuning, "TRAINING_VERSION", models.vlm.fine_tuning.TRAINING_VERSION + 1)
    assert models.vlm.fine_tuning.run_key(config, samples, "base") != key


def test_an_asset_without_declared_constants_is_refused() -> None:
    from assets.grounding import grounding
    from resources.code_versions import with_code_versions

    with pytest.raises(ValueError, match=r"no CODE_VERSIONS entry for \['grounding'\]"):
        with_code_versions([grounding], {})

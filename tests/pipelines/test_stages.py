"""The Definitions are an index of the stages: one module, one asset group, one single-stage job, one name."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey

from pipelines.definitions import STAGES, defs
from resources.tags import ALL_SCENARIOS, SCOPE_TAG

REPO = Path(__file__).resolve().parents[2]
STAGE_NAMES = ["split", "grounding", "instruction_data", "fine_tuning", "evaluation", "ablation"]


def _group_keys(group: str) -> set[AssetKey]:
    graph = defs.resolve_asset_graph()
    return {key for key in graph.get_all_asset_keys() if graph.get(key).group_name == group}


def test_stages_in_order_with_one_numbering() -> None:
    assert [(stage.number, stage.name) for stage in STAGES] == [
        (1, "split"), (3, "grounding"), (4, "instruction_data"), (5, "fine_tuning"), (6, "evaluation"),
        (None, "ablation")]
    assert [stage.module.__name__ for stage in STAGES] == [f"assets.{name}" for name in STAGE_NAMES]


def test_asset_groups_are_exactly_the_stage_names() -> None:
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == set(STAGE_NAMES)
    assert {k.to_user_string() for k in _group_keys("split")} == {"generated_loco", "loco_fc_split"}
    assert {k.to_user_string() for k in _group_keys("fine_tuning")} == {
        "vlm_adapter", "difficulty_scores", "resampling_probabilities"}


def test_each_single_stage_job_is_named_after_its_stage_and_selects_its_group() -> None:
    jobs = {job.name for job in defs.jobs}
    assert {"train", "evaluate"}.isdisjoint(jobs)  # the old names
    graph = defs.resolve_asset_graph()
    single_stage = sorted(jobs & set(STAGE_NAMES))
    assert single_stage == ["ablation", "evaluation", "fine_tuning"]
    for name in single_stage:
        selected = defs.resolve_job_def(name).asset_layer.selected_asset_keys
        per_scenario = {k for k in _group_keys(name) if graph.get(k).tags.get(SCOPE_TAG) != ALL_SCENARIOS}
        assert selected == per_scenario, name


def test_the_assets_package_holds_only_stage_modules() -> None:
    modules = {path.stem for path in (REPO / "assets").glob("*.py")} - {"__init__"}
    assert modules == set(STAGE_NAMES)

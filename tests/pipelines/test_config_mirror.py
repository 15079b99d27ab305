"""Each setting is declared once, in the core: every launchpad class is derived from its core dataclass.

One test per pair pins the names, types' defaults and help text of the Dagster side against the core
side, the declared exceptions (fields not shown, different defaults, "unset" fields) and the
Dagster-only fields. A drift (a default changed on one side, a field added to the core and not shown)
fails here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING

import pytest
from dagster import Config, ConfigurableResource

from assets.ablation import AblationConfig
from assets.evaluation import LacPredictionsConfig
from assets.instruction_data import AugmentedImagesConfig, CotDatasetConfig, SubqueryParaphrasesConfig
from assets.split import GeneratedLocoConfig, LocoFcSplitConfig
from models.evaluation.answerers import CHECKPOINT_MIN_NEW_TOKENS, PredictionConfig
from models.grounding import GroundingConfig
from models.instruct.augment import AugmentConfig
from models.instruct.cot import CotConfig
from models.instruct.paraphrase import ParaphraseConfig
from models.llm import ChatEndpointConfig
from models.split import SplitConfig
from models.synth import GeneratorConfig
from models.vlm import TrainConfig, VLMConfig
from models.vlm.presets import TINY
from resources.config_mirror import mirror, mirrored_names
from resources.fine_tuning import FineTuneConfig
from resources.grounding import Grounder
from resources.llm import ChatEndpoint
from resources.vlm import VisionLanguageModel

ENDPOINT_HIDDEN = {"base_url", "model", "api_key", "api_key_env"}

# (Dagster class, core class, hidden core fields, Dagster-only fields)
PAIRS = [
    (LocoFcSplitConfig, SplitConfig, set(), set()),
    (GeneratedLocoConfig, GeneratorConfig, set(), set()),
    (SubqueryParaphrasesConfig, ParaphraseConfig, set(), {"endpoint_retries"}),
    (AugmentedImagesConfig, AugmentConfig, set(), {"reground_limit"}),
    (CotDatasetConfig, CotConfig, set(),
     {"max_flagged_rate", "max_class_removed_share", "examples", "jsonl_media_dir"}),
    (FineTuneConfig, TrainConfig, set(), {"preset", "nproc_per_node", "resume"}),
    (LacPredictionsConfig, PredictionConfig, set(), {"methods", "endpoint_retries"}),
    (AblationConfig, PredictionConfig, {"api_concurrency"}, {"configurations", "training"}),
    (Grounder, GroundingConfig, set(), {"cache_dir"}),
    (VisionLanguageModel, VLMConfig, set(), {"checkpoint_dir", "storage", "tiny_seed"}),
    (ChatEndpoint, ChatEndpointConfig, ENDPOINT_HIDDEN, ENDPOINT_HIDDEN - {"api_key_env"} | {"cache_dir"}),
]


def _core_default(spec: dataclasses.Field) -> object:
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return MISSING


def _as_run_config(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(("dagster_class", "core", "hidden", "extra"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_the_launchpad_side_is_the_core_side(dagster_class, core, hidden, extra) -> None:
    core_fields = {f.name: f for f in dataclasses.fields(core)}
    assert dagster_class.core_class is core
    assert set(dagster_class.hidden_fields) == hidden
    assert all(reason.strip() for reason in dagster_class.hidden_fields.values())  # every exception says why
    assert mirrored_names(dagster_class) == [name for name in core_fields if name not in hidden]
    assert set(dagster_class.model_fields) - set(mirrored_names(dagster_class)) == extra
    changed = dagster_class.default_changes
    for name in mirrored_names(dagster_class):
        field = dagster_class.model_fields[name]
        help_text = core_fields[name].metadata["help"]
        if dagster_class.unset_means is not None:  # "unset: the base's value"
            assert field.default is None and field.description.startswith(help_text + " Unset: "), name
            continue
        assert field.description == help_text, name
        expected = changed[name].value if name in changed else _core_default(core_fields[name])
        if expected is not MISSING:
            assert field.get_default(call_default_factory=True) == _as_run_config(expected), name
    assert not changed  # no pair differs in a default today; a new difference must be declared with its reason


def test_every_mirrored_core_field_has_help() -> None:
    for _, core, hidden, _ in PAIRS:
        missing = [f.name for f in dataclasses.fields(core) if f.name not in hidden and not f.metadata.get("help")]
        assert not missing, f"{core.__name__}: {missing}"


@pytest.mark.parametrize(("dagster_class", "core"), [
    (LocoFcSplitConfig, SplitConfig), (GeneratedLocoConfig, GeneratorConfig),
    (SubqueryParaphrasesConfig, ParaphraseConfig), (AugmentedImagesConfig, AugmentConfig),
    (CotDatasetConfig, CotConfig), (LacPredictionsConfig, PredictionConfig)])
def test_default_launchpad_settings_give_the_core_defaults(dagster_class, core) -> None:
    assert dagster_class().to_core() == core()


def test_resources_give_the_core_defaults() -> None:
    assert Grounder(cache_dir="c").to_core() == GroundingConfig()
    assert ChatEndpoint(base_url="http://127.0.0.1:9/v1", model="m", cache_dir="c").endpoint_config() == (
        ChatEndpointConfig(base_url="http://127.0.0.1:9/v1", model="m"))


def test_the_grounding_backend_has_one_default() -> None:
    """The resource and the core agree: the weight-free backend, since no weights can be downloaded."""
    assert Grounder(cache_dir="c").backend == GroundingConfig().backend == "classical"


def test_table_iii_rows_and_the_main_rows_generate_under_one_rule() -> None:
    """lac_ablation and lac_predictions bound generation by the same PredictionConfig rule: room for the longest
    training target, at least CHECKPOINT_MIN_NEW_TOKENS on a real checkpoint."""
    targets = ["x" * 30]

    def tokenizer(texts, add_special_tokens):
        return {"input_ids": [list(t) for t in texts]}

    for settings in (AblationConfig().to_core(), LacPredictionsConfig().to_core()):
        assert settings.generation_limit(targets, tokenizer, tiny=False) == CHECKPOINT_MIN_NEW_TOKENS
        assert settings.generation_limit(targets, tokenizer, tiny=True) < CHECKPOINT_MIN_NEW_TOKENS
    assert AblationConfig(max_new_tokens=7).to_core().generation_limit(targets, tokenizer, tiny=False) == 7


def test_unset_training_fields_keep_the_preset() -> None:
    assert FineTuneConfig().train_config(tiny_model=True, max_new_tokens=64) == dataclasses.replace(
        TINY, max_new_tokens=64)
    config = FineTuneConfig(adam_betas=[0.8, 0.9], max_new_tokens=9).train_config(tiny_model=True, max_new_tokens=64)
    assert config.adam_betas == (0.8, 0.9) and config.max_new_tokens == 9


def test_a_core_field_without_help_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Bare:
        size: int = 1

    with pytest.raises(ValueError, match=r"Bare\.size has no help text"):
        mirror(Bare)
    with pytest.raises(ValueError, match=r"no such fields \['sizes'\]"):
        mirror(Bare, hidden={"sizes": "a typo"})


def test_the_generated_classes_are_dagster_config() -> None:
    assert issubclass(LocoFcSplitConfig, Config) and issubclass(Grounder, ConfigurableResource)
    assert LocoFcSplitConfig.model_fields["train_ratio"].description.startswith("Share of each class's")

"""API keys never enter run config: a key typed into the launchpad is refused before a run is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import EnvVar
from dagster._core.test_utils import in_process_test_workspace, instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql, infer_job_selector

from resources.llm import ChatEndpoint, KeyFromEnv

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-launchpad-3c9e-DO-NOT-LEAK"


def test_a_key_in_python_is_refused_without_echoing_it(tmp_path) -> None:
    for given in (API_KEY, {"env": API_KEY}):
        with pytest.raises(ValueError, match="not the key") as refused:
            ChatEndpoint(api_key=given, cache_dir=str(tmp_path))
        assert API_KEY not in str(refused.value)
    assert ChatEndpoint(api_key=EnvVar("LOGICLS_PARAPHRASE_API_KEY"), cache_dir=str(tmp_path)).api_key_env == (
        "LOGICLS_PARAPHRASE_API_KEY"
    )
    assert ChatEndpoint(api_key=KeyFromEnv(env="MY_KEY"), cache_dir=str(tmp_path)).api_key_env == "MY_KEY"


def test_the_key_is_read_from_its_variable_when_the_client_is_made(tmp_path, monkeypatch) -> None:
    endpoint = ChatEndpoint(base_url="http://127.0.0.1:9/v1", model="m", api_key=EnvVar("LOGICLS_ICL_API_KEY"),
                            cache_dir=str(tmp_path))
    monkeypatch.delenv("LOGICLS_ICL_API_KEY", raising=False)
    assert endpoint.endpoint_config().api_key == ""  # unset: a keyless endpoint, no failure at launch
    monkeypatch.setenv("LOGICLS_ICL_API_KEY", API_KEY)
    config = endpoint.endpoint_config()
    assert config.api_key == API_KEY and config.api_key_env == "LOGICLS_ICL_API_KEY"
    assert API_KEY not in repr(endpoint) + str(endpoint.describe())


def _launch(context, run_config: dict) -> dict:
    params = {"selector": infer_job_selector(context, "build_dataset"), "runConfigData": run_config,
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "pushpins"}]}}
    result = execute_dagster_graphql(context, LAUNCH_PIPELINE_EXECUTION_MUTATION, {"executionParams": params})
    return result.data["launchPipelineExecution"]


def test_a_key_typed_into_the_launchpad_is_refused_and_stored_nowhere(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path / "storage"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    overrides = {"run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}}
    origin = LoadableTargetOrigin(module_name="pipelines.definitions", working_directory=str(REPO))
    with instance_for_test(temp_dir=str(home), overrides=overrides) as instance, \
            in_process_test_workspace(instance, origin) as context:
        cache = str(tmp_path / "storage" / "cache" / "llm")
        typed = {"resources": {"paraphraser": {"config": {"api_key": API_KEY, "cache_dir": cache}}}}
        refused = _launch(context, typed)
        assert refused["__typename"] == "RunConfigValidationInvalid"
        (error,) = refused["errors"]
        assert "api_key" in error["message"] and "env" in error["message"] and API_KEY not in error["message"]

        named = {"resources": {"paraphraser": {"config": {"api_key": {"env": "LOGICLS_PARAPHRASE_API_KEY"},
                                                          "cache_dir": cache}}}}
        assert _launch(context, named)["__typename"] == "LaunchRunSuccess"

        (run,) = instance.get_runs()  # only the launch that named the variable became a run
        assert run.run_config["resources"]["paraphraser"]["config"]["api_key"] == {"env": "LOGICLS_PARAPHRASE_API_KEY"}
        for record in instance.get_records_for_run(run.run_id).records:
            assert API_KEY not in str(record.event_log_entry.to_json())
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert stored and not any(API_KEY.encode() in p.read_bytes() for p in stored)

"""Wiring: the icl_endpoint resource from the environment, and which jobs run the evaluation assets."""

from __future__ import annotations

from dagster import EnvVar

from pipelines.definitions import build_resources


def test_icl_endpoint_from_environment(monkeypatch) -> None:
    for name in ("LOGICLS_ICL_BASE_URL", "LOGICLS_ICL_MODEL", "LOGICLS_ICL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    unconfigured = build_resources()["icl_endpoint"]
    assert not unconfigured.is_configured and unconfigured.api_key_env == "LOGICLS_ICL_API_KEY"
    monkeypatch.setenv("LOGICLS_ICL_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LOGICLS_ICL_MODEL", "gpt-4.1")
    monkeypatch.setenv("LOGICLS_ICL_API_KEY", "sk-secret-icl-key")
    endpoint = build_resources()["icl_endpoint"]
    assert endpoint.is_configured and endpoint.model == "gpt-4.1" and endpoint.temperature == 0.0
    assert endpoint.api_key == EnvVar("LOGICLS_ICL_API_KEY")  # bound by name, not copied: read when a run starts
    assert endpoint.endpoint_config().api_key == "sk-secret-icl-key"
    assert "sk-secret" not in str(endpoint.describe()) + repr(endpoint)


def test_metrics_run_once_over_all_scenarios_not_in_per_scenario_jobs() -> None:
    from pipelines.definitions import defs

    def keys(job: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}

    metrics = {"lac_metrics", "lac_class_metrics", "lac_confusion"}
    assert keys("lac_metrics_job") == metrics
    for job in ("evaluation", "full_pipeline", "refresh_from_split"):
        assert {"lac_predictions", "lac_report"} <= keys(job) and not keys(job) & metrics
    assert defs.resolve_job_def("lac_metrics_job").partitions_def is None

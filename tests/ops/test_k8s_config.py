"""The Kubernetes deployment, checked without a cluster: definitions load, the instance config fits
Dagster's schema, the executor config is valid, and GPU-tagged steps get pods that request GPUs."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import Definitions, asset, validate_run_config
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

from pipelines.deploy_k8s import build_k8s_definitions, gpu_pod_config, gpu_step_configs
from resources.partitions import scenario_partitions
from resources.tags import GPU_POOL, gpu_tags, gpus_requested

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres.example",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "logicls-dagster-instance",
    "DAGSTER_K8S_JOB_NAMESPACE": "logicls",
}


@asset(partitions_def=scenario_partitions, deps=["loco_fc_split"], tags=gpu_tags(2), pool=GPU_POOL,
       group_name="fine_tuning")
def gpu_stage() -> None:
    """Stands for a GPU-heavy stage (grounding, fine_tuning) tagged the way the project tags them."""


def _with_gpu_stage() -> Definitions:
    base = build_k8s_definitions()
    return Definitions.merge(base, Definitions(assets=[gpu_stage]))


def test_definitions_validate_for_local_and_kubernetes(tmp_path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "LOGICLS_STORAGE": str(tmp_path / "storage")}
    dagster = Path(sys.executable).with_name("dagster")
    for module in ("pipelines.definitions", "pipelines.deploy_k8s"):
        done = subprocess.run(
            [str(dagster), "definitions", "validate", "-m", module],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_instance_config_fits_dagsters_schema(tmp_path, monkeypatch) -> None:
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    shutil.copy(K8S / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any schema error
    assert config["run_monitoring"]["enabled"] is True
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert set(config["storage"]) == {"postgres"}
    for section in ("run_launcher", "run_coordinator"):
        entry = config[section]
        cls = getattr(importlib.import_module(entry["module"]), entry["class"])
        result = process_config(cls.config_type(), entry.get("config") or {})
        assert result.success, (section, result.errors)
    launcher = process_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"]).value
    assert launcher["instance_config_map"] == "logicls-dagster-instance"  # env vars resolve


def test_helm_values_match_the_instance_and_the_code() -> None:
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    instance = yaml.safe_load((K8S / "dagster.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("--module-name") + 1]
    assert module == "pipelines.deploy_k8s"
    assert importlib.import_module(module).defs is not None
    assert {"LOGICLS_STORAGE", "LOGICLS_DATA_ROOT", "LOGICLS_RETRAIN_CRON"} <= set(deployment["env"])
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is instance["run_monitoring"]["enabled"] is True
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_every_job_runs_on_the_k8s_executor_with_valid_config() -> None:
    defs = build_k8s_definitions()
    for job in defs.get_repository_def().get_all_jobs():
        if job.name.startswith("__"):
            continue
        assert job.executor_def.name == "k8s_gpu_aware", job.name
        assert validate_run_config(job, {}) is not None


def test_gpu_tagged_steps_get_gpu_pods() -> None:
    defs = _with_gpu_stage()
    configs = gpu_step_configs(defs)
    assert configs["gpu_stage"] == gpu_pod_config(2)
    assert "loco_fc_split" not in configs
    job = defs.resolve_job_def("full_pipeline")
    step_ops = {node.name for node in job.graph.nodes}
    assert {"loco_fc_split", "gpu_stage"} <= step_ops
    assert validate_run_config(job, {}) is not None
    # The pod the k8s step handler would build for each step, from the same config objects.
    instance = yaml.safe_load((K8S / "dagster.yaml").read_text())["run_launcher"]["config"]
    job_config = DagsterK8sJobConfig(
        job_image="registry.example.com/logicls-pipelines:0.1.0", dagster_home=instance["dagster_home"],
        instance_config_map="logicls-dagster-instance", postgres_password_secret=instance["postgres_password_secret"],
    )
    for op in sorted(step_ops):
        context = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(configs.get(op, {})))
        pod = construct_dagster_k8s_job(
            job_config, ["dagster", "api", "execute_step"], f"dagster-step-{op.replace('_', '-')}",
            user_defined_k8s_config=context.run_k8s_config, component="step_worker",
        ).spec.template.spec
        resources = pod.containers[0].resources
        limits = (resources.limits if resources else None) or {}
        if op not in configs:
            assert "nvidia.com/gpu" not in limits, op
            continue
        assert limits == {"nvidia.com/gpu": "2" if op == "gpu_stage" else "1"}, op
        assert [t.key for t in pod.tolerations] == ["nvidia.com/gpu"]
        assert [m.mount_path for m in pod.containers[0].volume_mounts] == ["/dev/shm"]


def test_every_gpu_tagged_asset_of_the_project_has_a_gpu_pod() -> None:
    defs = build_k8s_definitions()
    configs = gpu_step_configs(defs)
    for assets_def in defs.resolve_asset_graph().assets_defs:
        gpus = max((gpus_requested(dict(s.tags)) for s in assets_def.specs), default=0)
        if gpus and assets_def.is_executable:
            limits = configs[assets_def.op.name]["container_config"]["resources"]["limits"]
            assert limits["nvidia.com/gpu"] == str(gpus)


def test_gpu_tag_convention() -> None:
    assert gpus_requested(gpu_tags()) == 1
    assert gpus_requested(gpu_tags(4)) == 4
    assert gpus_requested({"logicls/compute": "cpu"}) == 0
    with pytest.raises(ValueError, match="at least one GPU"):
        gpu_tags(0)

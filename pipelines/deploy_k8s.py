"""Definitions for a Kubernetes deployment: the project's assets, jobs, schedules and sensors, with
every step in its own pod (`k8s_job_executor`) and GPU requests on the steps that need them.

The Helm chart's user code deployment serves this module (``dagster api grpc -m
pipelines.deploy_k8s``); `dagster dev` keeps using `pipelines.definitions`, so nothing of this
applies on one machine. A step's pod requests GPUs when its asset carries the tags of
`resources.tags.gpu_tags` (``logicls/compute: gpu``, ``logicls/gpus: N``); the executor's
``per_step_k8s_config`` holds that pod configuration per op, so assets stay free of
Kubernetes-specific op tags. Everything else a pod needs (image, env, secrets, the shared storage
volume) comes from the code location and the run launcher in deploy/k8s/values.yaml.
"""

from __future__ import annotations

from dagster import AssetsDefinition, Definitions, ExecutorDefinition
from dagster_k8s import k8s_job_executor

from pipelines.definitions import build_definitions
from resources.tags import gpus_requested

# GPU node pools are usually tainted so that only GPU work lands there.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# NCCL and DataLoader workers exchange tensors through /dev/shm, which is 64 MiB by default in a pod.
SHM_VOLUME = {"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": "16Gi"}}
SHM_MOUNT = {"name": "dshm", "mount_path": "/dev/shm"}
CPUS_PER_GPU = 8
MEMORY_PER_GPU_GI = 48


def gpu_pod_config(gpus: int) -> dict[str, object]:
    """Raw Kubernetes config of a step pod with ``gpus`` GPUs (the shape of ``dagster-k8s/config``)."""
    return {
        "container_config": {
            "resources": {
                "limits": {"nvidia.com/gpu": str(gpus)},
                "requests": {"cpu": str(CPUS_PER_GPU * gpus), "memory": f"{MEMORY_PER_GPU_GI * gpus}Gi"},
            },
            "volume_mounts": [SHM_MOUNT],
        },
        "pod_spec_config": {"tolerations": [GPU_TOLERATION], "volumes": [SHM_VOLUME]},
    }


def _op_gpus(assets_def: AssetsDefinition) -> int:
    """GPUs of the op behind ``assets_def``: the most any of its assets asks for."""
    return max((gpus_requested(dict(spec.tags)) for spec in assets_def.specs), default=0)


def gpu_step_configs(defs: Definitions) -> dict[str, dict[str, object]]:
    """``per_step_k8s_config`` of the executor: a GPU pod for each op whose asset carries the GPU tags."""
    configs: dict[str, dict[str, object]] = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not assets_def.is_executable or assets_def.computation is None:
            continue
        gpus = _op_gpus(assets_def)
        if gpus:  # graph-backed assets: every op of the graph runs on the GPU node
            configs.update({op.name: gpu_pod_config(gpus) for op in assets_def.node_def.iterate_op_defs()})
    return configs


def k8s_executor(defs: Definitions) -> ExecutorDefinition:
    """`k8s_job_executor`: one pod per step, GPU pods for the GPU steps."""
    return k8s_job_executor.configured({"per_step_k8s_config": gpu_step_configs(defs)}, name="k8s_gpu_aware")


def build_k8s_definitions() -> Definitions:
    """The project's definitions with the Kubernetes executor as every job's default."""
    return build_definitions(executor=k8s_executor(build_definitions()))


defs = build_k8s_definitions()

"""Tag conventions shared by assets and deployments.

A GPU-heavy asset (grounding, training, inference) is declared as::

    @asset(tags=gpu_tags(), pool=GPU_POOL, ...)

Locally the ``gpu`` concurrency pool keeps two such steps off one GPU. On Kubernetes
(`pipelines.deploy_k8s`) every asset carrying ``logicls/compute: gpu`` runs in a pod that requests
``logicls/gpus`` GPUs (default 1), so the tag is the one switch and it shows in the UI.
"""

from __future__ import annotations

COMPUTE_TAG = "logicls/compute"
GPU = "gpu"
GPUS_TAG = "logicls/gpus"
GPU_POOL = "gpu"


def gpu_tags(gpus: int = 1) -> dict[str, str]:
    """Asset tags of a step that needs ``gpus`` GPUs (several: multi-GPU training through torchrun)."""
    if gpus < 1:
        raise ValueError(f"A GPU step needs at least one GPU, got {gpus}.")
    return {COMPUTE_TAG: GPU, GPUS_TAG: str(gpus)}


def gpus_requested(tags: dict[str, str]) -> int:
    """How many GPUs an asset with these tags asks for (0: a CPU step)."""
    if tags.get(COMPUTE_TAG) != GPU:
        return 0
    return int(tags.get(GPUS_TAG, "1"))


SCOPE_TAG = "logicls/scope"
ALL_SCENARIOS = "all_scenarios"
"""``logicls/scope: all_scenarios`` marks unpartitioned assets that read every scenario (``lac_metrics``):
jobs that run one scenario select everything but these, and they run once the scenarios are done."""


def all_scenarios_tags() -> dict[str, str]:
    """Tags of an asset computed over every scenario partition at once."""
    return {SCOPE_TAG: ALL_SCENARIOS}


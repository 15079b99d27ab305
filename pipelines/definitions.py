"""The one `Definitions` of the project: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import os

from dagster import (
    Definitions,
    ExecutorDefinition,
    PipesSubprocessClient,
    load_asset_checks_from_package_module,
    load_assets_from_package_module,
)

import assets
from pipelines.abandoned_runs import LOCAL_EXECUTOR, abandoned_runs_sensor
from pipelines.jobs import JOBS, refresh_from_split, train_and_evaluate
from pipelines.schedules import build_retrain_schedule
from pipelines.sensors import build_new_data_sensor
from resources.grounding import grounder_from_env
from resources.llm import chat_endpoint_from_env
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.settings import data_root, storage_dir
from resources.vlm import VisionLanguageModel


def build_resources() -> dict[str, object]:
    """Resources configured from the environment (``LOGICLS_*``); all are editable in the launchpad."""
    storage = storage_dir()
    return {
        "io_manager": ParquetIOManager(base_dir=storage),
        "loco": LocoDataset(data_root=data_root(), storage_dir=storage),
        "grounder": grounder_from_env(cache_dir=f"{storage}/cache/grounding"),
        "paraphraser": chat_endpoint_from_env("LOGICLS_PARAPHRASE", cache_dir=f"{storage}/cache/llm"),
        # The in-context baseline over an API: greedy (temperature 0), like the local models.
        "icl_endpoint": chat_endpoint_from_env("LOGICLS_ICL", cache_dir=f"{storage}/cache/llm", temperature=0.0),
        "pipes_subprocess_client": PipesSubprocessClient(forward_termination=True),
        "vlm": VisionLanguageModel(checkpoint_dir=os.getenv("LOGICLS_VLM_CHECKPOINT", ""), storage_dir=storage),
    }


def build_definitions(executor: ExecutorDefinition = LOCAL_EXECUTOR) -> Definitions:
    """Assemble the definitions; a function so tests can build them under other environment settings.

    The executor is Dagster's default one that also closes the runs of this machine whose processes were
    killed (`pipelines.abandoned_runs`); a cluster deployment passes its own.
    """
    return Definitions(
        assets=load_assets_from_package_module(assets),
        asset_checks=load_asset_checks_from_package_module(assets),
        jobs=JOBS,
        schedules=[build_retrain_schedule(train_and_evaluate.name)],
        sensors=[build_new_data_sensor(refresh_from_split.name), abandoned_runs_sensor],
        resources=build_resources(),
        executor=executor,
    )


defs = build_definitions()

"""The one `Definitions` of the project, and the index of LogiCls's stages.

Each stage is one module of `assets/`, and its module name is the stage's one name: the asset group,
the job that runs the stage alone (where there is one), and the stage's name in the README. Each
stage module calls its core function in `models/` (named below); stage 2, constraint decomposition,
is the scenario specs (`models/spec`), which every stage reads, so it has no asset.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    AssetSpec,
    Definitions,
    ExecutorDefinition,
    PipesSubprocessClient,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from assets import ablation, evaluation, fine_tuning, grounding, instruction_data, split
from models.storage import ICL_ENDPOINT, PARAPHRASE_ENDPOINT, StorageLayout, data_root, vlm_checkpoint
from pipelines.abandoned_runs import LOCAL_EXECUTOR, abandoned_runs_sensor
from pipelines.jobs import JOBS, refresh_from_split, train_and_evaluate
from pipelines.schedules import build_retrain_schedule
from pipelines.sensors import build_new_data_sensor
from resources.code_versions import with_code_versions
from resources.grounding import grounder_from_env
from resources.llm import chat_endpoint_from_env
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel


@dataclass(frozen=True)
class Stage:
    """One stage of the chain: its number in the paper's order (None: outside the chain) and its module."""

    number: int | None
    module: ModuleType

    @property
    def name(self) -> str:
        """The module's name: the stage's asset group and single-stage job."""
        return self.module.__name__.rpartition(".")[2]

    def assets(self) -> list[AssetsDefinition | AssetSpec]:
        """The module's assets in the stage's group, each with the code version of the core constants it follows
        (the module's ``CODE_VERSIONS``, read now), chosen for this deployment by the module's ``stage_assets``
        where it has one (the split: generated or real data)."""
        loaded = list(load_assets_from_modules([self.module], group_name=self.name))
        choose = getattr(self.module, "stage_assets", None)
        chosen = choose(loaded, self.name) if choose else loaded
        return with_code_versions(chosen, self.module.CODE_VERSIONS)

    def asset_checks(self) -> list[AssetChecksDefinition]:
        return list(load_asset_checks_from_modules([self.module]))


STAGES = (  # each stage module, and the core it calls
    Stage(1, split),             # → models.split.loco_fc_split (its images: models.synth.ensure_generated)
    # 2: constraint decomposition, no asset: the scenario specs, models.spec
    Stage(3, grounding),         # → models.grounding.ground_images
    Stage(4, instruction_data),  # → models.instruct: paraphrase_subquery, augment_split, build_cot
    Stage(5, fine_tuning),       # → models.vlm.fine_tuning.FineTuningRun (which trains with train_lora)
    Stage(6, evaluation),        # → models.evaluation: predict, scenario_report, compute_metrics
    Stage(None, ablation),       # Table III → models.vlm.fine_tuning.FineTuningRun, models.evaluation.predict
)


def build_resources() -> dict[str, object]:
    """Resources configured from the environment (``LOGICLS_*``, read by `models.storage`); all are editable in
    the launchpad, the storage folder once for all (``storage``, which the others take)."""
    layout = StorageLayout.from_environment()
    # Configured at launch: a root set in the launchpad reaches the resources that take it (io_manager, loco,
    # vlm) too, not only the assets; bound instances would keep the root they were built with.
    storage = StorageResource.configure_at_launch(root=str(layout.root))
    root = data_root()
    llm_cache = str(layout.cache("llm"))
    return {
        "storage": storage,
        "io_manager": ParquetIOManager(storage=storage),
        "loco": LocoDataset(data_root=str(root) if root else None, storage=storage),
        "grounder": grounder_from_env(cache_dir=str(layout.cache("grounding"))),
        "paraphraser": chat_endpoint_from_env(PARAPHRASE_ENDPOINT, cache_dir=llm_cache),
        # The in-context baseline over an API: greedy (temperature 0), like the local models.
        "icl_endpoint": chat_endpoint_from_env(ICL_ENDPOINT, cache_dir=llm_cache, temperature=0.0),
        "pipes_subprocess_client": PipesSubprocessClient(forward_termination=True),
        "vlm": VisionLanguageModel(checkpoint_dir=vlm_checkpoint(), storage=storage),
    }


def build_definitions(executor: ExecutorDefinition = LOCAL_EXECUTOR) -> Definitions:
    """Assemble the definitions; a function so tests can build them under other environment settings.

    The executor is Dagster's default one that also closes the runs of this machine whose processes were
    killed (`pipelines.abandoned_runs`); a cluster deployment passes its own.
    """
    return Definitions(
        assets=[asset for stage in STAGES for asset in stage.assets()],
        asset_checks=[check for stage in STAGES for check in stage.asset_checks()],
        jobs=JOBS,
        schedules=[build_retrain_schedule(train_and_evaluate.name)],
        sensors=[build_new_data_sensor(refresh_from_split.name), abandoned_runs_sensor],
        resources=build_resources(),
        executor=executor,
    )


defs = build_definitions()

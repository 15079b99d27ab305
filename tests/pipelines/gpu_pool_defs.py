"""A pocket code location for the tests of killed and stopped runs: one partitioned asset that takes a
slot of the `gpu` pool and holds it, with the project's executor and sensor for killed runs. It imports
nothing heavy, so a `dagster asset materialize` of it starts in seconds.

``HOLD_GPU_DIR``: where each partition's step writes its pid once it holds the slot;
``HOLD_GPU_SECONDS``: how long it then keeps it (default 0).
"""

# No `from __future__ import annotations`: Dagster reads the context annotation as a type.
import os
import time
from pathlib import Path

from dagster import AssetExecutionContext, Definitions, StaticPartitionsDefinition, asset, define_asset_job

from pipelines.abandoned_runs import LOCAL_EXECUTOR, abandoned_runs_sensor
from resources.tags import GPU_POOL

PARTITIONS = StaticPartitionsDefinition(["a", "b", "c"])


@asset(pool=GPU_POOL, partitions_def=PARTITIONS)
def hold_gpu(context: AssetExecutionContext) -> None:
    Path(os.environ["HOLD_GPU_DIR"], context.partition_key).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("HOLD_GPU_SECONDS", "0")))


hold_gpu_job = define_asset_job("hold_gpu_job", selection=[hold_gpu], partitions_def=PARTITIONS)

defs = Definitions(assets=[hold_gpu], jobs=[hold_gpu_job], sensors=[abandoned_runs_sensor], executor=LOCAL_EXECUTOR)

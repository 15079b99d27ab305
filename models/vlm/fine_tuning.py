"""The fine-tuning process that the `vlm_adapter` asset starts through Dagster Pipes.

``python -m models.vlm.fine_tuning --run run.json`` for one process, or
``torchrun --nproc_per_node N -m models.vlm.fine_tuning --run run.json`` for several GPUs: every
rank trains (DDP); rank 0 alone opens the Pipes connection (Pipes allows one) to stream progress
into the Dagster run, and writes the run's tables next to its checkpoints, where the asset reads
them once the process has ended. A cancelled run leaves complete epoch checkpoints behind, from
which the next run resumes.

``run.json``: ``{"scenario", "model_dir", "samples" (Parquet), "output_dir", "resume",
"model": VLMConfig fields, "train": TrainConfig fields}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from dagster_pipes import PipesContext, open_dagster_pipes

from models.atomic import write_text_atomic
from models.spec import ScenarioSpec, answer_matches, get_spec
from models.vlm import TrainConfig, TrainResult, VLMConfig, train_lora
from resources.parquet_io import write_parquet_atomic

RESULT_FILE = "result.json"
DIFFICULTY_FILE = "difficulty.parquet"
PROBABILITIES_FILE = "probabilities.parquet"


def spec_answer_checker(spec: ScenarioSpec):
    """``1[ŷ = y]`` of Eq. 4 through the scenario's parser: the generated answer read as a typed value."""

    def check(row: Mapping[str, Any], generated: str) -> bool:
        return answer_matches(spec.subquery(row["subquery_id"]), generated, json.loads(row["answer_value"]))

    return check


def _progress(pipes: PipesContext | None):
    def report(event: dict[str, Any]) -> None:
        if pipes is None:
            return
        line = json.dumps(event, default=str)
        if event.get("event") == "step":
            pipes.log.debug(line)
        else:
            pipes.log.info(line)

    return report


def save_result(result: TrainResult, output_dir: Path) -> None:
    """The tables and summary the asset turns into outputs (written atomically, rank 0 only)."""
    write_parquet_atomic(result.difficulty, output_dir / DIFFICULTY_FILE)
    write_parquet_atomic(result.probabilities, output_dir / PROBABILITIES_FILE)
    summary = {
        "adapter_dir": str(result.adapter_dir),
        "epoch_losses": result.epoch_losses,
        "global_step": result.global_step,
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    write_text_atomic(output_dir / RESULT_FILE, json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="run.json written by the vlm_adapter asset")
    args = parser.parse_args(argv)
    run = json.loads(args.run.read_text())
    is_main = int(os.environ.get("RANK", "0")) == 0
    pipes_scope = open_dagster_pipes() if is_main else contextlib.nullcontext()
    with pipes_scope as pipes:
        spec = get_spec(run["scenario"], os.getenv("LOGICLS_SCENARIO_DIR") or None)
        result = train_lora(
            run["model_dir"],
            pd.read_parquet(run["samples"]),
            TrainConfig.from_dict(run["train"]),
            run["output_dir"],
            answer_checker=spec_answer_checker(spec),
            model_config=VLMConfig(**run["model"]),
            resume=bool(run["resume"]),
            progress_callback=_progress(pipes),
        )
        if is_main:
            save_result(result, Path(run["output_dir"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

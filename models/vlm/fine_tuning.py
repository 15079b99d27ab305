"""Stage 5, fine-tuning: one training run of a scenario's LoRA adapter, from its folder to the published adapter.

The `fine_tuning` asset and the Table III ablation prepare a run here (:meth:`FineTuningRun.prepare`),
start the command it gives (through Dagster Pipes), and read its result back from here. The process is

    python -m models.vlm.fine_tuning --run-file <run folder>/run.json            # one process
    torchrun --nproc_per_node N -m models.vlm.fine_tuning --run-file …/run.json  # DDP, several GPUs

Every rank trains; rank 0 alone reports (through Dagster Pipes when Dagster started the process, since
Pipes allows one connection; as JSON lines on stdout otherwise) and writes the result files next to
the checkpoints. A cancelled run leaves complete epoch checkpoints behind, from which the next run
with the same settings resumes.

The run folder, ``<runs dir>/run-<key>/``, with the key a hash of the settings that determine the
result (:meth:`TrainConfig.result_settings`), the data and the base model::

    run.json                      RunFile: what the process trains
    samples.parquet               the training rows (TRAINING_COLUMNS)
    epoch_NNN/                    per-epoch checkpoints (models.vlm.checkpoint)
    final/                        the trained adapter
    result.json                   epoch losses, global step, the epoch resumed from
    difficulty.parquet            Eq. 4 per (epoch, sample): DIFFICULTY_COLUMNS
    probabilities.parquet         Eq. 5 per (epoch, group)

No Dagster here but ``dagster_pipes``, the protocol library a Pipes process reports through.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
from dagster_pipes import PipesContext, PipesEnvVarParamsLoader, open_dagster_pipes
from safetensors.torch import save_file
from torch import nn

from models.atomic import write_bytes_atomic, write_text_atomic
from models.spec import ScenarioSpec, answer_matches, get_spec
from models.storage import scenario_dir
from models.vlm.model import VLMConfig
from models.vlm.prompt import exact_answer_match
from models.vlm.scoring import AnswerChecker
from models.vlm.train import (
    SAMPLE_COLUMNS,
    TRAINING_VERSION,
    TrainConfig,
    TrainResult,
    data_fingerprint,
    train_lora,
)

logger = logging.getLogger(__name__)

ENTRY_MODULE = "models.vlm.fine_tuning"
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.parquet"
FINAL_DIR = "final"
RESULT_FILE = "result.json"
DIFFICULTY_FILE = "difficulty.parquet"
PROBABILITIES_FILE = "probabilities.parquet"

TRAINING_COLUMNS = [*SAMPLE_COLUMNS, "scenario", "answer_value"]


def training_samples(cot_dataset: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``cot_dataset`` training needs, in a stable order (the run key depends on it)."""
    missing = [c for c in TRAINING_COLUMNS if c not in cot_dataset.columns]
    if missing:
        raise ValueError(f"cot_dataset lacks columns {missing}: re-materialize cot_dataset")
    if cot_dataset.empty:
        raise ValueError("the CoT data has no rows to train on: see cot_dataset's flagged_images metadata (grounding "
                         "that contradicts every label drops every row under the `drop` policy)")
    return cot_dataset[TRAINING_COLUMNS].sort_values("sample_id", ignore_index=True)


def run_key(train_config: TrainConfig, samples: pd.DataFrame, base_model_hash: str) -> str:
    """Names the run folder: the same training code, result settings, data and base model resume; anything else
    starts afresh.

    Runtime settings (workers, scoring batch size, logging, gradient checkpointing) are left out, so
    changing one of them resumes the run instead of training again; a new ``TRAINING_VERSION`` trains again.
    """
    payload = json.dumps([TRAINING_VERSION, train_config.result_settings(),
                          data_fingerprint(samples, train_config.group_key), base_model_hash], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunFile:
    """The schema of ``run.json``: everything the training process needs, written and read here only."""

    model_dir: str = field(metadata={"help": "The base checkpoint directory."})
    samples: str = field(metadata={"help": "Parquet file of the training rows."})
    output_dir: str = field(metadata={"help": "The run folder: checkpoints, adapter and result files."})
    train: TrainConfig = field(metadata={"help": "The training settings."})
    model: VLMConfig = field(default_factory=VLMConfig, metadata={"help": "How the base model is loaded."})
    scenario: str | None = field(default=None, metadata={
        "help": "The scenario whose spec parser decides Eq. 4's 1[ŷ = y]; None: exact match of the <answer> blocks."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last complete epoch checkpoint."})

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "model": asdict(self.model), "train": self.train.to_dict()}, indent=2)

    @classmethod
    def read(cls, path: str | Path) -> RunFile:
        """Parse a run file; a missing or unknown key is an error naming the file."""
        values = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        if unknown := set(values) - known:
            raise ValueError(f"{path}: unknown run file keys {sorted(unknown)}; allowed: {sorted(known)}")
        if absent := required - set(values):
            raise ValueError(f"{path}: run file lacks {sorted(absent)}")
        return cls(**{**values, "train": TrainConfig.from_dict(values["train"]),
                      "model": VLMConfig(**values.get("model", {}))})


class FineTuningRun:
    """One run folder (see the module doc): prepared before the process starts, read after it ends."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FineTuningRun({str(self.directory)!r})"

    @classmethod
    def prepare(cls, runs_dir: str | Path, samples: pd.DataFrame, train_config: TrainConfig, *,
                model_dir: str | Path, base_model_hash: str, model_config: VLMConfig | None = None,
                scenario: str | None = None, resume: bool = True) -> FineTuningRun:
        """Create (or find) the run folder of these settings, data and base model and write its inputs."""
        run = cls(Path(runs_dir) / f"run-{run_key(train_config, samples, base_model_hash)}")
        run.directory.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(run.samples_file, samples.to_parquet(index=False))
        spec = RunFile(model_dir=str(model_dir), samples=str(run.samples_file), output_dir=str(run.directory),
                       train=train_config, model=model_config or VLMConfig(), scenario=scenario, resume=resume)
        write_text_atomic(run.run_file, spec.to_json())
        return run

    @property
    def run_file(self) -> Path:
        return self.directory / RUN_FILE

    @property
    def samples_file(self) -> Path:
        return self.directory / SAMPLES_FILE

    @property
    def adapter_dir(self) -> Path:
        """The run's trained adapter (a PEFT directory), once the process has ended."""
        return self.directory / FINAL_DIR

    def command(self, nproc_per_node: int = 1) -> list[str]:
        """The process that trains this run: one process, or torchrun (DDP) for several GPUs."""
        if nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be at least 1, got {nproc_per_node}")
        entry = ["-m", ENTRY_MODULE, "--run-file", str(self.run_file)]
        if nproc_per_node == 1:
            return [sys.executable, *entry]
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
                *entry]

    def result(self) -> TrainResult:
        """What the finished process wrote (every epoch, resumed ones included)."""
        summary = json.loads((self.directory / RESULT_FILE).read_text())
        return TrainResult(
            adapter_dir=self.adapter_dir,
            output_dir=self.directory,
            epoch_losses=summary["epoch_losses"],
            difficulty=pd.read_parquet(self.directory / DIFFICULTY_FILE),
            probabilities=pd.read_parquet(self.directory / PROBABILITIES_FILE),
            global_step=summary["global_step"],
            resumed_from_epoch=summary["resumed_from_epoch"],
            config=RunFile.read(self.run_file).train,
        )

    def publish_adapter(self, target: str | Path) -> None:
        """Replace the adapter at ``target`` with this run's, never leaving half a folder."""
        target = Path(target)
        staging = target.parent / f".final-{uuid.uuid4().hex}"
        shutil.copytree(self.adapter_dir, staging)
        old = target.parent / f".old-{uuid.uuid4().hex}"
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)

    def remove_other_runs(self) -> None:
        """Earlier runs of other settings are superseded once this one finishes: free their disk space."""
        for path in self.directory.parent.glob("run-*"):
            if path != self.directory:
                shutil.rmtree(path, ignore_errors=True)


def save_result(result: TrainResult, output_dir: Path) -> None:
    """The result files of a finished run (rank 0 only), each written atomically."""
    write_bytes_atomic(output_dir / DIFFICULTY_FILE, result.difficulty.to_parquet(index=False))
    write_bytes_atomic(output_dir / PROBABILITIES_FILE, result.probabilities.to_parquet(index=False))
    summary = {
        "adapter_dir": str(result.adapter_dir),
        "epoch_losses": result.epoch_losses,
        "global_step": result.global_step,
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    write_text_atomic(output_dir / RESULT_FILE, json.dumps(summary, indent=2))


def adapter_digest(directory: str | Path) -> str:
    """A content hash of an adapter's weights (its data version)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def epoch_summary(difficulty: pd.DataFrame, losses: Sequence[float]) -> pd.DataFrame:
    """Per epoch: training loss, accuracy, mean perplexity and mean difficulty of the scored samples."""
    summary = difficulty.groupby("epoch").agg(
        accuracy=("correct", "mean"), mean_perplexity=("perplexity", "mean"), mean_difficulty=("difficulty", "mean")
    )
    summary.insert(0, "loss", pd.Series(list(losses), index=range(1, len(losses) + 1)))
    return summary.round(4)


def spec_answer_checker(spec: ScenarioSpec) -> AnswerChecker:
    """``1[ŷ = y]`` of Eq. 4 through the scenario's parser: the generated answer read as a typed value."""

    def check(row: Mapping[str, Any], generated: str) -> bool:
        return answer_matches(spec.subquery(row["subquery_id"]), generated, json.loads(row["answer_value"]))

    return check


# -- the process ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _reporter(is_main: bool) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Rank 0 reports through Dagster Pipes when Dagster started the process, else as JSON lines on stdout."""
    if not is_main:
        yield lambda event: None
    elif PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            yield _pipes_report(pipes)
    else:
        yield lambda event: print(json.dumps(event, default=str), flush=True)


def _pipes_report(pipes: PipesContext) -> Callable[[dict[str, Any]], None]:
    def report(event: dict[str, Any]) -> None:
        line = json.dumps(event, default=str)
        if event.get("event") == "step":
            pipes.log.debug(line)
        else:
            pipes.log.info(line)

    return report


def _grad_dumper(path: Path, rank: int) -> Callable[[int, nn.Module], None]:
    """Save the trainable parameters' first-step gradients (rank 0) to verify data parallelism."""
    def dump(step: int, model: nn.Module) -> None:
        if step == 1 and rank == 0:
            grads = {name: p.grad.detach().cpu().contiguous()
                     for name, p in model.named_parameters() if p.grad is not None}
            save_file(grads, path)
    return dump


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_MODULE}",
                                     description="Train one fine-tuning run (see the module doc).")
    # not --run: torchrun's parser would take it for an abbreviation of its own --run-path
    parser.add_argument("--run-file", required=True, type=Path, help=f"the run's {RUN_FILE} (FineTuningRun.prepare)")
    parser.add_argument("--dump-first-step-grads", type=Path, default=None,
                        help="write the first optimizer step's LoRA gradients here (safetensors, rank 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = RunFile.read(args.run_file)
    rank = int(os.environ.get("RANK", "0"))
    checker = exact_answer_match
    if run.scenario is not None:
        checker = spec_answer_checker(get_spec(run.scenario, scenario_dir()))
    with _reporter(rank == 0) as report:
        result = train_lora(
            run.model_dir, pd.read_parquet(run.samples), run.train, run.output_dir,
            answer_checker=checker, model_config=run.model, resume=run.resume, progress_callback=report,
            step_callback=_grad_dumper(args.dump_first_step_grads, rank) if args.dump_first_step_grads else None,
        )
        if rank == 0:
            save_result(result, Path(run.output_dir))
    logger.info("adapter in %s after %d steps", result.adapter_dir, result.global_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where everything lives, and the environment that says so: the one owner of locations and ``LOGICLS_*``.

Every ``LOGICLS_*`` variable is read in this module and nowhere else (the endpoint keys are bound by
name through Dagster's ``EnvVar`` where the resource is built, with the names from here). Every file
or folder the project writes under its storage root is built by :class:`StorageLayout`: the Parquet
IO manager, every asset (through the ``storage`` resource), the command-line entry points and the
training worker all ask it. Plain Python, read when called: the Dagster definitions read the
environment when the code location loads, a command when it starts.

The layout under ``<storage>`` (``LOGICLS_STORAGE``, default ``storage/`` in the repository)::

    <asset>/<scenario>.parquet            every table asset, one file per partition
    <asset>.parquet                       an unpartitioned table
    generated/                            the generated MVTec LOCO AD data set (``models.synth``'s layout)
    augmented_images/<scenario>/          augmented training images (PNG)
    cot_dataset/<scenario>.jsonl          the CoT data set for LLaMA-Factory
    checkpoints/vlm_adapter/<scenario>/   fine-tuning runs (run-<key>/) and the adapter (final/)
    checkpoints/ablation/<configuration>/<scenario>/   Table III training runs
    reports/<scenario>.html               evidence reports (reports/images/ for single images)
    cache/grounding/, cache/llm/          grounding results and endpoint replies
    models/tiny-qwen2.5-vl-seed<N>/       the tiny built-in model, built once

Dagster's run history is ``DAGSTER_HOME``, by default :data:`DEFAULT_DAGSTER_HOME` (``storage/dagster_home``
in the repository, whatever ``LOGICLS_STORAGE`` says).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The repository: the default storage lives here, and ``python -m`` entry points run from here."""
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / "storage" / "dagster_home"
"""Dagster's run history unless ``DAGSTER_HOME`` is exported: the value `make setup` writes into ``.env``
(the Makefile's ``DEFAULT_DAGSTER_HOME``, pinned to this by a test). Dagster reads the variable itself."""

# --- the environment ----------------------------------------------------------------------------

STORAGE_VARIABLE = "LOGICLS_STORAGE"
DATA_ROOT_VARIABLE = "LOGICLS_DATA_ROOT"
SCENARIO_DIR_VARIABLE = "LOGICLS_SCENARIO_DIR"
VLM_CHECKPOINT_VARIABLE = "LOGICLS_VLM_CHECKPOINT"
RETRAIN_CRON_VARIABLE = "LOGICLS_RETRAIN_CRON"
GROUNDER_VARIABLES = {
    "backend": "LOGICLS_GROUNDING_BACKEND",
    "sam_model_type": "LOGICLS_SAM_MODEL_TYPE",
    "sam_checkpoint": "LOGICLS_SAM_CHECKPOINT",
    "clip_model": "LOGICLS_CLIP_MODEL",
    "clip_weights": "LOGICLS_CLIP_WEIGHTS",
    "clip_pretrained_tag": "LOGICLS_CLIP_PRETRAINED_TAG",
    "device": "LOGICLS_GROUNDING_DEVICE",
}
"""``GroundingConfig`` field → the variable that sets it."""
PARAPHRASE_ENDPOINT = "LOGICLS_PARAPHRASE"
ICL_ENDPOINT = "LOGICLS_ICL"
"""Prefixes of the chat endpoints' variables: ``<prefix>_BASE_URL``, ``<prefix>_MODEL``, ``<prefix>_API_KEY``."""


def _read(variable: str) -> str | None:
    """The variable's value; unset and empty alike mean "not set"."""
    return os.environ.get(variable) or None


def storage_root() -> Path:
    """``LOGICLS_STORAGE``, or ``storage/`` in the repository."""
    return Path(_read(STORAGE_VARIABLE) or PROJECT_ROOT / "storage").expanduser()


def data_root() -> Path | None:
    """``LOGICLS_DATA_ROOT`` (an MVTec LOCO AD root), or ``None`` for the generated data set."""
    value = _read(DATA_ROOT_VARIABLE)
    return Path(value).expanduser() if value else None


def scenario_dir() -> str | None:
    """``LOGICLS_SCENARIO_DIR``: the folder of the user's scenario specs, if any."""
    return _read(SCENARIO_DIR_VARIABLE)


def vlm_checkpoint() -> str:
    """``LOGICLS_VLM_CHECKPOINT`` (a local Qwen2.5-VL directory), or empty for the tiny built-in model."""
    return _read(VLM_CHECKPOINT_VARIABLE) or ""


def retrain_cron() -> str | None:
    """``LOGICLS_RETRAIN_CRON``, if set."""
    return _read(RETRAIN_CRON_VARIABLE)


def grounder_settings() -> dict[str, str]:
    """The grounding settings set in the environment (:data:`GROUNDER_VARIABLES`); unset ones are left out."""
    return {name: value for name, variable in GROUNDER_VARIABLES.items() if (value := _read(variable))}


@dataclass(frozen=True)
class EndpointVariables:
    """The variables of one chat endpoint, named by their prefix (:data:`PARAPHRASE_ENDPOINT`, :data:`ICL_ENDPOINT`)."""

    prefix: str

    @property
    def base_url(self) -> str:
        return f"{self.prefix}_BASE_URL"

    @property
    def model(self) -> str:
        return f"{self.prefix}_MODEL"

    @property
    def api_key(self) -> str:
        """Only the name: the key is read by Dagster's ``EnvVar`` when a run starts, never here."""
        return f"{self.prefix}_API_KEY"

    def settings(self) -> tuple[str | None, str]:
        """``(base_url or None, model or "")`` as set now."""
        return _read(self.base_url), _read(self.model) or ""


# --- locations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageLayout:
    """Every location under one storage root (see the module docstring for the tree)."""

    root: Path

    @classmethod
    def from_environment(cls) -> StorageLayout:
        """The layout under ``LOGICLS_STORAGE`` (or the default)."""
        return cls(storage_root())

    def table(self, asset: str, partition: str | None = None) -> Path:
        """A table asset's Parquet file, as the IO manager writes it."""
        return self.root / asset / f"{partition}.parquet" if partition is not None else self.root / f"{asset}.parquet"

    @property
    def tables(self) -> Path:
        """The IO manager's base folder: ``<asset>/<partition>.parquet`` below it."""
        return self.root

    @property
    def generated(self) -> Path:
        """The generated data set's folder (its inside is `models.synth`'s: ``loco/``, ``annotations/``, …)."""
        return self.root / "generated"

    def augmented_images(self, scenario: str) -> Path:
        """The scenario's augmented training images."""
        return self.root / "augmented_images" / scenario

    def cot_jsonl(self, scenario: str) -> Path:
        """The scenario's CoT data set in LLaMA-Factory's sharegpt format."""
        return self.root / "cot_dataset" / f"{scenario}.jsonl"

    def training_dir(self, scenario: str) -> Path:
        """The scenario's fine-tuning runs (``run-<key>/``, see `models.vlm.fine_tuning`) and its adapter."""
        return self.root / "checkpoints" / "vlm_adapter" / scenario

    def adapter_dir(self, scenario: str) -> Path:
        """What fine-tuning published for the scenario (safetensors): a PEFT adapter directory, or a whole
        checkpoint after full fine-tuning (`models.vlm.trained_kind` tells which)."""
        return self.training_dir(scenario) / "final"

    def ablation_dir(self, configuration: str, scenario: str) -> Path:
        """Training runs of one Table III ablation configuration for a scenario."""
        return self.root / "checkpoints" / "ablation" / configuration / scenario

    @property
    def reports(self) -> Path:
        """Self-contained HTML evidence reports."""
        return self.root / "reports"

    def report(self, scenario: str) -> Path:
        """The scenario's evidence report."""
        return self.reports / f"{scenario}.html"

    @property
    def image_reports(self) -> Path:
        """Single-image evidence reports (``python -m pipelines.report --image-id``)."""
        return self.reports / "images"

    def cache(self, kind: str) -> Path:
        """A cache that makes re-runs free: ``grounding`` (results per image) or ``llm`` (endpoint replies)."""
        if kind not in CACHES:
            raise ValueError(f"unknown cache {kind!r}; one of {', '.join(CACHES)}")
        return self.root / "cache" / kind

    def tiny_model(self, seed: int) -> Path:
        """The tiny built-in Qwen2.5-VL-architecture model of ``seed``, built once."""
        return self.root / "models" / f"tiny-qwen2.5-vl-seed{seed}"


CACHES = ("grounding", "llm")


def scratch_dir(name: str) -> Path:
    """A benchmark's working folder in the system's temporary directory, reused between runs."""
    return Path(tempfile.gettempdir()) / f"logicls-{name}"

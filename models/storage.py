"""Storage locations of the assets that are folders rather than tables (checkpoints, reports).

One place for these conventions, so the fine-tuning and evaluation assets and the command-line
classifier agree on where an adapter or a report lives. Plain Python: the core, the assets and the
command-line entry points all build their paths here.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The repository: the default storage lives here, and ``python -m`` entry points run from here."""


def training_dir(storage_dir: str | Path, scenario: str) -> Path:
    """The scenario's fine-tuning runs (``run-<key>/``, see `models.vlm.fine_tuning`) and its adapter (``final/``)."""
    return Path(storage_dir) / "checkpoints" / "vlm_adapter" / scenario


def adapter_dir(storage_dir: str | Path, scenario: str) -> Path:
    """The final LoRA adapter of the scenario (a PEFT adapter directory, safetensors)."""
    return training_dir(storage_dir, scenario) / "final"


def ablation_dir(storage_dir: str | Path, configuration: str, scenario: str) -> Path:
    """Training runs of one Table III ablation configuration for a scenario."""
    return Path(storage_dir) / "checkpoints" / "ablation" / configuration / scenario


def reports_dir(storage_dir: str | Path) -> Path:
    """Self-contained HTML evidence reports."""
    return Path(storage_dir) / "reports"

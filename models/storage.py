"""Storage locations of the assets that are folders rather than tables (checkpoints, reports).

One place for these conventions, so the fine-tuning and evaluation assets and the command-line
classifier agree on where an adapter or a report lives. Plain Python: the core, the assets and the
command-line entry points all build their paths here.
"""

from pathlib import Path


def training_dir(storage_dir: str | Path, scenario: str) -> Path:
    """Per-epoch checkpoints of the scenario's fine-tuning run (``epoch_NNN/``, ``final/``)."""
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

"""Per-epoch training checkpoints, written atomically, and the RNG state that makes resume exact.

Layout of ``<output_dir>/epoch_NNN/`` (NNN = completed epochs, from 001):

* ``adapter/`` — the LoRA adapter (``adapter_model.safetensors`` + ``adapter_config.json``);
* ``optimizer.pt`` — optimizer and LR-scheduler state;
* ``rng.pt`` — python, numpy, torch (CPU and CUDA) RNG states, one entry per data-parallel rank;
* ``state.json`` — epoch, global step, epoch losses, next epoch's group probabilities, training
  config, data fingerprint;
* ``difficulty.parquet`` / ``probabilities.parquet`` — that epoch's tables;
* ``COMPLETE`` — written last.

The directory is assembled under a temporary name and renamed into place only after ``COMPLETE``
exists, so a crash at any moment leaves either a whole checkpoint or none.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file

from models.atomic import default_modes

COMPLETE = "COMPLETE"
_EPOCH_DIR = re.compile(r"^epoch_(\d{3,})$")


def epoch_dir(output_dir: Path, epoch: int) -> Path:
    return output_dir / f"epoch_{epoch:03d}"


def capture_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_epoch_checkpoint(output_dir: Path, epoch: int, *, model: PeftModel, optimizer: torch.optim.Optimizer,
                          scheduler: torch.optim.lr_scheduler.LRScheduler, rng_states: list[dict[str, Any]],
                          state: dict[str, Any], tables: dict[str, pd.DataFrame]) -> Path:
    """Write ``epoch_NNN/`` atomically (temporary directory, ``COMPLETE`` last, rename)."""
    final = epoch_dir(output_dir, epoch)
    tmp = output_dir / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter", safe_serialization=True)
    trainer_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    torch.save(trainer_state, tmp / "optimizer.pt")
    torch.save(rng_states, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    for name, table in tables.items():
        table.to_parquet(tmp / f"{name}.parquet", index=False)
    (tmp / COMPLETE).write_text(f"epoch {epoch}\n")
    default_modes(tmp)  # the adapter's safetensors file is 0600 otherwise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Complete epoch checkpoints, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if _EPOCH_DIR.match(p.name) and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(_EPOCH_DIR.match(p.name).group(1)))


def remove_stale(output_dir: Path, *, everything: bool) -> None:
    """Delete leftover temporary directories (and, for a fresh start, old checkpoints and ``final``)."""
    if not output_dir.is_dir():
        return
    for path in output_dir.iterdir():
        stale_tmp = path.name.startswith(".epoch_") and ".tmp-" in path.name
        old_run = everything and (_EPOCH_DIR.match(path.name) or path.name == "final")
        if path.is_dir() and (stale_tmp or old_run):
            shutil.rmtree(path)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())


def load_epoch_checkpoint(checkpoint: Path, *, model: PeftModel, optimizer: torch.optim.Optimizer,
                          scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int = 0) -> dict[str, Any]:
    """Restore adapter weights, optimizer, scheduler and this rank's RNG; return the saved state.

    A run resumed with another number of ranks falls back to rank 0's RNG state (it still resumes,
    but only the same world size reproduces the uninterrupted run bit for bit).
    """
    weights = load_file(checkpoint / "adapter" / "adapter_model.safetensors")
    result = set_peft_model_state_dict(model, weights)
    missing_lora = [k for k in result.missing_keys if "lora_" in k]
    if missing_lora:
        raise RuntimeError(f"checkpoint {checkpoint} lacks adapter weights {missing_lora[:3]}…")
    trainer_state = torch.load(checkpoint / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    rng_states = torch.load(checkpoint / "rng.pt", weights_only=False)
    restore_rng_state(rng_states[rank] if rank < len(rng_states) else rng_states[0])
    return read_state(checkpoint)


def read_tables(checkpoints: list[Path], name: str) -> pd.DataFrame:
    """One epoch table concatenated over checkpoints (empty frame if there are none)."""
    frames = [pd.read_parquet(c / f"{name}.parquet") for c in checkpoints]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

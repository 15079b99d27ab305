"""Per-epoch training checkpoints, written atomically, and the RNG state that makes resume exact.

Layout of ``<output_dir>/epoch_NNN/`` (NNN = completed epochs, from 001), format
``CHECKPOINT_FORMAT`` (recorded in ``state.json``):

* ``adapter/`` — the LoRA adapter (``adapter_model.safetensors`` + ``adapter_config.json``), or, for
  full fine-tuning, ``model/model.safetensors`` — every weight under the module's own names (tied
  weights once);
* ``trainer_state.pt`` — optimizer and LR-scheduler state: tensors and plain containers, read with
  ``torch.load(weights_only=True)``, which refuses any other object;
* ``rng.json`` — python, numpy, torch (CPU and CUDA) RNG states as integers, one entry per
  data-parallel rank;
* ``state.json`` — checkpoint format, epoch, global step, epoch losses, next epoch's group
  probabilities, training config, data fingerprint;
* ``difficulty.parquet`` / ``probabilities.parquet`` — that epoch's tables;
* ``COMPLETE`` — written last.

The directory is assembled under a temporary name and renamed into place only after ``COMPLETE``
exists, so a crash at any moment leaves either a whole checkpoint or none.

Why no pickle: a checkpoint folder is data, and whoever can write into it must not be able to run
code in the next training job. Nothing here unpickles arbitrary objects; a file that is not what it
should be is refused with a ``ValueError`` that names it. Checkpoints of format 1 (``optimizer.pt``
and ``rng.pt``, full pickles) are never opened: resuming from one is refused with a message saying
to delete the run folder or train with ``resume=False``, which starts afresh.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from peft import set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn

from models.atomic import default_modes

CHECKPOINT_FORMAT = 2
COMPLETE = "COMPLETE"
TRAINER_STATE = "trainer_state.pt"
RNG_STATE = "rng.json"
STATE = "state.json"
ADAPTER_WEIGHTS = Path("adapter") / "adapter_model.safetensors"
MODEL_DIR = "model"
MODEL_WEIGHTS = Path(MODEL_DIR) / "model.safetensors"
_EPOCH_DIR = re.compile(r"^epoch_(\d{3,})$")
_STATE_KEYS = ("epoch", "global_step", "epoch_losses", "next_probabilities", "config", "data_fingerprint")
_MT_WORDS = 624  # Mersenne Twister state (python adds the position as a 625th word)


def epoch_dir(output_dir: Path, epoch: int) -> Path:
    return output_dir / f"epoch_{epoch:03d}"


def invalid_resume_file(path: Path, checkpoint: Path, reason: str) -> ValueError:
    """The one message for a resume file that is not what it should be."""
    return ValueError(f"{path} is not a valid resume file ({reason}); delete {checkpoint} to start that epoch again")


# -- RNG state as plain integers (JSON) ----------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch RNG states as JSON-ready values."""
    version, words, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(words), "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _is_ints(value: Any, length: int | None, bound: int) -> bool:
    return (isinstance(value, list) and (length is None or len(value) == length)
            and all(type(v) is int and 0 <= v < bound for v in value))


def _is_float(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def rng_state_problem(state: Any) -> str | None:
    """Why ``state`` is not one rank's RNG state as :func:`capture_rng_state` writes it (None: it is)."""
    if not isinstance(state, dict) or not {"python", "numpy", "torch"} <= state.keys():
        return "an entry lacks python/numpy/torch"
    py, npy = state["python"], state["numpy"]
    if not (isinstance(py, dict) and type(py.get("version")) is int and _is_ints(py.get("state"), _MT_WORDS + 1, 2**32)
            and (py.get("gauss_next") is None or _is_float(py.get("gauss_next")))):
        return "python state malformed"
    if not (isinstance(npy, dict) and npy.get("kind") == "MT19937" and _is_ints(npy.get("keys"), _MT_WORDS, 2**32)
            and type(npy.get("pos")) is int and 0 <= npy["pos"] <= _MT_WORDS and npy.get("has_gauss") in (0, 1)
            and _is_float(npy.get("cached_gaussian"))):
        return "numpy state malformed"
    if not _is_ints(state["torch"], torch.get_rng_state().numel(), 256):
        return "torch state malformed"
    cuda = state.get("cuda", [])
    if not (isinstance(cuda, list) and all(_is_ints(s, None, 256) for s in cuda)):
        return "cuda state malformed"
    return None


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (``state`` checked by :func:`rng_state_problem`)."""
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    np.random.set_state((npy["kind"], np.array(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                         float(npy["cached_gaussian"])))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# -- writing -------------------------------------------------------------------------------------------
def save_epoch_checkpoint(output_dir: Path, epoch: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                          scheduler: torch.optim.lr_scheduler.LRScheduler, rng_states: list[dict[str, Any]],
                          state: dict[str, Any], tables: dict[str, pd.DataFrame], method: str = "lora") -> Path:
    """Write ``epoch_NNN/`` atomically (temporary directory, ``COMPLETE`` last, rename); ``model`` is the PEFT
    model (``method="lora"``) or the whole model (``"full"``)."""
    final = epoch_dir(output_dir, epoch)
    tmp = output_dir / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if method == "full":  # the module's own parameter names (save_pretrained would rename them for the hub)
        (tmp / MODEL_DIR).mkdir()
        save_model(model, str(tmp / MODEL_WEIGHTS))
    else:
        model.save_pretrained(tmp / "adapter", safe_serialization=True)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / TRAINER_STATE)
    (tmp / RNG_STATE).write_text(json.dumps(rng_states))
    (tmp / STATE).write_text(json.dumps({**state, "checkpoint_format": CHECKPOINT_FORMAT}, indent=2, sort_keys=True))
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


# -- reading -------------------------------------------------------------------------------------------
def _read_json(path: Path, checkpoint: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid_resume_file(path, checkpoint, f"{type(error).__name__}: {error}") from None


def read_state(checkpoint: Path) -> dict[str, Any]:
    """``state.json``, refusing other checkpoint formats (format 1's pickles are never opened)."""
    path = checkpoint / STATE
    state = _read_json(path, checkpoint)
    if not isinstance(state, dict):
        raise invalid_resume_file(path, checkpoint, "not a JSON object")
    found = state.get("checkpoint_format", 1)
    if found != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{checkpoint} is a training checkpoint of format {found}, this version reads format "
            f"{CHECKPOINT_FORMAT} only (format 1 stored pickles, which are never loaded); delete "
            f"{checkpoint.parent} or train with resume=False to start afresh")
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise invalid_resume_file(path, checkpoint, f"lacks {missing}")
    return state


def _read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / TRAINER_STATE
    try:
        trainer_state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # an object beyond tensors and plain containers: refused, never loaded
        raise invalid_resume_file(path, checkpoint, "holds objects other than tensors, numbers and plain "
                                  "containers") from None
    except OSError as error:
        raise invalid_resume_file(path, checkpoint, f"{type(error).__name__}: {error.strerror}") from None
    except Exception as error:  # any other failure to parse: refused the same way
        raise invalid_resume_file(path, checkpoint, f"not a torch file ({type(error).__name__})") from None
    if not (isinstance(trainer_state, dict) and isinstance(trainer_state.get("optimizer"), dict)
            and isinstance(trainer_state.get("scheduler"), dict)):
        raise invalid_resume_file(path, checkpoint, "expected {'optimizer': …, 'scheduler': …}")
    return trainer_state


def _read_rng_state(checkpoint: Path, rank: int) -> dict[str, Any]:
    path = checkpoint / RNG_STATE
    states = _read_json(path, checkpoint)
    if not isinstance(states, list) or not states:
        raise invalid_resume_file(path, checkpoint, "expected a list with one RNG state per rank")
    for state in states:
        problem = rng_state_problem(state)
        if problem:
            raise invalid_resume_file(path, checkpoint, problem)
    return states[rank] if rank < len(states) else states[0]


def _read_weights(checkpoint: Path, method: str) -> dict[str, torch.Tensor]:
    """The trained weights of a checkpoint: the LoRA adapter's, or every weight of a full fine-tuning run."""
    path = checkpoint / (MODEL_WEIGHTS if method == "full" else ADAPTER_WEIGHTS)
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise invalid_resume_file(path, checkpoint, f"{type(error).__name__}: {error}") from None


def _restore_model(checkpoint: Path, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load a full checkpoint's weights; only tied weights (written once per pair) may lack."""
    aliases: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(param), set()).add(name)
    tied = {name for names in aliases.values() if len(names) > 1 and names & weights.keys() for name in names}
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # a shape mismatch: weights of another model
        raise invalid_resume_file(checkpoint / MODEL_WEIGHTS, checkpoint, str(error).splitlines()[0]) from None
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise invalid_resume_file(checkpoint / MODEL_WEIGHTS, checkpoint,
                                  f"lacks weights {missing[:3]} / has unknown {result.unexpected_keys[:3]}")


def load_epoch_checkpoint(checkpoint: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                          scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int = 0,
                          method: str = "lora") -> dict[str, Any]:
    """Restore the trained weights (LoRA adapter or, ``method="full"``, every weight), optimizer, scheduler
    and this rank's RNG; return the saved state.

    Every file is read and checked before anything is restored. A run resumed with another number
    of ranks falls back to rank 0's RNG state (it still resumes, but only the same world size
    reproduces the uninterrupted run bit for bit).
    """
    state = read_state(checkpoint)
    weights = _read_weights(checkpoint, method)
    trainer_state = _read_trainer_state(checkpoint)
    rng_state = _read_rng_state(checkpoint, rank)
    if method == "full":
        _restore_model(checkpoint, model, weights)
    else:
        result = set_peft_model_state_dict(model, weights)
        missing_lora = [k for k in result.missing_keys if "lora_" in k]
        if missing_lora:
            raise invalid_resume_file(checkpoint / ADAPTER_WEIGHTS, checkpoint,
                                      f"lacks weights {missing_lora[:3]}…")
    path = checkpoint / TRAINER_STATE
    if set(trainer_state["scheduler"]) != set(scheduler.state_dict()):
        raise invalid_resume_file(path, checkpoint, "scheduler state of another kind")
    try:
        optimizer.load_state_dict(trainer_state["optimizer"])
    except (KeyError, ValueError, TypeError, IndexError) as error:
        raise invalid_resume_file(path, checkpoint, f"optimizer state does not fit: {error}") from None
    scheduler.load_state_dict(trainer_state["scheduler"])
    restore_rng_state(rng_state)
    return state


def read_tables(checkpoints: list[Path], name: str) -> pd.DataFrame:
    """One epoch table concatenated over checkpoints (empty frame if there are none)."""
    frames = [pd.read_parquet(c / f"{name}.parquet") for c in checkpoints]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

"""Files the chain writes keep the usual mode (0666 less the umask): a second user or a pod running as
another user reads them. Before, everything written through ``tempfile.mkstemp`` (the JSONL export,
augmented images, the caches) and every safetensors file (the built-in model) was 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.atomic import write_bytes_atomic, write_parquet_atomic
from models.grounding import GroundingConfig, build_backend, ground_images, queries_from_spec
from models.grounding.tiny import save_tiny_clip
from models.instruct.augment import write_png
from models.instruct.cot import COT_COLUMNS, write_jsonl
from models.llm.cache import ResponseCache
from models.spec import get_spec
from models.vlm.tiny import build_tiny_qwen25vl


@pytest.fixture
def umask():
    """Set the process umask for one test (and put the old one back)."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in files}


def test_the_chain_writes_files_other_users_can_read(tmp_path, umask):
    image = np.zeros((16, 16, 3), np.uint8)
    write_png(tmp_path / "augmented_images" / "pushpins" / "a.png", image)
    write_jsonl(tmp_path / "cot_dataset" / "pushpins.jsonl", pd.DataFrame(columns=COT_COLUMNS), "boxes")
    write_parquet_atomic(pd.DataFrame({"a": [1]}), tmp_path / "loco_fc_split" / "pushpins.parquet")
    ResponseCache(tmp_path / "cache" / "llm").put("ab12", "reply", model="m", tag="t", params={}, messages=[])
    spec = get_spec("pushpins")
    write_png(tmp_path / "input.png", image)
    ground_images(build_backend(GroundingConfig(backend="classical")), [("pushpins/train/good/000",
                  tmp_path / "input.png")], queries_from_spec(spec), tmp_path / "cache" / "grounding", progress=False)
    save_tiny_clip(tmp_path / "models" / "tiny_clip.safetensors")
    build_tiny_qwen25vl(tmp_path / "models" / "tiny-qwen2.5-vl-seed0")
    modes = _modes(tmp_path)
    assert len(modes) > 10 and {path: oct(mode) for path, mode in modes.items() if mode != 0o644} == {}


def test_the_umask_is_respected_as_open_respects_it(tmp_path, umask):
    umask(0o077)
    assert stat.S_IMODE(write_bytes_atomic(tmp_path / "private.bin", b"x").stat().st_mode) == 0o600
    umask(0o002)
    assert stat.S_IMODE(write_bytes_atomic(tmp_path / "group.bin", b"x").stat().st_mode) == 0o664

"""Stages after the re-split say what is wrong with an image file, never a bare FileNotFoundError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.images import UnreadableImageError, read_rgb
from tests.loco_tree import truncate


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(path)
    return path


def test_reads_rgb(png: Path) -> None:
    assert read_rgb(png).shape == (64, 80, 3) and read_rgb(png, png.read_bytes()).dtype == np.uint8


@pytest.mark.parametrize(("damage", "message"), [
    ("truncated", "exists but does not decode (truncated, damaged or not an image): restore it from the data set"),
    ("garbage", "exists but does not decode"),
    ("missing", "does not exist: restore it"),
])
def test_an_unreadable_image_says_what_is_wrong(png: Path, damage: str, message: str) -> None:
    if damage == "truncated":
        truncate(png, keep=0.3)
    elif damage == "garbage":
        png.write_bytes(b"not an image")
    else:
        png.unlink()
    with pytest.raises(UnreadableImageError) as info:
        read_rgb(png)
    assert not isinstance(info.value, FileNotFoundError)
    assert str(info.value).startswith(f"image {png} ") and message in str(info.value)
    assert "re-materialize loco_fc_split" in str(info.value)

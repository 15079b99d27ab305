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


def test_one_data_uri_encoder_for_metadata_reports_and_chat_requests(png: Path) -> None:
    import base64
    import io

    from models.images import data_uri, image_data_uri
    from models.llm import image_part
    from resources.metadata import image_markdown

    pixels = read_rgb(png)
    uri = image_data_uri(pixels, max_width=200)
    assert uri.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert np.array_equal(np.asarray(decoded), pixels)  # PNG: lossless, not shrunk below max_width
    small = image_data_uri(pixels, max_width=40, fmt="jpeg")
    assert small.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size == (40, 32)
    assert f"]({image_data_uri(pixels, 480)})" in image_markdown(pixels, "caption")
    assert image_part(png)["image_url"]["url"] == data_uri(png.read_bytes(), "image/png")

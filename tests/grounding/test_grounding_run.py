"""ground_images: cache hits, failure isolation, table layout (with a cheap fake backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from grounding_helpers import QUERIES, FakeBackend, synthetic_scene, write_png

from models.grounding import GROUNDING_COLUMNS, GroundingConfig, ground_images


def _items(tmp_path: Path, n: int = 3) -> list[tuple[str, Path]]:
    return [
        (f"pushpins/train/good/{i:03d}", write_png(tmp_path / f"{i:03d}.png", synthetic_scene(seed=i)))
        for i in range(n)
    ]


def test_second_run_reads_the_cache(fake_backend: FakeBackend, tmp_path: Path) -> None:
    items = _items(tmp_path)
    first = ground_images(fake_backend, items, QUERIES, cache_dir=tmp_path / "cache", progress=False)
    assert fake_backend.calls == 3 and set(first.images["status"]) == {"grounded"}
    second = ground_images(fake_backend, items, QUERIES, cache_dir=tmp_path / "cache", progress=False)
    assert fake_backend.calls == 3, "a cached image must not be processed again"
    assert set(second.images["status"]) == {"cached"}
    assert second.objects.equals(first.objects)
    assert first.objects["label"].eq("pushpin").all() and len(first.objects) == 3 * 3
    assert not list((tmp_path / "cache").rglob("*.tmp")), "no temporary files may be left behind"


def test_same_content_under_another_id_is_a_hit(fake_backend: FakeBackend, tmp_path: Path) -> None:
    ((image_id, path),) = _items(tmp_path, 1)
    ground_images(fake_backend, [(image_id, path)], QUERIES, cache_dir=tmp_path / "c", progress=False)
    run = ground_images(
        fake_backend, [("pushpins/test/good/007", path)], QUERIES, cache_dir=tmp_path / "c", progress=False
    )
    assert fake_backend.calls == 1
    assert set(run.objects["image_id"]) == {"pushpins/test/good/007"}


def test_config_or_queries_change_misses_the_cache(fake_backend: FakeBackend, tmp_path: Path) -> None:
    items = _items(tmp_path, 1)
    ground_images(fake_backend, items, QUERIES, cache_dir=tmp_path / "c", progress=False)
    ground_images(fake_backend, items, QUERIES[::-1], cache_dir=tmp_path / "c", progress=False)
    other = FakeBackend(GroundingConfig(backend="fake", min_score=0.5))
    ground_images(other, items, QUERIES, cache_dir=tmp_path / "c", progress=False)
    assert fake_backend.calls == 2 and other.calls == 1
    # Batch sizes and the device do not change the objects: same cache.
    same = FakeBackend(GroundingConfig(backend="fake", clip_batch_size=7, device="cpu"))
    ground_images(same, items, QUERIES, cache_dir=tmp_path / "c", progress=False)
    assert same.calls == 0


def test_a_failing_image_does_not_stop_the_others(
    fake_backend: FakeBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = _items(tmp_path, 2)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    black = write_png(tmp_path / "black.png", np.zeros((32, 48, 3), dtype=np.uint8))
    items = [
        items[0],
        ("x/y/broken", broken),
        ("x/y/missing", tmp_path / "nope.png"),
        ("x/y/black", black),
        items[1],
    ]
    run = ground_images(fake_backend, items, QUERIES, cache_dir=tmp_path / "c", progress=False)
    assert list(run.images["status"]) == ["grounded", "failed", "failed", "failed", "grounded"]
    failures = run.failures.set_index("image_id")
    assert "UnreadableImageError: image " in failures.loc["x/y/broken", "error"]
    assert "exists but does not decode" in failures.loc["x/y/broken", "error"]
    assert "FileNotFoundError" in failures.loc["x/y/missing", "error"]
    assert "model error" in failures.loc["x/y/black", "error"]
    assert str(broken) in caplog.text and str(black) in caplog.text
    assert set(run.objects["image_id"]) == {items[0][0], items[4][0]}


def test_corrupt_cache_entry_is_recomputed(fake_backend: FakeBackend, tmp_path: Path) -> None:
    items = _items(tmp_path, 1)
    ground_images(fake_backend, items, QUERIES, cache_dir=tmp_path / "c", progress=False)
    (entry,) = (tmp_path / "c").rglob("??/*.json")
    entry.write_text("{truncated")
    run = ground_images(fake_backend, items, QUERIES, cache_dir=tmp_path / "c", progress=False)
    assert fake_backend.calls == 2 and list(run.images["status"]) == ["grounded"]


def test_empty_result_keeps_columns_and_dtypes(fake_backend: FakeBackend, tmp_path: Path) -> None:
    plain = write_png(tmp_path / "plain.png", np.full((16, 16, 3), 200, dtype=np.uint8))
    run = ground_images(fake_backend, [("a/b/c", plain)], QUERIES, progress=False)
    assert run.objects.empty and list(run.objects.columns) == GROUNDING_COLUMNS
    assert run.objects["object_id"].dtype == np.int64
    assert run.images.loc[0, "n_objects"] == 0 and run.images.loc[0, "width"] == 16


def test_duplicate_image_ids_are_refused(fake_backend: FakeBackend, tmp_path: Path) -> None:
    ((image_id, path),) = _items(tmp_path, 1)
    with pytest.raises(ValueError, match="listed twice"):
        ground_images(fake_backend, [(image_id, path), (image_id, path)], QUERIES, progress=False)

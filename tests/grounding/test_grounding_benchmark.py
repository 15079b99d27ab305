"""The benchmark script's measuring path, in-process on tiny models and tiny images."""

from __future__ import annotations

import argparse
from pathlib import Path

from grounding_helpers import synthetic_scene, write_png

from benchmarks.grounding import _without_backend_args, run_child


def _args(**changes: object) -> argparse.Namespace:
    defaults = {
        "images": 1,
        "size": "64x96",
        "image_dir": None,
        "scenario": None,
        "scale": 0.25,
        "generated_dir": None,
        "device": "cpu",
        "precision": "auto",
        "sam_type": "vit_h",
        "sam_checkpoint": None,
        "clip_model": "ViT-L-14",
        "clip_weights": None,
        "clip_tag": "",
        "points_per_side": 2,
        "points_per_batch": 64,
    }
    return argparse.Namespace(**{**defaults, **changes})


def test_run_child_reports_throughput_and_memory(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", synthetic_scene(48, 64))
    result = run_child("clip_sam", _args(image_dir=tmp_path))
    assert result["backend"] == "clip_sam" and result["image_size"] == "48x64"
    assert result["images_per_s"] > 0 and result["peak_rss_mib"] > 100


def test_classical_on_a_generated_scenario(tmp_path: Path) -> None:
    result = run_child("classical", _args(images=3, scenario="pushpins", scale=0.1, generated_dir=tmp_path))
    assert result["backend"] == "classical" and result["image_size"] == "100x170"
    assert result["images_per_s"] > 0 and result["objects_per_image"] >= 15


def test_child_command_line_drops_backend_choices() -> None:
    argv = ["--backend", "clip_sam", "--images", "2", "--backend=classical", "--device", "cpu"]
    assert _without_backend_args(argv) == ["--images", "2", "--device", "cpu"]

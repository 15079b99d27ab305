"""Determinism, reuse and regeneration, concurrency, and the command line."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from models.synth import SCENARIOS, GeneratorConfig, ensure_generated, generate_scenario, is_current
from models.synth.__main__ import main
from models.synth.generate import GENERATOR_VERSION, IMAGE_COLUMNS
from tests.synth.synth_helpers import Generated

TINY = GeneratorConfig(
    scale=0.1, train_good=1, validation_good=1, test_good=1, per_logical_class=1, per_multi_combo=1,
    structural=1, seed=5,
)  # fmt: skip


def _hashes(out: Path) -> dict[str, str]:
    """SHA-256 of every file under ``out`` except the lock files."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


def _stats(out: Path) -> dict[str, tuple[int, int]]:
    return {p.as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_one_seed_gives_identical_files(generated: Generated, tmp_path: Path) -> None:
    # Reverse order: a scenario's files do not depend on which scenarios were generated before it.
    for scenario in reversed(SCENARIOS):
        generate_scenario(scenario, tmp_path, generated.config)
    first, second = _hashes(generated.out), _hashes(tmp_path)
    assert len(first) > 300
    assert first == second


def test_another_seed_gives_other_images(generated: Generated, tmp_path: Path) -> None:
    generate_scenario("pushpins", tmp_path, replace(generated.config, seed=generated.config.seed + 1))
    first, second = _hashes(generated.out), _hashes(tmp_path)
    images = [
        k
        for k in second
        if k.startswith("loco/pushpins/") and "/ground_truth/" not in k and k.endswith(".png")
    ]
    assert images
    assert all(first[k] != second[k] for k in images)


def test_ensure_generated_reuses_a_matching_tree(tmp_path: Path) -> None:
    root = ensure_generated("juice_bottle", tmp_path, TINY)
    assert root == tmp_path / "loco" and (root / "juice_bottle" / "defects_config.json").is_file()
    before = _stats(tmp_path)
    assert ensure_generated("juice_bottle", tmp_path, TINY) == root
    assert _stats(tmp_path) == before, "nothing was rewritten"
    assert not list(tmp_path.glob(".staging-*"))


def test_ensure_generated_regenerates_for_a_new_config(tmp_path: Path) -> None:
    ensure_generated("juice_bottle", tmp_path, TINY)
    before = _hashes(tmp_path)
    other = replace(TINY, seed=6)
    ensure_generated("juice_bottle", tmp_path, other)
    manifest = json.loads((tmp_path / "manifest" / "juice_bottle.json").read_text())
    assert manifest["config"] == other.to_dict() and manifest["seed"] == 6
    assert (
        _hashes(tmp_path)["loco/juice_bottle/train/good/000.png"]
        != before["loco/juice_bottle/train/good/000.png"]
    )
    assert is_current("juice_bottle", tmp_path, other) and not is_current("juice_bottle", tmp_path, TINY)


def test_tables_say_scenario_and_loco_folder_and_an_older_version_is_regenerated(tmp_path: Path) -> None:
    ensure_generated("juice_bottle", tmp_path, TINY)
    images = pd.read_parquet(tmp_path / "annotations" / "juice_bottle_images.parquet")
    assert list(images.columns) == IMAGE_COLUMNS
    assert {"scenario", "loco_folder"} <= set(images.columns) and not {"category", "source"} & set(images.columns)
    manifest_path = tmp_path / "manifest" / "juice_bottle.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["scenario"] == "juice_bottle" and manifest["version"] == GENERATOR_VERSION
    # A tree written by the generator before the columns were renamed (version 1) is regenerated.
    manifest_path.write_text(json.dumps({**manifest, "version": "1"}))
    assert not is_current("juice_bottle", tmp_path, TINY)
    ensure_generated("juice_bottle", tmp_path, TINY)
    assert json.loads(manifest_path.read_text())["version"] == GENERATOR_VERSION


def test_ensure_generated_repairs_a_changed_tree(tmp_path: Path) -> None:
    ensure_generated("juice_bottle", tmp_path, TINY)
    before = _hashes(tmp_path)
    image = tmp_path / "loco" / "juice_bottle" / "test" / "good" / "000.png"
    image.write_bytes(b"not a png")
    assert not is_current("juice_bottle", tmp_path, TINY)
    ensure_generated("juice_bottle", tmp_path, TINY)
    assert _hashes(tmp_path) == before


def _ensure_in_child(out: str) -> str:
    return str(ensure_generated("splicing_connectors", Path(out), TINY))


def test_concurrent_callers_share_one_tree(tmp_path: Path) -> None:
    # spawn, not fork: forking a test process whose other threads (torch, OpenCV, decode pools) hold locks
    # can deadlock the child in a futex wait, which hung a whole test run.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        roots = pool.map(_ensure_in_child, [str(tmp_path)] * 2)
    assert roots == [str(tmp_path / "loco")] * 2
    assert is_current("splicing_connectors", tmp_path, TINY)
    assert not list(tmp_path.glob(".staging-*"))


def test_empty_sources_still_have_their_folders(tmp_path: Path) -> None:
    config = replace(TINY, validation_good=0, structural=0)
    root = generate_scenario("pushpins", tmp_path, config) / "pushpins"
    assert (root / "validation" / "good").is_dir() and not list((root / "validation" / "good").iterdir())
    assert (root / "ground_truth" / "structural_anomalies").is_dir()


def test_unknown_scenario_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown scenario 'bottles'.*breakfast_box"):
        ensure_generated("bottles", tmp_path, TINY)


def test_cli_generates_and_reuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--out", str(tmp_path), "--scenarios", "pushpins", "--scale", "0.1", "--seed", "5"]
    args += ["--train-good", "1", "--validation-good", "1", "--test-good", "1", "--per-logical-class", "1"]
    args += ["--per-multi-combo", "1", "--structural", "1"]
    assert main(args) == 0
    assert "LOCO root" in capsys.readouterr().out
    assert is_current("pushpins", tmp_path, TINY)
    before = _stats(tmp_path)
    assert main(args) == 0
    assert _stats(tmp_path) == before
    assert main([*args, "--force"]) == 0
    assert _stats(tmp_path) != before


def test_cli_rejects_a_bad_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--scale", "3"]) == 2
    assert "scale=3.0 is outside" in capsys.readouterr().err

"""A user's scenario spec becomes a partition of the per-scenario assets without code changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.loco_tree import TreeSpec, build_tree

REPO = Path(__file__).resolve().parents[2]
TRAY_SPEC = REPO / "tests/spec/data/tray.yaml"


def _env(tmp_path: Path, scenario_dir: Path, data_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LOGICLS_SCENARIO_DIR=str(scenario_dir),
        LOGICLS_DATA_ROOT=str(data_root),
        LOGICLS_STORAGE=str(tmp_path / "storage"),
        DAGSTER_HOME=str(tmp_path / "home"),
        OMP_NUM_THREADS="1",
    )
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _dagster(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "dagster", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_user_spec_becomes_a_partition_of_loco_fc_split(tmp_path: Path) -> None:
    scenario_dir = tmp_path / "specs"
    scenario_dir.mkdir()
    shutil.copy(TRAY_SPEC, scenario_dir / "cap_tray.yaml")
    classes = ["missing_red_cap", "extra_blue_cap"]
    data_root = build_tree(tmp_path / "loco", TreeSpec("cap_tray", classes, single={c: 5 for c in classes}))
    result = _dagster("asset", "materialize", "-m", "pipelines.definitions", "--select", "loco_fc_split",
                      "--partition", "cap_tray", env=_env(tmp_path, scenario_dir, data_root))
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_parquet(tmp_path / "storage/loco_fc_split/cap_tray.parquet")
    assert set(frame["scenario"]) == {"cap_tray"}
    assert len(frame) == 3 + 2 + 10


def test_broken_user_spec_skips_only_its_own_scenario(tmp_path: Path) -> None:
    """The code location loads with every other scenario; the broken file and field are in the load log and
    in loco_fc_split's definition metadata (the UI's asset page)."""
    scenario_dir = tmp_path / "specs"
    scenario_dir.mkdir()
    broken = TRAY_SPEC.read_text().replace("answer_type: integer", "answer_type: number", 1)
    (scenario_dir / "cap_tray.yaml").write_text(broken)
    (scenario_dir / "good_tray.yaml").write_text(TRAY_SPEC.read_text().replace("cap_tray", "good_tray"))
    env = _env(tmp_path, scenario_dir, tmp_path)
    result = _dagster("definitions", "validate", "-m", "pipelines.definitions", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "cap_tray.yaml: invalid scenario spec: subqueries[0] (red_caps).answer_type" in output, output[-3000:]
    script = (
        "import json; from dagster import AssetKey; from pipelines.definitions import defs; "
        "asset = defs.resolve_assets_def(AssetKey('loco_fc_split')); "
        "print(json.dumps({'keys': asset.partitions_def.get_partition_keys(), "
        "'metadata': asset.specs_by_key[AssetKey('loco_fc_split')].metadata['skipped_scenario_specs'].value}))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["keys"] == ["breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors",
                              "good_tray"]
    assert "cap_tray.yaml` (scenario `cap_tray`)" in loaded["metadata"]
    assert "`subqueries[0] (red_caps).answer_type`" in loaded["metadata"]

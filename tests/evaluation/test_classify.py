"""`python -m pipelines.classify`: label sets and evidence as JSON lines; bad input gives one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assets.paths import adapter_dir
from models.spec import get_spec
from pipelines.classify import EXIT_BAD_INPUT, main
from resources.parquet_io import write_parquet_atomic
from tests.evaluation.helpers import cot_table, split_frame

SPEC = get_spec("pushpins")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(tmp_path, monkeypatch, pushpins_root, random_adapter_dir) -> Path:
    """A storage with the scenario's adapter, split and cot_dataset (the tiny model is built into it on demand)."""
    storage = tmp_path / "storage"
    split = split_frame(pushpins_root, "pushpins")
    write_parquet_atomic(split, storage / "loco_fc_split" / "pushpins.parquet")
    write_parquet_atomic(cot_table(SPEC, split), storage / "cot_dataset" / "pushpins.parquet")
    shutil.copytree(random_adapter_dir, adapter_dir(storage, "pushpins"))
    monkeypatch.setenv("LOGICLS_STORAGE", str(storage))
    monkeypatch.delenv("LOGICLS_VLM_CHECKPOINT", raising=False)
    return storage


def _images(root: Path) -> list[str]:
    return [str(p) for p in sorted((root / "pushpins" / "test" / "logical_anomalies").glob("*.png"))[:2]]


def _run(argv, capsys) -> tuple[int, list[dict], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_prints_labels_and_evidence_per_image(storage, pushpins_root, capsys) -> None:
    images = _images(pushpins_root)
    code, results, _ = _run([*images, "--scenario", "pushpins", "--max-new-tokens", "8"], capsys)
    assert code == 0
    assert [r["image"] for r in results] == images
    for result in results:
        assert (result["scenario"], result["method"], result["model"]) == ("pushpins", "finetuned",
                                                                           "tiny-qwen2.5-vl-seed0")
        assert result["labels"] and set(result["labels"]) <= {"normal", *SPEC.class_names}
        assert result["evidence"] and set(result["answers"]) == set(SPEC.subquery_ids)
        assert all({"answer", "value", "parseable", "reason"} == set(a) for a in result["answers"].values())


def test_icl_without_adapter_and_example_from_the_split(storage, pushpins_root, capsys) -> None:
    shutil.rmtree(adapter_dir(storage, "pushpins"))
    (storage / "cot_dataset" / "pushpins.parquet").unlink()
    code, results, _ = _run([_images(pushpins_root)[0], "--scenario", "pushpins", "--method", "icl",
                             "--max-new-tokens", "4"], capsys)
    assert code == 0 and results[0]["method"] == "icl"


@pytest.mark.parametrize(("case", "message"), [
    ("unknown_scenario", "unknown scenario 'bottles'"),
    ("unreadable_image", "cannot read image"),
    ("missing_image", "cannot read image"),
    ("missing_adapter", "no LoRA adapter at"),
    ("no_example", "no in-context example for pushpins"),
])
def test_bad_input_is_one_line_and_exit_2(case, message, storage, pushpins_root, tmp_path, capsys) -> None:
    image, scenario = _images(pushpins_root)[0], "pushpins"
    if case == "unknown_scenario":
        scenario = "bottles"
    elif case == "unreadable_image":
        image = tmp_path / "broken.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "missing_image":
        image = tmp_path / "nowhere.png"
    elif case == "missing_adapter":
        shutil.rmtree(adapter_dir(storage, "pushpins"))
    else:
        shutil.rmtree(storage / "cot_dataset")
        shutil.rmtree(storage / "loco_fc_split")
    code, results, err = _run([str(image), "--scenario", scenario], capsys)
    assert code == EXIT_BAD_INPUT and results == []
    assert len(err.strip().splitlines()) == 1 and message in err and err.startswith("classify: error: ")


def test_command_line_entry_point_has_no_traceback(tmp_path) -> None:
    env = {**os.environ, "LOGICLS_STORAGE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pipelines.classify", str(tmp_path / "x.png"), "--scenario",
                           "pushpins"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_BAD_INPUT and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("classify: error: cannot read image")
    assert "Traceback" not in done.stderr

"""`python -m pipelines.classify`: label sets and evidence as JSON lines; bad input gives one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from models.atomic import write_parquet_atomic
from models.spec import get_spec
from models.storage import StorageLayout
from pipelines.classify import EXIT_BAD_INPUT, main
from tests.cli_helpers import assert_one_line_error, read_only, run_cli
from tests.evaluation.helpers import cot_table, split_frame
from tests.loco_tree import png_header_only

SPEC = get_spec("pushpins")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(tmp_path, monkeypatch, pushpins_root, random_adapter_dir) -> Path:
    """A storage with the scenario's adapter, split and cot_dataset (the tiny model is built into it on demand)."""
    storage = tmp_path / "storage"
    split = split_frame(pushpins_root, "pushpins")
    write_parquet_atomic(split, storage / "loco_fc_split" / "pushpins.parquet")
    write_parquet_atomic(cot_table(SPEC, split), storage / "cot_dataset" / "pushpins.parquet")
    shutil.copytree(random_adapter_dir, StorageLayout(storage).adapter_dir("pushpins"))
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
    shutil.rmtree(StorageLayout(storage).adapter_dir("pushpins"))
    (storage / "cot_dataset" / "pushpins.parquet").unlink()
    code, results, _ = _run([_images(pushpins_root)[0], "--scenario", "pushpins", "--method", "icl",
                             "--max-new-tokens", "4"], capsys)
    assert code == 0 and results[0]["method"] == "icl"


@pytest.mark.parametrize(("case", "message"), [
    ("unknown_scenario", "unknown scenario 'bottles'"),
    ("unreadable_image", "cannot read image"),
    ("missing_image", "cannot read image"),
    ("missing_adapter", "no fine-tuned weights (LoRA adapter or full checkpoint) at"),
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
        shutil.rmtree(StorageLayout(storage).adapter_dir("pushpins"))
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


@pytest.mark.parametrize(("case", "fragments"), [
    ("bomb", ["bomb.png is too large to decode safely", "exceeds limit", "downscale it"]),
    ("aspect_ratio", ["thin.png is 3x4000 pixels", "at most 200:1: crop or pad it"]),
    ("batch_size_0", ["argument --batch-size: must be at least 1, got 0 (see --help)"]),
    ("garbage_weights", ["adapter_model.safetensors is not a valid safetensors file", "train it again"]),
    ("garbage_config", ["adapter_config.json is not valid JSON", "train it again"]),
    ("spec_not_utf8", ["latin.yaml: invalid scenario spec: (file): not UTF-8 text", "save the file as UTF-8"]),
    ("broken_spec", ["cap_tray.yaml: invalid scenario spec: subqueries[0] (red_caps).answer_type"]),
])
def test_every_bad_input_of_the_command_is_one_line_and_exit_2(case, fragments, storage, pushpins_root,
                                                               tmp_path) -> None:
    image, extra, env = Path(_images(pushpins_root)[0]), [], {}
    adapter = tmp_path / "adapter"
    shutil.copytree(StorageLayout(storage).adapter_dir("pushpins"), adapter)
    scenario = "pushpins"
    if case == "bomb":
        image = png_header_only(tmp_path / "bomb.png", 20000, 20000)
    elif case == "aspect_ratio":
        image = tmp_path / "thin.png"
        Image.new("RGB", (3, 4000)).save(image)
    elif case == "batch_size_0":
        extra = ["--batch-size", "0"]
    elif case == "garbage_weights":
        (adapter / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 100)
    elif case == "garbage_config":
        (adapter / "adapter_config.json").write_text("{not json")
    else:
        specs = tmp_path / "specs"
        specs.mkdir()
        tray = (REPO / "tests/spec/data/tray.yaml").read_bytes()
        if case == "spec_not_utf8":
            scenario = "latin"
            (specs / "latin.yaml").write_bytes(tray.replace(b"A black tray", "A n\u00e8gre tray".encode("latin-1")))
        else:
            scenario = "cap_tray"
            (specs / "cap_tray.yaml").write_bytes(tray.replace(b"answer_type: integer", b"answer_type: number", 1))
        env = {"LOGICLS_SCENARIO_DIR": str(specs)}
    done = run_cli("pipelines.classify", image, "--scenario", scenario, "--adapter", adapter, *extra, env=env)
    assert_one_line_error(done, "classify", *fragments)


def test_read_only_storage_serves_a_built_model(storage, pushpins_root, capsys) -> None:
    """Nothing to build, so nothing is written: no lock either."""
    image = _images(pushpins_root)[0]
    assert main([image, "--scenario", "pushpins", "--max-new-tokens", "4"]) == 0  # builds the tiny model
    capsys.readouterr()
    with read_only(storage):
        done = run_cli("pipelines.classify", image, "--scenario", "pushpins", "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.splitlines()[0])["image"] == image


def test_read_only_storage_without_the_model_is_one_line(storage, pushpins_root) -> None:
    with read_only(storage):
        done = run_cli("pipelines.classify", _images(pushpins_root)[0], "--scenario", "pushpins")
    assert_one_line_error(done, "classify", f"{storage / 'models'}: Permission denied",
                          "point LOGICLS_STORAGE at a writable folder")

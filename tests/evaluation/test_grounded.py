"""The training-free grounded method: generated pushpins grounded by the classical backend, every subquery answered
through the spec's measures, h applied; through the lac_predictions asset, the report and `pipelines.classify`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, AssetSpec, materialize

from assets.evaluation import lac_predictions, lac_report
from assets.grounding import grounding
from assets.split import generated_loco, loco_fc_split
from models.atomic import write_parquet_atomic
from models.envelope import split_envelope
from models.evaluation.grounded import GROUNDED, grounded_answers, grounded_replies
from models.objects import object_from_mask
from models.spec import get_spec
from models.spec.metrics import scenario_scores
from models.storage import StorageLayout
from pipelines.classify import EXIT_BAD_INPUT, main
from resources.grounding import Grounder
from resources.llm import ChatEndpoint
from resources.loco import LocoDataset
from resources.parquet_io import ParquetIOManager
from resources.partitions import scenario_partitions
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel
from tests.evaluation.helpers import cot_table

SCENARIO = "pushpins"
SPEC = get_spec(SCENARIO)
# Measured on this data (5 single-anomaly images per class, 3 per combination; classical backend): binary and
# macro F1 100 %; the thresholds leave room for a CPU whose floating point moves a box by a pixel.
MIN_BINARY_F1 = 0.9
MIN_MACRO_F1 = 0.8


def _resources(tmp: Path) -> dict[str, object]:
    store = StorageResource(root=str(tmp / "storage"))
    return {"storage": store, "io_manager": ParquetIOManager(storage=store), "loco": LocoDataset(storage=store),
            "grounder": Grounder(cache_dir=str(tmp / "cache")), "vlm": VisionLanguageModel(storage=store),
            "icl_endpoint": ChatEndpoint(cache_dir=str(tmp / "llm"))}


def _source(key: str) -> AssetSpec:
    return AssetSpec(key=AssetKey(key), partitions_def=scenario_partitions)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, object]:
    """generated_loco → loco_fc_split → grounding, then lac_predictions with the grounded method alone."""
    tmp = tmp_path_factory.mktemp("grounded")
    resources = _resources(tmp)
    data = materialize([generated_loco, loco_fc_split, grounding], partition_key=SCENARIO, resources=resources,
                       run_config={"ops": {"generated_loco": {"config": {"per_logical_class": 5}}}})
    assert data.success
    storage = tmp / "storage"
    split = pd.read_parquet(storage / "loco_fc_split" / f"{SCENARIO}.parquet")
    write_parquet_atomic(cot_table(SPEC, split), storage / "cot_dataset" / f"{SCENARIO}.parquet")
    result = materialize([_source("loco_fc_split"), _source("cot_dataset"), _source("grounding"), lac_predictions],
                         partition_key=SCENARIO, resources=resources,
                         run_config={"ops": {"lac_predictions": {"config": {"methods": [GROUNDED]}}}})
    predictions = pd.read_parquet(storage / "lac_predictions" / f"{SCENARIO}.parquet")
    return {"tmp": tmp, "storage": storage, "split": split, "result": result, "predictions": predictions}


def _images(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions.drop_duplicates("image_id").set_index("image_id")


def test_grounded_predictions_classify_generated_pushpins(chain) -> None:
    result, predictions, split = chain["result"], chain["predictions"], chain["split"]
    assert result.success
    test = split[split["split"] == "test"]
    assert set(predictions["method"]) == {GROUNDED} and set(predictions["model"]) == {"classical"}
    assert len(predictions) == len(test) * len(SPEC.subqueries)
    assert predictions["parseable"].all() and predictions["measured"].all()  # every pushpins subquery has a measure
    assert predictions["example_image_id"].isna().all()  # no model, no in-context example
    images = _images(predictions)
    scores = scenario_scores(SCENARIO, images["true_labels"], images["predicted_labels"], SPEC.class_names)
    assert scores.binary_f1 >= MIN_BINARY_F1 and scores.macro_f1 >= MIN_MACRO_F1, scores

    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["answers_parseable"].passed
    meta = result.asset_materializations_for_node("lac_predictions")[0].metadata
    assert meta["methods_run"].value == [GROUNDED] and "| grounded | classical |" in meta["per_method"].value
    assert meta["grounded_measured_share"].value == {s: 1.0 for s in sorted(SPEC.subquery_ids)}
    assert "base_model" not in meta  # no model was loaded


def test_a_known_defect_gets_its_class_with_evidence_and_a_normal_image_none(chain) -> None:
    images, split = _images(chain["predictions"]), chain["split"].set_index("image_id")
    extra = next(i for i in images.index if list(split.loc[i, "labels"]) == ["1_additional_pushpin"]
                 and list(images.loc[i, "predicted_labels"]) == ["1_additional_pushpin"])
    rules = json.loads(images.loc[extra, "evidence"])
    assert [r["label"] for r in rules] == ["1_additional_pushpin"]
    assert images.loc[extra, "evidence_lines"][0].startswith("1_additional_pushpin:")
    normal = [i for i in images.index if list(split.loc[i, "labels"]) == ["normal"]]
    right = [i for i in normal if list(images.loc[i, "predicted_labels"]) == ["normal"]]
    assert len(right) >= 0.9 * len(normal) and len(normal) >= 5
    assert json.loads(images.loc[right[0], "evidence"]) == []
    # The reply is the training target's envelope: reasoning citing the row's boxes, then the answer.
    row = chain["predictions"].query("image_id == @extra and subquery_id == 'row_1'").iloc[0]
    envelope = split_envelope(row["raw_output"])
    assert envelope.answer == row["answer_text"] and "divided into 3 rows and 5 columns" in envelope.think
    assert envelope.think.count("[") >= 6  # the box and the pins of the row, each as [x0,y0,x1,y1]


def test_report_has_the_grounded_column(chain) -> None:
    result = materialize([_source("lac_predictions"), _source("grounding"), lac_report], partition_key=SCENARIO,
                         resources=_resources(chain["tmp"]))
    assert result.success
    html = StorageLayout(chain["storage"]).report(SCENARIO).read_text()
    assert "grounded: reasoning" in html and "<td>classical</td><td>grounded</td>" in html
    assert "In-context example" not in html  # grounded has none


def test_a_subquery_without_a_measure_takes_its_normal_answer_marked_not_measured() -> None:
    spec = get_spec("juice_bottle")
    mask = np.zeros((48, 64), dtype=bool)
    mask[5:40, 20:40] = True
    replies = grounded_replies(spec, [object_from_mask(mask, "bottle", 0.9)])
    unmeasured = [s for s in spec.subqueries if s.id not in spec.measures]
    assert unmeasured
    for sub in unmeasured:
        reply = replies[sub.id]
        assert not reply.measured and "no measure" in reply.text and "normal answer is assumed" in reply.text
    images = pd.DataFrame({"image_id": ["a"], "image_path": ["a.png"]})
    frame = pd.DataFrame({"image_id": ["a"], "label": ["bottle"], "backend": ["test"]}).iloc[:0]
    table = grounded_answers(spec, frame, images)  # an image grounding found nothing on
    assert table["parseable"].all()
    assert "empty_bottle" in table["predicted_labels"].iloc[0]  # measured: no juice found
    by_id = table.set_index("subquery_id")
    for sub in unmeasured:
        flag = by_id.loc[sub.id, "measured"]
        assert flag is not None and not flag  # False, not None: the column says "not measured"
        assert json.loads(by_id.loc[sub.id, "answer_value"]) == sub.normal


def test_classify_cli_with_the_grounded_method(chain, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LOGICLS_STORAGE", str(chain["storage"]))
    monkeypatch.delenv("LOGICLS_GROUNDING_BACKEND", raising=False)
    split = chain["split"]
    test = split[split["split"] == "test"].set_index("image_id")
    extra = next(i for i in test.index if list(test.loc[i, "labels"]) == ["1_additional_pushpin"])
    normal = next(i for i in test.index if list(test.loc[i, "labels"]) == ["normal"])
    expected = _images(chain["predictions"])
    paths = {extra: test.loc[extra, "image_path"], normal: test.loc[normal, "image_path"]}
    assert main([*paths.values(), "--scenario", SCENARIO, "--method", GROUNDED]) == 0
    results = {r["image"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(results) == set(paths.values())
    for image_id, path in paths.items():
        result = results[path]
        assert (result["method"], result["model"]) == (GROUNDED, "classical")
        assert result["labels"] == list(expected.loc[image_id, "predicted_labels"])  # as lac_predictions
        assert all(a["measured"] and a["parseable"] for a in result["answers"].values())
    assert results[paths[normal]]["labels"] == ["normal"] and results[paths[normal]]["rules"] == []


def test_classify_grounded_without_a_grounding_table_is_one_line(chain, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path / "empty"))
    path = chain["split"]["image_path"].iloc[0]
    assert main([path, "--scenario", SCENARIO, "--method", GROUNDED]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no grounding table" in err and "materialize grounding" in err

"""A scripted model with answers fixed per image: known per-class outcomes, metrics equal hand-computed values,
and every number recomputable from the prediction table with scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from models.evaluation import PREDICTION_COLUMNS, build_questions, compute_metrics, predict, select_examples
from models.evaluation.metrics import DEFAULT_CONFIGURATION, confusion_summary, missing_scenarios
from models.evaluation.predict import ICLExample
from models.spec import get_spec
from tests.evaluation.helpers import ScriptedModel

PUSHPINS = get_spec("pushpins")
SCREW_BAG = get_spec("screw_bag")
EXAMPLE = ICLExample("pushpins/train/good/000", "/data/train/good/000.png", "<think>n</think><answer>x</answer>")

# image → (true labels, scripted answers); see the hand computation in test_pushpins_metrics_by_hand.
PUSHPINS_CASES = {
    "pushpins/test/good/000": (["normal"], {}),
    "pushpins/test/logical_anomalies/000": (["1_additional_pushpin"], {"row_1": "[2, 1, 1, 1, 1]"}),
    "pushpins/test/logical_anomalies/001": (["missing_pushpin"], {"row_2": "[1, 1, 0, 1, 1]"}),
    "pushpins/test/logical_anomalies/002": (["missing_separator"], {}),  # missed
    "pushpins/test/good/001": (["normal"], {"separators_complete": "No"}),  # false alarm
    "pushpins/test/logical_anomalies/003": (["1_additional_pushpin", "missing_pushpin"],
                                            {"row_1": "[2, 1, 1, 1, 1]", "row_3": "[1, 1, 1, 1, 0]"}),
    "pushpins/test/logical_anomalies/004": (["2_additional_pushpins"], {"row_1": "[2, 1, 1, 1, 1]"}),  # wrong class
    "pushpins/test/good/002": (["normal"], {"row_1": "!I cannot count them."}),  # unparseable, assumed normal
}
SCREW_CASES = {
    "screw_bag/test/good/000": (["normal"], {}),
    "screw_bag/test/logical_anomalies/000": (["1_missing_nut"], {"nuts": "1"}),
}


def _images(cases: dict) -> pd.DataFrame:
    return pd.DataFrame({"image_id": list(cases), "image_path": [f"/data/{i}.png" for i in cases],
                         "labels": [labels for labels, _ in cases.values()]})


def _predictions(spec, cases, method="finetuned", policy="normal") -> pd.DataFrame:
    examples = {s: ICLExample(f"{spec.scenario}/train/good/000", "/x.png", "<answer>x</answer>")
                for s in spec.subquery_ids}
    questions = build_questions(_images(cases), spec, examples)
    model = ScriptedModel(spec, {image: answers for image, (_, answers) in cases.items()})
    truth = {image: labels for image, (labels, _) in cases.items()}
    return predict(spec, questions, model, method=method, model="scripted", true_labels=truth, policy=policy)


@pytest.fixture(scope="module")
def predictions() -> pd.DataFrame:
    return pd.concat([_predictions(PUSHPINS, PUSHPINS_CASES), _predictions(SCREW_BAG, SCREW_CASES)],
                     ignore_index=True)


def _classes() -> dict[str, list[str]]:
    return {"pushpins": PUSHPINS.class_names, "screw_bag": SCREW_BAG.class_names}


def test_rows_per_image_subquery_and_method(predictions) -> None:
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert len(predictions) == 8 * 4 + 2 * 6
    assert not predictions.duplicated(["method", "image_id", "subquery_id"]).any()
    row = predictions.set_index(["image_id", "subquery_id"]).loc[("pushpins/test/logical_anomalies/000", "row_1")]
    assert row["raw_output"] == "<think>scripted</think><answer>[2, 1, 1, 1, 1]</answer>"
    assert (row["think"], row["answer_text"]) == ("scripted", "[2, 1, 1, 1, 1]")
    assert json.loads(row["answer_value"]) == [2, 1, 1, 1, 1] and row["parseable"]
    assert list(row["predicted_labels"]) == ["1_additional_pushpin"]
    assert json.loads(row["evidence"])[0]["label"] == "1_additional_pushpin"


def test_unparseable_reply_is_recorded_and_assumed_normal(predictions) -> None:
    rows = predictions[predictions["image_id"] == "pushpins/test/good/002"].set_index("subquery_id")
    assert not rows.loc["row_1", "parseable"] and pd.isna(rows.loc["row_1", "answer_value"])
    assert rows.loc["row_1", "parse_reason"] and pd.isna(rows.loc["row_1", "think"])
    assert list(rows.loc["row_1", "predicted_labels"]) == ["normal"]
    assert any(line.startswith("unparseable row_1") for line in rows.loc["row_1", "evidence_lines"])


def test_ignore_policy_skips_rules_that_read_an_unparseable_answer() -> None:
    cases = {"pushpins/test/good/000": (["normal"], {"row_1": "!no idea", "separators_complete": "No"})}
    table = _predictions(PUSHPINS, cases, policy="ignore")
    lines = list(table["evidence_lines"].iloc[0])
    assert list(table["predicted_labels"].iloc[0]) == ["missing_separator"]
    assert any(line.startswith("skipped rule") for line in lines)
    assert set(table["unparseable_policy"]) == {"ignore"}


def test_pushpins_metrics_by_hand(predictions) -> None:
    tables = compute_metrics(predictions, _classes(), ["pushpins", "screw_bag"])
    row = tables.table_ii.iloc[0]
    # binary: TP = 4 (the anomalies predicted as anomalies), FP = 1 (good/001), FN = 1 (the missed separator)
    assert row["pushpins/binary_f1"] == pytest.approx(100 * 8 / 10)
    # per class F1: 1_additional 2·2/(4+1+0) = 0.8, 2_additional 0, missing_pushpin 1, missing_separator 0
    assert row["pushpins/macro_f1"] == pytest.approx(100 * (0.8 + 0 + 1 + 0) / 4)
    assert row["screw_bag/binary_f1"] == pytest.approx(100.0)
    assert row["screw_bag/macro_f1"] == pytest.approx(100.0)  # only 1_missing_nut occurs
    assert row["average/binary_f1"] == pytest.approx(90.0)
    assert row["average/macro_f1"] == pytest.approx(72.5)
    assert (row["scenarios"], row["images"], row["configuration"]) == (2, 10, DEFAULT_CONFIGURATION)
    per_class = tables.per_class[tables.per_class["scenario"] == "pushpins"].set_index("label")
    assert per_class.loc["1_additional_pushpin", ["tp", "fp", "fn", "support"]].tolist() == [2, 1, 0, 2]
    assert per_class.loc["1_additional_pushpin", "precision"] == pytest.approx(2 / 3)
    assert per_class.loc["missing_separator", ["tp", "fp", "fn"]].tolist() == [0, 1, 1]
    assert per_class["in_macro"].all()
    screw = tables.per_class[tables.per_class["scenario"] == "screw_bag"]
    assert screw.loc[screw["in_macro"], "label"].tolist() == ["1_missing_nut"]


def test_confusion_outcomes_by_hand(predictions) -> None:
    tables = compute_metrics(predictions, _classes(), ["pushpins", "screw_bag"])
    summary = confusion_summary(tables.confusion).set_index("scenario")
    assert summary.loc["pushpins", ["normal_ok", "false_alarm", "missed", "exact", "partial", "wrong_class"]].tolist() \
        == [2, 1, 1, 3, 0, 1]
    pairs = tables.confusion.set_index(["scenario", "true_labels", "predicted_labels"])["images"]
    assert pairs[("pushpins", "1_additional_pushpin + missing_pushpin", "1_additional_pushpin + missing_pushpin")] == 1
    assert pairs[("pushpins", "2_additional_pushpins", "1_additional_pushpin")] == 1


def test_metrics_recomputed_with_scikit_learn(predictions) -> None:
    tables = compute_metrics(predictions, _classes(), ["pushpins", "screw_bag"])
    images = predictions.drop_duplicates(["model", "method", "image_id"])
    for scenario, classes in _classes().items():
        part = images[images["scenario"] == scenario]
        true_bin = [list(t) != ["normal"] for t in part["true_labels"]]
        pred_bin = [list(p) != ["normal"] for p in part["predicted_labels"]]
        binarizer = MultiLabelBinarizer(classes=classes)
        y_true = binarizer.fit_transform([[c for c in t if c != "normal"] for t in part["true_labels"]])
        y_pred = binarizer.transform([[c for c in p if c != "normal"] for p in part["predicted_labels"]])
        used = [i for i in range(len(classes)) if y_true[:, i].any() or y_pred[:, i].any()]
        row = tables.table_ii.iloc[0]
        assert row[f"{scenario}/binary_f1"] == pytest.approx(100 * f1_score(true_bin, pred_bin, zero_division=0))
        assert row[f"{scenario}/macro_f1"] == pytest.approx(
            100 * f1_score(y_true, y_pred, average="macro", labels=used, zero_division=0))
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(range(len(classes))),
                                                     zero_division=0)
        ours = tables.per_class[tables.per_class["scenario"] == scenario]
        np.testing.assert_allclose(ours[["precision", "recall", "f1"]].to_numpy().T, [p, r, f])
        assert ours["support"].tolist() == s.tolist()


def test_one_row_per_method_and_configuration(predictions) -> None:
    icl = _predictions(PUSHPINS, {k: (v[0], {}) for k, v in PUSHPINS_CASES.items()}, method="icl")
    ablation = _predictions(PUSHPINS, PUSHPINS_CASES).assign(configuration="answers_only")
    tables = compute_metrics(pd.concat([predictions, icl, ablation], ignore_index=True), _classes(),
                             ["pushpins", "screw_bag"])
    keys = tables.table_ii[["method", "configuration"]].apply(tuple, axis=1).tolist()
    assert keys == [("finetuned", "answers_only"), ("finetuned", "default"), ("icl", "default")]
    icl_row = tables.table_ii.iloc[2]
    assert icl_row["pushpins/binary_f1"] == 0.0 and np.isnan(icl_row["screw_bag/binary_f1"])
    assert missing_scenarios(tables.table_ii, ["pushpins", "screw_bag"]) == {
        "scripted / finetuned / answers_only": ["screw_bag"], "scripted / icl": ["screw_bag"]}


def test_examples_are_one_normal_training_image_chosen_deterministically() -> None:
    rows = []
    for image, labels, flagged in [("pushpins/train/good/002", ["normal"], False),
                                   ("pushpins/train/good/001", ["normal"], True),
                                   ("pushpins/train/good/003", ["normal"], False),
                                   ("pushpins/train/logical_anomalies/000", ["missing_pushpin"], False)]:
        for sub in PUSHPINS.subqueries:
            for k, question in enumerate([f"Paraphrase of {sub.id}?", sub.text]):
                rows.append({"sample_id": f"{image}#{sub.id}#{k}", "image_id": image, "image_path": f"/{image}.png",
                             "scenario": "pushpins", "subquery_id": sub.id, "question": question,
                             "target": f"{image} {sub.id} {k}", "image_origin": "original", "labels": labels,
                             "flagged": flagged})
    rows.append({**rows[0], "sample_id": "aug", "image_id": "pushpins/train/good/000", "image_origin": "augmented"})
    cot = pd.DataFrame(rows)
    examples = select_examples(cot.sample(frac=1, random_state=3), PUSHPINS)
    assert {e.image_id for e in examples.values()} == {"pushpins/train/good/002"}
    assert examples["row_2"].target == "pushpins/train/good/002 row_2 1"  # the original question's row
    only_003 = select_examples(cot, PUSHPINS, train_image_ids=["pushpins/train/good/003"])
    assert {e.image_id for e in only_003.values()} == {"pushpins/train/good/003"}
    with pytest.raises(ValueError, match="no row of a normal training image"):
        select_examples(cot[cot["subquery_id"] != "row_3"], PUSHPINS)


def test_questions_follow_image_then_spec_order() -> None:
    questions = build_questions(_images(SCREW_CASES).iloc[::-1], SCREW_BAG,
                                {s: EXAMPLE for s in SCREW_BAG.subquery_ids})
    assert [q.image_id for q in questions[:6]] == ["screw_bag/test/good/000"] * 6
    assert [q.subquery_id for q in questions[:6]] == SCREW_BAG.subquery_ids
    assert questions[0].question == SCREW_BAG.subqueries[0].text


def test_default_generation_room_follows_the_training_targets() -> None:
    from models.evaluation.answerers import default_max_new_tokens

    def one_token_a_character(texts, add_special_tokens):  # counted by the tokenizer, not estimated
        return {"input_ids": [list(t) for t in texts]}

    assert default_max_new_tokens(["x" * 30, "y" * 300], one_token_a_character, tiny=True) == 300 + 1 + 16
    assert default_max_new_tokens(["y" * 300], one_token_a_character, tiny=False) == 512  # answering in context
    assert default_max_new_tokens(["z" * 3000], one_token_a_character, tiny=False) == 3017

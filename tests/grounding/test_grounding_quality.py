"""Box precision / recall and count accuracy on hand-made cases."""

from __future__ import annotations

import math

import pandas as pd

from models.grounding import ALL_LABELS, grounding_quality, match_boxes


def _table(rows: list[tuple[str, str, list[int], float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image_id", "label", "bbox", "score"])


TRUTH = _table(
    [
        ("pushpins/a/000", "pushpin", [0, 0, 10, 10], 1.0),
        ("pushpins/a/000", "pushpin", [20, 0, 30, 10], 1.0),
        ("pushpins/a/000", "box", [0, 0, 100, 50], 1.0),
        ("pushpins/a/001", "pushpin", [0, 0, 10, 10], 1.0),
        ("screw_bag/a/000", "nut", [5, 5, 15, 15], 1.0),
    ]
)
PRED = _table(
    [
        ("pushpins/a/000", "pushpin", [1, 1, 10, 10], 0.9),  # IoU 0.81, but the pin is taken -> fp
        ("pushpins/a/000", "pushpin", [0, 0, 9, 10], 0.95),  # same pin, better score, matched first -> tp
        ("pushpins/a/000", "pushpin", [40, 40, 50, 50], 0.5),  # fp
        ("pushpins/a/000", "box", [0, 0, 100, 50], 0.8),  # tp
        ("pushpins/a/001", "pushpin", [0, 0, 10, 10], 0.7),  # tp
        ("screw_bag/a/000", "nut", [10, 10, 20, 20], 0.6),  # IoU 25/175 -> fp, and the nut is missed
        ("screw_bag/a/000", "washer", [0, 0, 4, 4], 0.6),  # label not asked for: ignored
    ]
)


def test_match_boxes_greedy_by_score() -> None:
    m = match_boxes(PRED, TRUTH, iou=0.5, labels=["pushpin", "box", "nut"]).set_index(["image_id", "label"])
    row = m.loc[("pushpins/a/000", "pushpin")]
    assert (row.n_pred, row.n_true, row.tp, row.fp, row.fn, row.count_correct) == (3, 2, 1, 2, 1, False)
    assert m.loc[("pushpins/a/001", "pushpin")].count_correct
    # An image where a label is absent on both sides counts as a right count (0 == 0).
    assert m.loc[("pushpins/a/001", "box")].count_correct
    assert len(m) == 3 * 3


def test_grounding_quality_per_scenario_and_label() -> None:
    q = grounding_quality(PRED, TRUTH, labels=["pushpin", "box", "nut"]).set_index(["scenario", "label"])
    pins = q.loc[("pushpins", "pushpin")]
    assert (pins.tp, pins.fp, pins.fn) == (2, 2, 1)
    assert pins.precision == 0.5 and math.isclose(pins.recall, 2 / 3)
    assert pins.count_accuracy == 0.5 and pins.n_images == 2
    box = q.loc[("pushpins", "box")]
    assert box.precision == 1.0 and box.recall == 1.0 and box.count_accuracy == 1.0
    nothing = q.loc[("pushpins", "nut")]
    assert math.isnan(nothing.precision) and math.isnan(nothing.recall) and nothing.count_accuracy == 1.0
    nut = q.loc[("screw_bag", "nut")]
    assert (nut.tp, nut.fp, nut.fn, nut.precision, nut.recall) == (0, 1, 1, 0.0, 0.0)
    everything = q.loc[("pushpins", ALL_LABELS)]
    assert (everything.tp, everything.fp, everything.fn) == (3, 2, 1)
    assert everything.count_accuracy == 0.5  # image 000 has 3 pins for 2


def test_perfect_prediction_and_explicit_images() -> None:
    q = grounding_quality(TRUTH, TRUTH, image_ids=["pushpins/a/000", "pushpins/a/001", "pushpins/a/002"])
    pushpins = q[(q["scenario"] == "pushpins") & (q["label"] != "nut")]
    assert (pushpins["precision"] == 1.0).all() and (pushpins["recall"] == 1.0).all()
    assert (pushpins["n_images"] == 3).all() and (pushpins["count_accuracy"] == 1.0).all()
    assert "screw_bag" not in set(q["scenario"])

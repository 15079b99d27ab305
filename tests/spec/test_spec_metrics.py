"""LAC metrics agree with scikit-learn and with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_recall_fscore_support

from models.spec.metrics import (
    binary_f1,
    macro_classes,
    macro_f1,
    per_class_scores,
    scenario_scores,
    table_ii_row,
)

CLASSES = ["a", "b", "c", "d", "e"]


@st.composite
def label_set(draw, classes=CLASSES):
    if draw(st.booleans()):
        return frozenset({"normal"})
    return frozenset(draw(st.sets(st.sampled_from(classes), min_size=1)))


@st.composite
def truth_and_prediction(draw):
    n = draw(st.integers(1, 30))
    k = draw(st.integers(1, len(CLASSES)))
    classes = CLASSES[:k]
    true = draw(st.lists(label_set(classes), min_size=n, max_size=n))
    pred = draw(st.lists(label_set(classes), min_size=n, max_size=n))
    return classes, true, pred


def indicator(y, classes):
    """Multi-label indicator matrix, plus an all-zero column that no ``labels=`` selects: with a
    single column scikit-learn would read the matrix as a binary target."""
    return np.array([[c in labels for c in classes] + [False] for labels in y], dtype=int)


@settings(max_examples=150, deadline=None)
@given(truth_and_prediction(), st.sampled_from([0.0, 1.0]))
def test_agrees_with_scikit_learn(data, zero_division):
    classes, true, pred = data
    bin_true = [labels != {"normal"} for labels in true]
    bin_pred = [labels != {"normal"} for labels in pred]
    expected_binary = f1_score(bin_true, bin_pred, zero_division=zero_division)
    assert binary_f1(true, pred, zero_division) == pytest.approx(expected_binary, abs=1e-9)

    yt, yp = indicator(true, classes), indicator(pred, classes)
    used = macro_classes(true, pred, classes)
    if used:
        idx = [classes.index(c) for c in used]
        expected_macro = f1_score(yt, yp, average="macro", labels=idx, zero_division=zero_division)
        assert macro_f1(true, pred, classes, zero_division) == pytest.approx(expected_macro, abs=1e-9)
    else:
        assert macro_f1(true, pred, classes, zero_division) == zero_division

    p, r, f, s = precision_recall_fscore_support(
        yt, yp, labels=list(range(len(classes))), average=None, zero_division=zero_division
    )
    for i, score in enumerate(per_class_scores(true, pred, classes, zero_division)):
        assert score.precision == pytest.approx(p[i], abs=1e-9)
        assert score.recall == pytest.approx(r[i], abs=1e-9)
        assert score.f1 == pytest.approx(f[i], abs=1e-9)
        assert score.support == s[i]


def test_hand_computed_example():
    classes = ["missing_pushpin", "1_additional_pushpin", "missing_separator", "2_additional_pushpins"]
    true = [{"normal"}, {"normal"}, {"missing_pushpin"}, {"1_additional_pushpin", "missing_pushpin"}]
    pred = [{"normal"}, {"missing_separator"}, {"missing_pushpin"}, {"missing_pushpin"}]
    # binary: TP 2 (images 3, 4), FP 1 (image 2), FN 0 → 4 / 5
    assert binary_f1(true, pred) == pytest.approx(0.8)
    # missing_pushpin: TP 2 → 1.0; 1_additional: FN 1 → 0; missing_separator: FP 1 → 0;
    # 2_additional_pushpins occurs nowhere and is left out: (1 + 0 + 0) / 3
    assert macro_classes(true, pred, classes) == [
        "missing_pushpin",
        "1_additional_pushpin",
        "missing_separator",
    ]
    assert macro_f1(true, pred, classes) == pytest.approx(1 / 3)
    scores = scenario_scores("pushpins", true, pred, classes)
    assert scores.n_images == 4 and scores.per_class[3].support == 0
    row = table_ii_row([scores, scenario_scores("x", [{"a"}], [{"a"}], ["a"])])
    assert row["pushpins/binary_f1"] == pytest.approx(80.0)
    assert row["average/binary_f1"] == pytest.approx(90.0)
    assert row["average/macro_f1"] == pytest.approx((100 / 3 + 100) / 2)


@pytest.mark.parametrize(
    ("true", "pred", "message"),
    [
        ([{"normal", "a"}], [{"a"}], "'normal' together"),
        ([set()], [{"a"}], "empty label set"),
        ([{"z"}], [{"a"}], "unknown classes"),
        ([{"a"}], [{"a"}, {"a"}], "y_true has 1 images, y_pred 2"),
        (["a"], [{"a"}], "the string 'a'"),
    ],
)
def test_bad_label_sets(true, pred, message):
    with pytest.raises(ValueError, match=message):
        macro_f1(true, pred, ["a"])

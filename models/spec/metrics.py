"""LAC metrics as in the paper's Table II: binary F1 and macro F1, per scenario and on average.

Every image has a true and a predicted *label set*: ``{"normal"}`` or a non-empty set of the
scenario's anomaly classes (never ``normal`` together with a class).

Definitions
-----------
* **Binary F1.** An image is *positive* when its label set is not ``{"normal"}`` (any anomaly).
  With TP, FP, FN counted over images, F1 = 2·TP / (2·TP + FP + FN); when there is no positive
  image in truth or prediction (TP + FP + FN = 0) it is ``zero_division`` (default 0).
  Equals ``sklearn.metrics.f1_score(y_true_bin, y_pred_bin, zero_division=…)``.
* **Per-class scores.** For each anomaly class c, one-vs-rest over images (multi-label: an
  image with two classes counts for both): TP = c in truth and prediction, FP = in prediction
  only, FN = in truth only; precision = TP/(TP+FP), recall = TP/(TP+FN), F1 =
  2·TP/(2·TP+FP+FN), support = TP+FN; an undefined ratio is ``zero_division``.
* **Macro F1.** The unweighted mean of the per-class F1 over the scenario's anomaly classes
  that occur in the truth *or* the prediction of the evaluated images (``normal`` is not a
  class). A class absent from both carries no evidence either way, so it is left out rather than
  counted as 0 or 1 (on a small test split not every class occurs). Equals
  ``f1_score(Y_true, Y_pred, average="macro", labels=<those classes>, zero_division=…)`` on the
  multi-label indicator matrices. With no such class at all, the macro F1 is ``zero_division``.
* **Average.** Table II's "Average" columns: the unweighted mean of the per-scenario values.
  (The paper's own Average column does not always equal the mean of its per-scenario columns,
  e.g. Gemini-2.5-pro binary: mean 66.94, printed 64.23; its pooling is not stated.)

Functions return fractions in [0, 1]; :func:`table_ii_row` gives percentages like the paper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from models.spec.schema import NORMAL

LabelSets = Sequence[Iterable[str]]


@dataclass(frozen=True)
class ClassScore:
    """One-vs-rest precision, recall and F1 of one anomaly class."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    tp: int
    fp: int
    fn: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScenarioScores:
    """Binary and macro F1 of one scenario, with the per-class scores behind the macro F1."""

    scenario: str
    n_images: int
    binary_f1: float
    macro_f1: float
    macro_classes: tuple[str, ...]
    per_class: tuple[ClassScore, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "n_images": self.n_images,
            "binary_f1": self.binary_f1,
            "macro_f1": self.macro_f1,
            "macro_classes": list(self.macro_classes),
            "per_class": [c.to_dict() for c in self.per_class],
        }


def label_sets(y: LabelSets, name: str, classes: Sequence[str] | None = None) -> list[frozenset[str]]:
    """Validated label sets: non-empty, ``normal`` alone, classes from ``classes`` when given."""
    out = []
    known = None if classes is None else {NORMAL, *classes}
    for i, labels in enumerate(y):
        if isinstance(labels, str):
            raise ValueError(f"{name}[{i}]: expected a collection of labels, got the string {labels!r}")
        s = frozenset(labels)
        if not s:
            raise ValueError(f"{name}[{i}]: empty label set; a normal image is {{'normal'}}")
        if NORMAL in s and len(s) > 1:
            raise ValueError(f"{name}[{i}]: 'normal' together with anomaly classes {sorted(s)}")
        if known is not None and not s <= known:
            raise ValueError(f"{name}[{i}]: unknown classes {sorted(s - known)}")
        out.append(s)
    return out


def _pair(
    y_true: LabelSets, y_pred: LabelSets, classes: Sequence[str] | None = None
) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
    true = label_sets(y_true, "y_true", classes)
    pred = label_sets(y_pred, "y_pred", classes)
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} images, y_pred {len(pred)}")
    return true, pred


def _ratio(num: int, den: int, zero_division: float) -> float:
    return num / den if den else zero_division


def binary_f1(y_true: LabelSets, y_pred: LabelSets, zero_division: float = 0.0) -> float:
    """F1 of "any anomaly" against normal (see the module docstring)."""
    true, pred = _pair(y_true, y_pred)
    tp = sum(t != {NORMAL} and p != {NORMAL} for t, p in zip(true, pred, strict=True))
    fp = sum(t == {NORMAL} and p != {NORMAL} for t, p in zip(true, pred, strict=True))
    fn = sum(t != {NORMAL} and p == {NORMAL} for t, p in zip(true, pred, strict=True))
    return _ratio(2 * tp, 2 * tp + fp + fn, zero_division)


def per_class_scores(
    y_true: LabelSets, y_pred: LabelSets, classes: Sequence[str], zero_division: float = 0.0
) -> list[ClassScore]:
    """One-vs-rest scores of every class in ``classes`` (also those with no support)."""
    true, pred = _pair(y_true, y_pred, classes)
    scores = []
    for c in classes:
        tp = sum(c in t and c in p for t, p in zip(true, pred, strict=True))
        fp = sum(c not in t and c in p for t, p in zip(true, pred, strict=True))
        fn = sum(c in t and c not in p for t, p in zip(true, pred, strict=True))
        scores.append(
            ClassScore(
                label=c,
                precision=_ratio(tp, tp + fp, zero_division),
                recall=_ratio(tp, tp + fn, zero_division),
                f1=_ratio(2 * tp, 2 * tp + fp + fn, zero_division),
                support=tp + fn,
                predicted=tp + fp,
                tp=tp,
                fp=fp,
                fn=fn,
            )
        )
    return scores


def macro_classes(y_true: LabelSets, y_pred: LabelSets, classes: Sequence[str]) -> list[str]:
    """The classes the macro F1 averages over: those in the truth or the prediction, in spec order."""
    true, pred = _pair(y_true, y_pred, classes)
    seen = set().union(*true, *pred)
    return [c for c in classes if c in seen]


def macro_f1(
    y_true: LabelSets, y_pred: LabelSets, classes: Sequence[str], zero_division: float = 0.0
) -> float:
    """Mean per-class F1 over the classes that occur in truth or prediction (module docstring)."""
    used = set(macro_classes(y_true, y_pred, classes))
    f1s = [s.f1 for s in per_class_scores(y_true, y_pred, classes, zero_division) if s.label in used]
    return sum(f1s) / len(f1s) if f1s else zero_division


def scenario_scores(
    scenario: str, y_true: LabelSets, y_pred: LabelSets, classes: Sequence[str], zero_division: float = 0.0
) -> ScenarioScores:
    """Everything Table II and the per-class table need for one scenario."""
    true, pred = _pair(y_true, y_pred, classes)
    return ScenarioScores(
        scenario=scenario,
        n_images=len(true),
        binary_f1=binary_f1(true, pred, zero_division),
        macro_f1=macro_f1(true, pred, classes, zero_division),
        macro_classes=tuple(macro_classes(true, pred, classes)),
        per_class=tuple(per_class_scores(true, pred, classes, zero_division)),
    )


def table_ii_row(scores: Sequence[ScenarioScores]) -> dict[str, float]:
    """Percentages ``<scenario>/binary_f1``, ``<scenario>/macro_f1`` and the ``average/…`` columns."""
    if not scores:
        raise ValueError("no scenario scores to put in a Table II row")
    row: dict[str, float] = {}
    for s in scores:
        row[f"{s.scenario}/binary_f1"] = 100.0 * s.binary_f1
        row[f"{s.scenario}/macro_f1"] = 100.0 * s.macro_f1
    row["average/binary_f1"] = 100.0 * sum(s.binary_f1 for s in scores) / len(scores)
    row["average/macro_f1"] = 100.0 * sum(s.macro_f1 for s in scores) / len(scores)
    return row

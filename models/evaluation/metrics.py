"""Table II, per-class scores and a confusion summary, computed from prediction tables.

The input is any table with the prediction columns (``models.evaluation.predict``): at least
``model, method, scenario, image_id, true_labels, predicted_labels``, optionally
``configuration``. Each distinct (model, method, configuration) becomes one row of Table II, so
ablation runs (Table III: the same columns plus ``configuration``) are simply concatenated to the
main predictions before calling :func:`compute_metrics`. Rows without a configuration get
:data:`DEFAULT_CONFIGURATION`.

The scores themselves are :mod:`models.spec.metrics` (binary F1, per-class one-vs-rest scores,
macro F1 over the classes that occur in truth or prediction, Average = unweighted mean over the
scenarios present), which equal scikit-learn's ``f1_score`` on the same label sets; values here
are percentages like the paper's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from models.spec import NORMAL
from models.spec.metrics import scenario_scores, table_ii_row

METRICS_VERSION = 1
"""Bump when a metric or table changes for the same predictions (the code version of lac_metrics and its two
siblings)."""
ROW_KEYS = ["model", "method", "configuration"]
#: ``lac_metrics`` (Table II): the row keys, ``<scenario>/binary_f1`` and ``<scenario>/macro_f1`` for each
#: scenario present and ``average/…`` (%, float), then these two counts.
TABLE_II_COUNTS = ["scenarios", "images"]
TABLE_II_SCHEMA = pa.schema([*((k, pa.string()) for k in ROW_KEYS), ("scenarios", pa.int64()), ("images", pa.int64())])
CLASS_METRIC_COLUMNS = [*ROW_KEYS, "scenario", "label", "precision", "recall", "f1", "support", "predicted", "tp",
                        "fp", "fn", "in_macro"]
CLASS_METRIC_SCHEMA = pa.schema([
    *((k, pa.string()) for k in [*ROW_KEYS, "scenario", "label"]),
    *((k, pa.float64()) for k in ("precision", "recall", "f1")),
    *((k, pa.int64()) for k in ("support", "predicted", "tp", "fp", "fn")), ("in_macro", pa.bool_()),
])  # fmt: skip
CONFUSION_COLUMNS = [*ROW_KEYS, "scenario", "true_labels", "predicted_labels", "outcome", "images"]
CONFUSION_SCHEMA = pa.schema([*((k, pa.string()) for k in CONFUSION_COLUMNS[:-1]), ("images", pa.int64())])
DEFAULT_CONFIGURATION = "default"
OUTCOMES = ("normal_ok", "false_alarm", "missed", "exact", "partial", "wrong_class")
"""Per image: normal→normal, normal→anomaly, anomaly→normal, anomaly→the true set, an overlapping
set, a disjoint set."""


@dataclass(frozen=True)
class MetricsTables:
    """Table II (one row per model × method × configuration), per-class scores, confusion pairs."""

    table_ii: pd.DataFrame
    per_class: pd.DataFrame
    confusion: pd.DataFrame


def evaluated_images(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, configuration, scenario, image) with its two label sets."""
    frame = predictions.copy()
    if "configuration" not in frame.columns:
        frame["configuration"] = DEFAULT_CONFIGURATION
    frame["configuration"] = frame["configuration"].fillna(DEFAULT_CONFIGURATION)
    frame = frame.drop_duplicates([*ROW_KEYS, "scenario", "image_id"])
    frame["true_labels"] = [tuple(sorted(labels)) for labels in frame["true_labels"]]
    frame["predicted_labels"] = [tuple(sorted(labels)) for labels in frame["predicted_labels"]]
    columns = [*ROW_KEYS, "scenario", "image_id", "true_labels", "predicted_labels"]
    return frame[columns].sort_values(columns[:5]).reset_index(drop=True)


def compute_metrics(predictions: pd.DataFrame, classes: Mapping[str, Sequence[str]],
                    scenarios: Sequence[str]) -> MetricsTables:
    """All three tables; ``classes``: each scenario's anomaly classes in spec order; ``scenarios``:
    Table II's column order (scenarios found in the data but not listed follow, sorted)."""
    images = evaluated_images(predictions)
    order = list(scenarios) + sorted(set(images["scenario"]) - set(scenarios))
    rows, per_class, confusion = [], [], []
    for key, group in images.groupby(ROW_KEYS, sort=True):
        ident = dict(zip(ROW_KEYS, key, strict=True))
        scores = []
        for scenario in [s for s in order if s in set(group["scenario"])]:
            part = group[group["scenario"] == scenario]
            if scenario not in classes:
                raise ValueError(f"no class list for scenario {scenario!r}")
            score = scenario_scores(scenario, part["true_labels"], part["predicted_labels"], classes[scenario])
            scores.append(score)
            per_class += [{**ident, "scenario": scenario, **c.to_dict(), "in_macro": c.label in score.macro_classes}
                          for c in score.per_class]
            confusion += _confusion_rows(ident, scenario, part)
        rows.append({**ident, **table_ii_row(scores), "scenarios": len(scores), "images": len(group)})
    table_columns = [*ROW_KEYS, *(f"{s}/{m}" for s in [*order, "average"] for m in ("binary_f1", "macro_f1")),
                     *TABLE_II_COUNTS]
    return MetricsTables(
        table_ii=pd.DataFrame(rows).reindex(columns=table_columns),
        per_class=pd.DataFrame(per_class, columns=CLASS_METRIC_COLUMNS),
        confusion=pd.DataFrame(confusion, columns=CONFUSION_COLUMNS),
    )


def _confusion_rows(ident: dict[str, str], scenario: str, images: pd.DataFrame) -> list[dict[str, object]]:
    pairs = images.groupby(["true_labels", "predicted_labels"], sort=True).size()
    return [
        {**ident, "scenario": scenario, "true_labels": _name(true), "predicted_labels": _name(pred),
         "outcome": outcome(true, pred), "images": int(n)}
        for (true, pred), n in pairs.items()
    ]


def _name(labels: Iterable[str]) -> str:
    return " + ".join(labels)


def outcome(true: Iterable[str], predicted: Iterable[str]) -> str:
    """Which of :data:`OUTCOMES` a (true set, predicted set) pair is."""
    true, predicted = set(true), set(predicted)
    if true == {NORMAL}:
        return "normal_ok" if predicted == {NORMAL} else "false_alarm"
    if predicted == {NORMAL}:
        return "missed"
    if predicted == true:
        return "exact"
    return "partial" if predicted & true else "wrong_class"


def confusion_summary(confusion: pd.DataFrame) -> pd.DataFrame:
    """Images per outcome, one row per (model, method, configuration, scenario)."""
    keys = [*ROW_KEYS, "scenario"]
    summary = confusion.pivot_table(index=keys, columns="outcome", values="images", aggfunc="sum", fill_value=0)
    return summary.reindex(columns=list(OUTCOMES), fill_value=0).reset_index().rename_axis(columns=None)


def missing_scenarios(table_ii: pd.DataFrame, scenarios: Sequence[str]) -> dict[str, list[str]]:
    """Per Table II row (``model / method / configuration``): the expected scenarios it lacks."""
    missing = {}
    for row in table_ii.to_dict("records"):
        absent = [s for s in scenarios if pd.isna(row.get(f"{s}/binary_f1"))]
        if absent:
            missing[row_label(row)] = absent
    return missing


def row_label(row: Mapping[str, object]) -> str:
    """``model / method`` (``/ configuration`` unless it is the default)."""
    parts = [str(row["model"]), str(row["method"])]
    if row["configuration"] != DEFAULT_CONFIGURATION:
        parts.append(str(row["configuration"]))
    return " / ".join(parts)

"""How good grounding is, measured against instance annotations in the same object schema.

Boxes are matched per image and label, greedily in order of decreasing score (as COCO does): a
prediction is a true positive when its best still-unmatched true box of the same label overlaps it
with IoU ≥ the threshold. Counts matter on their own (the subqueries ask "how many pushpins?"), so
each image and label also records whether the number of predicted objects equals the true number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from models.objects import box_iou, decode_attributes

QUALITY_VERSION = 1
"""Bump when a quality measure changes for the same inputs (the grounding_quality asset's code version)."""
MATCH_COLUMNS = ["image_id", "scenario", "label", "n_pred", "n_true", "tp", "fp", "fn", "count_correct"]
QUALITY_COLUMNS = [
    "scenario",
    "label",
    "n_images",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "count_accuracy",
]
#: The ``grounding_quality`` table: :func:`measure_quality` on all images, with the count accuracy on
#: normal images beside it.
GROUNDING_QUALITY_COLUMNS = [*QUALITY_COLUMNS, "count_accuracy_normal"]
GROUNDING_QUALITY_SCHEMA = pa.schema([
    ("scenario", pa.string()), ("label", pa.string()), ("n_images", pa.int64()), ("tp", pa.int64()),
    ("fp", pa.int64()), ("fn", pa.int64()), ("precision", pa.float64()), ("recall", pa.float64()),
    ("count_accuracy", pa.float64()), ("count_accuracy_normal", pa.float64()),
])  # fmt: skip
ALL_LABELS = "(all)"


def scenario_of(image_id: str) -> str:
    """The scenario part of an ``image_id`` (``<scenario>/<loco_folder>/<stem>``)."""
    return image_id.split("/", 1)[0]


def _boxes_by_key(df: pd.DataFrame, scored: bool) -> dict[tuple[str, str], list[list[float]]]:
    """Boxes per ``(image_id, label)``, best score first when ``scored``."""
    if scored and "score" in df.columns:
        df = df.sort_values("score", ascending=False, kind="stable")
    grouped: dict[tuple[str, str], list[list[float]]] = {}
    for image_id, label, bbox in zip(df["image_id"], df["label"], df["bbox"], strict=True):
        grouped.setdefault((image_id, label), []).append([float(v) for v in bbox])
    return grouped


def greedy_pairs(
    pred: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], iou: float
) -> list[tuple[int, int]]:
    """``(prediction, truth)`` index pairs matched one-to-one at ``iou``, predictions taken in order (best first)."""
    free = list(range(len(truth)))
    pairs = []
    for i, box in enumerate(pred):
        if not free:
            break
        overlaps = [box_iou(box, truth[j]) for j in free]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou:
            pairs.append((i, free.pop(best)))
    return pairs


def greedy_matches(pred: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], iou: float) -> int:
    """Number of predictions (in the given order, best first) matched one-to-one to true boxes at ``iou``."""
    return len(greedy_pairs(pred, truth, iou))


def match_boxes(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    iou: float = 0.5,
    labels: Iterable[str] | None = None,
    image_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per image and label: predicted and true counts, tp / fp / fn and whether the counts agree.

    ``labels`` (default: every label seen) and ``image_ids`` (default: every image seen in either
    table) fix the rows, so an image where a label is absent on both sides counts as a right count;
    predictions of other labels or images are ignored.
    """
    pred_boxes = _boxes_by_key(pred, scored=True)
    true_boxes = _boxes_by_key(truth, scored=False)
    seen = set(pred_boxes) | set(true_boxes)
    label_list = sorted(set(labels) if labels is not None else {label for _, label in seen})
    id_list = sorted(set(image_ids) if image_ids is not None else {i for i, _ in seen})
    rows = []
    for image_id in id_list:
        for label in label_list:
            p, t = pred_boxes.get((image_id, label), []), true_boxes.get((image_id, label), [])
            tp = greedy_matches(p, t, iou)
            rows.append(
                [
                    image_id,
                    scenario_of(image_id),
                    label,
                    len(p),
                    len(t),
                    tp,
                    len(p) - tp,
                    len(t) - tp,
                    len(p) == len(t),
                ]
            )
    return pd.DataFrame(rows, columns=MATCH_COLUMNS).astype(
        {c: "int64" for c in ("n_pred", "n_true", "tp", "fp", "fn")} | {"count_correct": "bool"}
    )


def _ratio(num: int, den: int) -> float:
    """``num / den``, NaN when undefined (no predictions for precision, no true objects for recall)."""
    return num / den if den else float("nan")


def grounding_quality(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    labels: Iterable[str] | None = None,
    iou: float = 0.5,
    image_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Per scenario × label: tp, fp, fn, precision, recall at ``iou`` and per-image count accuracy.

    Each scenario also gets a row labelled :data:`ALL_LABELS`: pooled tp / fp / fn and the share of
    images where every label's count is right (e.g. 15 pushpins and 1 box).
    """
    matches = match_boxes(pred, truth, iou=iou, labels=labels, image_ids=image_ids)
    rows = []
    for scenario, per_scenario in matches.groupby("scenario", sort=True):
        for label, group in per_scenario.groupby("label", sort=True):
            rows.append(_summary(scenario, label, group["image_id"].nunique(), group, group["count_correct"]))
        all_right = per_scenario.groupby("image_id")["count_correct"].all()
        rows.append(_summary(scenario, ALL_LABELS, len(all_right), per_scenario, all_right))
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def _summary(scenario: str, label: str, n_images: int, group: pd.DataFrame, correct: pd.Series) -> list:
    """One row of :func:`grounding_quality`."""
    tp, fp, fn = (int(group[c].sum()) for c in ("tp", "fp", "fn"))
    return [
        scenario,
        label,
        n_images,
        tp,
        fp,
        fn,
        _ratio(tp, tp + fp),
        _ratio(tp, tp + fn),
        float(correct.mean()),
    ]


ATTRIBUTE_COLUMNS = ["scenario", "label", "attribute", "n_matched", "n_correct", "accuracy"]


def _norm_value(value: object) -> object:
    """Attribute values compared as the spec's measures compare them (case, spaces and hyphens aside)."""
    if isinstance(value, str):
        return value.strip().lower().replace("-", "_").replace(" ", "_")
    return value


def attribute_accuracy(
    pred: pd.DataFrame, truth: pd.DataFrame, attributes: Mapping[str, Sequence[str]], iou: float = 0.5
) -> pd.DataFrame:
    """How often a matched object's attributes equal the true object's, per scenario, label and attribute.

    Objects are matched as in :func:`match_boxes` (same image and label, greedy by score, IoU ≥
    ``iou``); ``attributes`` maps a label to the attribute keys to compare (e.g. ``{"screw":
    ["length_class"]}``). A prediction without the key counts as wrong.
    """
    pred_rows = _attribute_rows(pred, attributes, scored=True)
    true_rows = _attribute_rows(truth, attributes, scored=False)
    tally: dict[tuple[str, str, str], list[int]] = {}
    for key, true_objects in true_rows.items():
        predicted = pred_rows.get(key, [])
        pairs = greedy_pairs([b for b, _ in predicted], [b for b, _ in true_objects], iou)
        for i, j in pairs:
            for name in attributes[key[1]]:
                counts = tally.setdefault((scenario_of(key[0]), key[1], name), [0, 0])
                counts[0] += 1
                got, want = predicted[i][1].get(name), true_objects[j][1].get(name)
                counts[1] += int(name in predicted[i][1] and _norm_value(got) == _norm_value(want))
    rows = [[*k, n, ok, _ratio(ok, n)] for k, (n, ok) in sorted(tally.items())]
    return pd.DataFrame(rows, columns=ATTRIBUTE_COLUMNS)


def _attribute_rows(
    df: pd.DataFrame, attributes: Mapping[str, Sequence[str]], scored: bool
) -> dict[tuple[str, str], list[tuple[list[float], dict]]]:
    """``(box, attributes)`` per ``(image_id, label)`` for the labels of interest, best score first."""
    df = df[df["label"].isin(list(attributes))]
    if scored and "score" in df.columns:
        df = df.sort_values("score", ascending=False, kind="stable")
    grouped: dict[tuple[str, str], list[tuple[list[float], dict]]] = {}
    for image_id, label, bbox, attrs in zip(df["image_id"], df["label"], df["bbox"], df["attributes"], strict=True):
        grouped.setdefault((image_id, label), []).append(([float(v) for v in bbox], decode_attributes(attrs)))
    return grouped

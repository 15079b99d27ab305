"""Evidence reports: one self-contained HTML page per scenario (or per image) from the prediction table.

A reader should see, for each test image, *why* it was classified as it was: the image with the
grounded objects drawn, every subquery with each model's reasoning and parsed answer next to the
reference answer, the classes ``h`` fired with the answers behind them, and the truth. The page
carries its images as ``data:`` URIs and its style inline, so it can be mailed or archived as one
file and opened without network access.

The reference answer of a subquery is the inverse of the true labels refined by the grounded
objects (:func:`models.spec.inverse`), the same source of truth as the training answers; where
the objects contradict the labels it falls back to the labels' canonical answers.

The training-free ``grounded`` method (:mod:`models.evaluation.grounded`) has its own columns like
any model; an answer it did not measure (the normal answer assumed) is marked "not measured".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from models.atomic import write_text_atomic
from models.evaluation.predict import METHODS, image_rows
from models.grounding import draw_overlay
from models.images import image_data_uri, read_rgb
from models.objects import ImageObject, objects_from_frame
from models.spec import ScenarioSpec, format_answer, inverse
from models.spec.metrics import scenario_scores

REPORT_VERSION = 2
"""Bump when the evidence report (this module or its template) changes (the lac_report asset's code version)."""
TEMPLATE = "report.html.jinja"
RAW_EXCERPT = 160
_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html", "jinja"]), trim_blocks=True, lstrip_blocks=True)


def scenario_report(spec: ScenarioSpec, predictions: pd.DataFrame, grounding: pd.DataFrame | None = None, *,
                    image_ids: Sequence[str] | None = None, notes: Iterable[str] = (),
                    max_width: int = 512) -> str:
    """The HTML page of a scenario's test images (all, or ``image_ids`` in that order)."""
    frame = predictions[predictions["scenario"] == spec.scenario]
    if image_ids is not None:
        unknown = sorted(set(image_ids) - set(frame["image_id"]))
        if unknown:
            raise KeyError(f"{spec.scenario}: no predictions for images {unknown}")
        frame = frame[frame["image_id"].isin(set(image_ids))]
    if frame.empty:
        raise ValueError(f"{spec.scenario}: no predictions to report")
    runs = _runs(frame)
    objects = objects_from_frame(grounding) if grounding is not None and not grounding.empty else {}
    order = list(image_ids) if image_ids is not None else sorted(frame["image_id"].unique())
    images = [_image_section(spec, frame[frame["image_id"] == i], runs, objects.get(i, []), max_width)
              for i in order]
    title = f"LogiCls evidence report: {spec.scenario}" + (f" / {order[0]}" if len(order) == 1 else "")
    return _ENV.get_template(TEMPLATE).render(
        title=title,
        subtitle=f"{len(order)} test image(s), {len(spec.subqueries)} subqueries each; "
                 f"models asked in the Fig. 3 in-context format, the grounded method answered from the "
                 f"grounding through the spec's measures; policy for unreadable answers: "
                 f"{', '.join(sorted(frame['unparseable_policy'].unique()))}",
        notes=list(notes),
        summary=[_summary(spec, frame, model, method) for model, method in runs],
        examples=_examples(frame, max_width // 2),
        methods=[method for _, method in runs],
        images=images,
    )


def image_report(spec: ScenarioSpec, predictions: pd.DataFrame, image_id: str,
                 grounding: pd.DataFrame | None = None, **kwargs: Any) -> str:
    """The page of one image (on demand, e.g. for an image a user asks about)."""
    return scenario_report(spec, predictions, grounding, image_ids=[image_id], **kwargs)


def write_html(path: str | Path, html: str) -> Path:
    """Write a report atomically: a reader never sees half a page."""
    return write_text_atomic(path, html)


def image_file_name(image_id: str) -> str:
    """``pushpins/test/good/003`` → ``pushpins__test__good__003.html`` (the design's file-name rule)."""
    return image_id.replace("/", "__") + ".html"


def _runs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, method) pairs, in the order of ``METHODS`` then by name."""
    pairs = frame[["model", "method"]].drop_duplicates().itertuples(index=False, name=None)
    rank = {m: i for i, m in enumerate(METHODS)}
    return sorted(pairs, key=lambda p: (rank.get(p[1], len(rank)), p[1], p[0]))


def _summary(spec: ScenarioSpec, frame: pd.DataFrame, model: str, method: str) -> dict[str, Any]:
    rows = frame[(frame["model"] == model) & (frame["method"] == method)]
    images = image_rows(rows)
    scores = scenario_scores(spec.scenario, images["true_labels"], images["predicted_labels"], spec.class_names)
    exact = [sorted(t) == sorted(p) for t, p in zip(images["true_labels"], images["predicted_labels"], strict=True)]
    return {"model": model, "method": method, "images": len(images), "binary_f1": f"{100 * scores.binary_f1:.2f}",
            "macro_f1": f"{100 * scores.macro_f1:.2f}", "exact": f"{100 * np.mean(exact):.1f} %",
            "parseable": f"{100 * rows['parseable'].mean():.1f} %"}


def _examples(frame: pd.DataFrame, max_width: int) -> list[dict[str, str]]:
    pairs = frame[["example_image_id", "example_image_path"]].dropna().drop_duplicates()
    pairs = pairs.sort_values("example_image_id")
    return [{"image_id": i, "uri": image_data_uri(read_rgb(p), max_width, "jpeg")}
            for i, p in pairs.itertuples(index=False)]


def _image_section(spec: ScenarioSpec, rows: pd.DataFrame, runs: list[tuple[str, str]],
                   objects: list[ImageObject], max_width: int) -> dict[str, Any]:
    first = rows.iloc[0]
    true_labels = sorted(first["true_labels"])
    picture = read_rgb(first["image_path"])
    try:
        picture = draw_overlay(picture, objects)
    except ValueError:  # masks of another size than the file: boxes are still meaningful
        picture = draw_overlay(picture, objects, mask_alpha=0.0)
    reference = _reference_answers(spec, true_labels, objects)
    by_run = {run: rows[(rows["model"] == run[0]) & (rows["method"] == run[1])].set_index("subquery_id")
              for run in runs}
    verdicts = []
    for (model, method), part in by_run.items():
        predicted = sorted(part["predicted_labels"].iloc[0])
        verdicts.append({"model": model, "method": method, "labels": predicted, "correct": predicted == true_labels,
                         "evidence": list(part["evidence_lines"].iloc[0])})
    subqueries = []
    for sub in spec.subqueries:
        answers = [_answer_cell(sub, by_run[run].loc[sub.id], reference.get(sub.id)) for run in runs]
        ref = reference.get(sub.id)
        subqueries.append({"subquery_id": sub.id, "question": sub.text, "answers": answers,
                           "reference": "—" if ref is None else format_answer(sub, ref)})
    return {"image_id": first["image_id"], "anchor": first["image_id"].replace("/", "__"),
            "uri": image_data_uri(picture, max_width, "jpeg"), "n_objects": len(objects), "true_labels": true_labels,
            "verdicts": verdicts, "subqueries": subqueries}


def _reference_answers(spec: ScenarioSpec, labels: list[str], objects: list[ImageObject]) -> dict[str, Any]:
    try:
        return inverse(spec, labels, objects or None).answers
    except ValueError:  # labels the spec does not know: no reference rather than no report
        return {}


def _answer_cell(sub, row: pd.Series, reference: Any) -> dict[str, Any]:
    parseable = bool(row["parseable"])
    value = json.loads(row["answer_value"]) if parseable else None
    think, answer_text = _text(row["think"]), _text(row["answer_text"])
    if think is None and answer_text is None:
        raw = str(row["raw_output"])
        think = f"raw output: {raw[:RAW_EXCERPT]!r}" + ("…" if len(raw) > RAW_EXCERPT else "")
    match_class = "" if reference is None or not parseable else ("match" if value == reference else "mismatch")
    return {"parseable": parseable, "value": format_answer(sub, value) if parseable else None,
            "reason": row["parse_reason"], "think": think, "answer_text": answer_text, "match_class": match_class,
            "not_measured": _not_measured(row.get("measured"))}


def _not_measured(flag: Any) -> bool:
    """A grounded answer no measure gave (``measured`` False; ``None``/NaN for the model methods)."""
    return flag is not None and not pd.isna(flag) and not bool(flag)


def _text(value: Any) -> str | None:
    """A text cell, ``None`` for a missing one (pandas stores missing strings as NaN)."""
    return None if pd.isna(value) else str(value)


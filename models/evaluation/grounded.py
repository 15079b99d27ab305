"""The training-free ``grounded`` method: every subquery answered from the grounding table by its measure.

No model is asked. For each test image the grounded objects (with the attributes the attribute
stage read on them) go through the scenario spec's ``measure`` expressions
(:func:`models.spec.measure`), the same code that gives the training targets their answers; the
reasoning is the chain the training targets carry (:func:`models.instruct.reasoning.think`,
citing boxes), so a grounded reply is exactly the target the fine-tuned model is trained to
write for what grounding sees. The reply is a normal ``<think>…</think><answer>…</answer>``
envelope and goes through :func:`models.evaluation.predict.predict` like any model's: parsed,
``h`` applied, the evidence trail written.

A subquery the objects cannot answer (the spec gives it no measure, or its measure needs
something the objects lack, e.g. no box to divide into cells) takes its normal answer, says so
in its reasoning, and is marked ``measured = False`` in the prediction table; measured answers are
``measured = True``. This is the LogSAD family of methods (few-shot statistics and rules over
segmented objects): a baseline that shows what the rules and the grounding alone reach, and what a
correct evidence trail looks like.

:func:`grounded_answers` is the whole method without Dagster (the ``lac_predictions`` asset,
``python -m pipelines.classify --method grounded`` and benchmarks call it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from models.envelope import format_target
from models.evaluation.predict import build_questions, predict
from models.instruct.reasoning import think
from models.objects import ImageObject, objects_from_frame
from models.spec import ScenarioSpec, UnparseablePolicy, format_answer
from models.spec.inverse import measure_all

GROUNDED = "grounded"
"""The method's name in the ``method`` column (its ``model`` is the grounding backend's name)."""


@dataclass(frozen=True)
class GroundedReply:
    """One subquery answered from one image's objects: the envelope text, and whether a measure gave it."""

    text: str
    measured: bool


def grounded_replies(spec: ScenarioSpec, objects: Sequence[ImageObject]) -> dict[str, GroundedReply]:
    """Subquery id → the reply for one image: the measured answer with the reasoning that cites the
    objects it was measured on, or the normal answer with the reason it is not measured."""
    measured, unmeasured = measure_all(spec, objects)
    replies = {}
    for sub in spec.subqueries:
        if sub.id in measured:
            value, note = measured[sub.id], ""
        else:
            value = sub.normal
            why = unmeasured.get(sub.id, "the spec gives this subquery no measure")
            note = f"The grounded objects do not answer this ({why}), so the normal answer is assumed. "
        reasoning = note + think(spec, sub, value, objects, boxes=True)
        replies[sub.id] = GroundedReply(format_target(reasoning, format_answer(sub, value)), sub.id in measured)
    return replies


def grounded_answers(spec: ScenarioSpec, grounding: pd.DataFrame, images: pd.DataFrame, *,
                     true_labels: Mapping[str, Sequence[str]] | None = None,
                     policy: UnparseablePolicy | str = UnparseablePolicy.NORMAL) -> pd.DataFrame:
    """The ``grounded`` method's prediction rows (``PREDICTION_COLUMNS``) for ``images``.

    ``grounding``: the grounding table (object schema plus ``backend``; any images, those of
    ``images`` are read, an image without a row has no objects); ``images``: ``image_id`` and
    ``image_path`` of the images to classify; ``true_labels``: image id → label set, or ``None``
    for unlabelled images. The ``model`` column names the grounding backend.
    """
    ids = set(images["image_id"])
    rows = grounding[grounding["image_id"].isin(ids)]
    by_image = objects_from_frame(rows) if not rows.empty else {}
    replies = {image_id: grounded_replies(spec, by_image.get(image_id, [])) for image_id in sorted(ids)}
    questions = build_questions(images, spec, examples=None)
    answers = [replies[q.image_id][q.subquery_id] for q in questions]
    return predict(spec, questions, lambda _: [a.text for a in answers], method=GROUNDED,
                   model=backend_name(grounding), true_labels=true_labels, policy=policy,
                   measured=[a.measured for a in answers])


def backend_name(grounding: pd.DataFrame) -> str:
    """The grounding backend's name (``classical``, ``clip_sam``), the grounded rows' ``model``."""
    names = sorted(set(grounding["backend"].dropna())) if "backend" in grounding.columns else []
    return "+".join(names) or "grounding"


def measured_share(table: pd.DataFrame) -> dict[str, Any]:
    """Per subquery, the share of images whose grounded answer was measured (not the assumed normal one)."""
    rows = table[table["method"] == GROUNDED]
    return {str(k): round(float(v), 3) for k, v in rows.groupby("subquery_id")["measured"].mean().items()}

"""LAC inference: every subquery of every test image asked in the Fig. 3 format, parsed, and ``h`` applied.

The question a user asks is "which rule does this image break, and why". For each test image the
scenario's subqueries are asked one by one in the paper's in-context format (system prompt,
subquery, ONE normal training image of the same scenario with its reasoning and answer, the test
image); each reply is parsed with the subquery's parser and the aggregator ``h`` turns the answers
into a label set with its evidence trail.

Who answers is a plain function (:data:`Answerer`: questions in, raw outputs out, same order), so
the fine-tuned model, the same base model without adapter (the in-context baseline), any
OpenAI-compatible vision endpoint, and a scripted stand-in in tests all go through the same
parsing, aggregation and table.

Output table (``PREDICTION_COLUMNS``), one row per (image, subquery, method):

=======================  ==================================================================
``scenario``             the scenario (partition)
``image_id``             ``<scenario>/<loco_folder>/<stem>``
``image_path``           the test image
``model``                who answered: the checkpoint directory's name, or the endpoint's model
``method``               ``finetuned`` (base + LoRA adapter), ``icl`` (base model, in context),
                         ``icl_api`` (an OpenAI-compatible endpoint, in context), ``grounded``
                         (no model: the grounding table through the spec's measures,
                         :mod:`models.evaluation.grounded`; ``model`` is the grounding backend)
``subquery_id``          the subquery
``question``             the subquery's original text (what was asked)
``example_image_id``     the Fig. 3 example (a normal training image; ``None`` for ``grounded``)
``example_image_path``   its file (``None`` for ``grounded``)
``raw_output``           the model's reply, verbatim
``think``                the first ``<think>`` block's content (``None`` without one)
``answer_text``          the first ``<answer>`` block's content outside the reasoning (``None``
                         without one; :func:`models.envelope.split_envelope`)
``answer_value``         the parsed typed value as JSON (``None`` when unparseable)
``parseable``            whether the parser could read the reply
``parse_reason``         why not (``None`` when parseable)
``measured``             ``grounded`` only: whether a measure of the grounded objects gave the
                         answer (False: not measured, the normal answer assumed); ``None`` for
                         the model methods, whose answers are not measured
``true_labels``          per image, repeated: the true label set (sorted; ``["normal"]``)
``predicted_labels``     per image, repeated: ``h``'s label set (sorted; ``["normal"]``)
``evidence``             per image, repeated: JSON list of the fired rules
                         (:meth:`models.spec.Evidence.to_dict`)
``evidence_lines``       per image, repeated: the human-readable trail
                         (:meth:`models.spec.Aggregation.lines`), unreadable answers included
``unparseable_policy``   the policy ``h`` applied to unreadable answers
=======================  ==================================================================

The per-image columns are repeated on each of its rows so that one Parquet file answers both
"what did the model say to this subquery" and "what was the image classified as"; one row per
image and method is ``drop_duplicates(["method", "image_id"])``, from which every metric can be
recomputed with scikit-learn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from models.envelope import format_target, split_envelope
from models.spec import NORMAL, ParsedAnswer, ScenarioSpec, UnparseablePolicy, aggregate, format_answer, parse_answer
from models.vlm.encoding import PromptRequest

PREDICTION_VERSION = 2
"""Bump when predictions change for the same model and questions: prompting, parsing, the aggregation into
label sets (the lac_predictions and lac_ablation assets' code version)."""
METHODS = ("finetuned", "icl", "icl_api", "grounded")

PREDICTION_COLUMNS = [
    "scenario",
    "image_id",
    "image_path",
    "model",
    "method",
    "subquery_id",
    "question",
    "example_image_id",
    "example_image_path",
    "raw_output",
    "think",
    "answer_text",
    "answer_value",
    "parseable",
    "parse_reason",
    "measured",
    "true_labels",
    "predicted_labels",
    "evidence",
    "evidence_lines",
    "unparseable_policy",
]
_TEXT, _LABELS = pa.string(), pa.list_(pa.string())
PREDICTION_SCHEMA = pa.schema([
    *((name, _TEXT) for name in PREDICTION_COLUMNS[:13]),  # scenario … answer_value
    ("parseable", pa.bool_()), ("parse_reason", _TEXT), ("measured", pa.bool_()),
    ("true_labels", _LABELS), ("predicted_labels", _LABELS),
    ("evidence", _TEXT), ("evidence_lines", _LABELS), ("unparseable_policy", _TEXT),
])  # fmt: skip
#: ``lac_ablation``: the prediction columns of every Table III configuration, labelled.
ABLATION_COLUMNS = [*PREDICTION_COLUMNS, "configuration"]
ABLATION_SCHEMA = PREDICTION_SCHEMA.append(pa.field("configuration", _TEXT))

@dataclass(frozen=True)
class ICLExample:
    """Fig. 3's example: a normal training image and its ``<think>…</think><answer>…</answer>``."""

    image_id: str
    image_path: str
    target: str


@dataclass(frozen=True)
class Question:
    """One subquery about one image, with the in-context example that goes with it (``None`` for a
    method that asks no model, ``grounded``)."""

    image_id: str
    image_path: str
    subquery_id: str
    question: str
    example: ICLExample | None

    def request(self) -> PromptRequest:
        """The local model's request (images as paths, so image features can be cached by path)."""
        if self.example is None:
            raise ValueError(f"{self.image_id} {self.subquery_id}: a model's question needs an in-context example")
        return PromptRequest(self.question, self.example.image_path, self.example.target, self.image_path)


Answerer = Callable[[Sequence[Question]], list[str]]
"""Raw replies to ``questions``, in the same order (the model, an endpoint, or a test script)."""


def is_normal(labels: Iterable[str]) -> bool:
    return list(labels) == [NORMAL]


def select_examples(cot: pd.DataFrame, spec: ScenarioSpec,
                    train_image_ids: Iterable[str] | None = None) -> dict[str, ICLExample]:
    """The in-context example of every subquery, chosen from ``cot_dataset`` deterministically.

    Candidates are rows of normal training images (``labels == ["normal"]``, ``image_origin ==
    "original"``, not ``flagged`` where that column exists, and in ``train_image_ids`` when given).
    One image serves every subquery when possible (its features are then computed once, and the
    report shows one example): the first ``image_id`` in sort order that has a row for every
    subquery; otherwise each subquery takes the first image that has one. Among several rows of
    one image and subquery (paraphrased questions) the one asking the original text wins, then the
    smallest ``sample_id``. Raises ``ValueError`` naming the subqueries that have no candidate.
    """
    rows = _example_candidates(cot, spec, train_image_ids)
    missing = sorted(set(spec.subquery_ids) - set(rows["subquery_id"]))
    if missing:
        raise ValueError(
            f"{spec.scenario}: cot_dataset has no row of a normal training image (image_origin original) for "
            f"subqueries {missing}; the Fig. 3 example needs one"
        )
    complete = rows.groupby("image_id")["subquery_id"].nunique()
    complete = complete[complete == len(spec.subquery_ids)]
    if not complete.empty:
        rows = rows[rows["image_id"] == complete.index.min()]
    originals = {s.id: s.text for s in spec.subqueries}
    rows = rows.assign(_paraphrased=[q != originals[s] for q, s in zip(rows["question"], rows["subquery_id"],
                                                                       strict=True)])
    rows = rows.sort_values(["subquery_id", "image_id", "_paraphrased", "sample_id"], kind="stable")
    first = rows.drop_duplicates("subquery_id")
    return {
        r.subquery_id: ICLExample(str(r.image_id), str(r.image_path), str(r.target))
        for r in first.itertuples(index=False)
    }


def normal_answer_examples(spec: ScenarioSpec, image_id: str, image_path: str) -> dict[str, ICLExample]:
    """Fig. 3 examples from a normal image without CoT data: each subquery's normal answer, stated plainly.

    For classifying new images before ``cot_dataset`` exists; the evaluation proper always uses
    ``select_examples`` (the reasoning the model was trained on).
    """
    examples = {}
    for sub in spec.subqueries:
        answer = format_answer(sub, sub.normal)
        think = f"This is a normal {spec.scenario.replace('_', ' ')} image, so the answer is the normal one: {answer}."
        examples[sub.id] = ICLExample(image_id, image_path, format_target(think, answer))
    return examples


def _example_candidates(cot: pd.DataFrame, spec: ScenarioSpec,
                        train_image_ids: Iterable[str] | None) -> pd.DataFrame:
    rows = cot[(cot["scenario"] == spec.scenario) & (cot["image_origin"] == "original")]
    rows = rows[[is_normal(labels) for labels in rows["labels"]]]
    if "flagged" in rows.columns:
        rows = rows[~rows["flagged"].fillna(False).astype(bool)]
    if train_image_ids is not None:
        rows = rows[rows["image_id"].isin(set(train_image_ids))]
    return rows.assign(sample_id=rows["sample_id"].astype(str))


def build_questions(test_images: pd.DataFrame, spec: ScenarioSpec,
                    examples: Mapping[str, ICLExample] | None) -> list[Question]:
    """Every subquery (original text, spec order) of every test image, grouped by image; ``examples``
    ``None`` for a method that asks no model.

    Grouping by image matters for speed: consecutive requests share the test image, whose vision
    features are then computed once (``generate_with_image_cache``).
    """
    questions = []
    for image in test_images.sort_values("image_id").itertuples(index=False):
        for sub in spec.subqueries:
            questions.append(Question(str(image.image_id), str(image.image_path), sub.id, sub.text,
                                      None if examples is None else examples[sub.id]))
    return questions


def predict(spec: ScenarioSpec, questions: Sequence[Question], answerer: Answerer, *, method: str, model: str,
            true_labels: Mapping[str, Sequence[str]] | None,
            policy: UnparseablePolicy | str = UnparseablePolicy.NORMAL,
            measured: Sequence[bool] | None = None) -> pd.DataFrame:
    """Ask ``answerer``, parse every reply, apply ``h`` per image; rows of ``PREDICTION_COLUMNS``.

    ``true_labels`` is ``None`` for new images nobody has labelled (the column is then empty);
    ``measured``, per question, whether a measure gave the reply (the ``grounded`` method; ``None``:
    not applicable, the ``measured`` column is empty).
    """
    outputs = answerer(questions)
    if len(outputs) != len(questions):
        raise ValueError(f"{method}: {len(outputs)} replies to {len(questions)} questions")
    if measured is not None and len(measured) != len(questions):
        raise ValueError(f"{method}: {len(measured)} measured flags for {len(questions)} questions")
    policy = UnparseablePolicy(policy)
    parsed = [parse_answer(spec.subquery(q.subquery_id), text) for q, text in zip(questions, outputs, strict=True)]
    per_image: dict[str, dict[str, ParsedAnswer]] = {}
    for question, answer in zip(questions, parsed, strict=True):
        per_image.setdefault(question.image_id, {})[question.subquery_id] = answer
    verdicts = {image_id: aggregate(spec, answers, policy) for image_id, answers in per_image.items()}
    rows = []
    flags = [None] * len(questions) if measured is None else list(measured)
    for question, text, answer, flag in zip(questions, outputs, parsed, flags, strict=True):
        verdict, envelope, example = verdicts[question.image_id], split_envelope(text), question.example
        rows.append({
            "scenario": spec.scenario,
            "image_id": question.image_id,
            "image_path": question.image_path,
            "model": model,
            "method": method,
            "subquery_id": question.subquery_id,
            "question": question.question,
            "example_image_id": None if example is None else example.image_id,
            "example_image_path": None if example is None else example.image_path,
            "raw_output": text,
            "think": envelope.think,
            "answer_text": envelope.answer,
            "answer_value": json.dumps(answer.value) if answer.ok else None,
            "parseable": answer.ok,
            "parse_reason": answer.reason,
            "measured": None if flag is None else bool(flag),
            "true_labels": None if true_labels is None else sorted(true_labels[question.image_id]),
            "predicted_labels": sorted(verdict.labels),
            "evidence": json.dumps([e.to_dict() for e in verdict.evidence]),
            "evidence_lines": verdict.lines(),
            "unparseable_policy": policy.value,
        })
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def image_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, image): the per-image columns of the prediction table."""
    keys = [c for c in ("configuration", "model", "method", "image_id") if c in predictions.columns]
    columns = [*keys, "scenario", "image_path", "true_labels", "predicted_labels", "evidence", "evidence_lines"]
    return predictions.drop_duplicates(keys)[columns].reset_index(drop=True)


def parse_rate(predictions: pd.DataFrame) -> dict[str, float]:
    """Share of parseable replies per method."""
    return {str(k): float(v) for k, v in predictions.groupby("method")["parseable"].mean().items()}


"""The inverse of ``h``: the true answer of every subquery for a label set (and the image's objects).

Instruction data needs, for every training image, the true answer to each subquery. The labels
give most of it: every subquery keeps its normal answer except those a class declares under
``answers`` in the spec (``1_missing_nut`` → ``nuts: 1``). Answers that depend on *where* things
are (which cell of the pushpin box is empty, how many clamps the connectors have) cannot come
from the label alone: without objects the spec's declared answer is a deterministic canonical
choice; with objects, every subquery that has a ``measure`` is computed from them.

Grounding and labels are then reconciled: the measured answers replace the label answers when
``h`` gives exactly the labels on the result; otherwise the label answers are kept and every
disagreement is reported in ``contradictions`` (a normal pushpins image where grounding finds
14 pins). The CoT builder keeps or drops such rows by its own policy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.objects import ImageObject
from models.spec.aggregate import aggregate
from models.spec.expressions import Expression, ExpressionLimitError
from models.spec.measures import NotMeasurable, measure_functions
from models.spec.parsing import format_answer
from models.spec.schema import NORMAL, ScenarioSpec


@dataclass(frozen=True)
class InverseResult:
    """True answers for a label set; ``consistent`` is False when anything contradicts them."""

    answers: dict[str, Any]
    consistent: bool
    contradictions: tuple[str, ...] = ()
    measured: dict[str, Any] = field(default_factory=dict)
    unmeasured: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answers": copy.deepcopy(self.answers),
            "consistent": self.consistent,
            "contradictions": list(self.contradictions),
            "measured": copy.deepcopy(self.measured),
            "unmeasured": dict(self.unmeasured),
        }


def check_labels(spec: ScenarioSpec, labels: Iterable[str]) -> frozenset[str]:
    """``labels`` as a frozenset, or ``ValueError``: unknown classes, empty, or normal with a class."""
    if isinstance(labels, str):
        raise ValueError(f"{spec.scenario}: expected a collection of labels, got the string {labels!r}")
    result = frozenset(labels)
    known = {NORMAL, *spec.class_names}
    unknown = sorted(result - known)
    if unknown:
        raise ValueError(
            f"{spec.scenario}: unknown labels {unknown}; expected 'normal' or {spec.class_names}"
        )
    if not result:
        raise ValueError(f"{spec.scenario}: empty label set; a normal image is {{'normal'}}")
    if NORMAL in result and len(result) > 1:
        raise ValueError(
            f"{spec.scenario}: 'normal' cannot be combined with anomaly classes {sorted(result)}"
        )
    return result


def label_answers(spec: ScenarioSpec, labels: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """Normal answers overlaid with every class's declared answers, and the conflicts met."""
    answers = spec.normal_answers()
    set_by: dict[str, str] = {}
    conflicts = []
    for label in sorted(check_labels(spec, labels) - {NORMAL}):
        for sid, value in spec.class_spec(label).answers.items():
            value = spec.subquery(sid).check_value(value)
            if sid in set_by and answers[sid] != value:
                conflicts.append(
                    f"{set_by[sid]} and {label} need different answers to {sid} "
                    f"({_fmt(spec, sid, answers[sid])} vs {_fmt(spec, sid, value)}); kept the first"
                )
                continue
            answers[sid] = copy.deepcopy(value)
            set_by[sid] = label
    return answers, conflicts


def measure_all(spec: ScenarioSpec, objects: Sequence[ImageObject]) -> tuple[dict[str, Any], dict[str, str]]:
    """Answers computed from objects alone, and why the other measured subqueries have none.

    A subquery's measures are tried in order; the first that gives a value of the right type wins.
    """
    functions = measure_functions(objects)
    measured: dict[str, Any] = {}
    unmeasured: dict[str, str] = {}
    for sid, expressions in spec.measures.items():
        reasons = []
        for expression in expressions:
            try:
                measured[sid] = _measure_one(spec, sid, expression, functions)
                break
            except NotMeasurable as exc:
                reasons.append(str(exc))
        else:
            unmeasured[sid] = "; ".join(reasons)
    return measured, unmeasured


def _measure_one(spec: ScenarioSpec, sid: str, expression: Expression, functions: dict[str, Any]) -> Any:
    """One measure's value; an expression that fails on these objects (``max`` of nothing) is
    recorded as not measurable with its error, so one odd image does not stop a whole data set.
    A measure over the expression limits is a mistake of the spec, not of the image: it stops."""
    try:
        value = expression.evaluate({}, functions)
    except NotMeasurable:
        raise
    except ExpressionLimitError as exc:
        raise ExpressionLimitError(
            f"{spec.scenario} subqueries ({sid}).measure {expression.source!r}: {exc} "
            "(see 'Limits' in docs/scenario_specs.md)"
        ) from None
    except Exception as exc:
        raise NotMeasurable(f"{expression.source!r} raised {type(exc).__name__}: {exc}") from exc
    if value is None:
        raise NotMeasurable("the measure gave no value")
    try:
        return spec.subquery(sid).check_value(value)
    except ValueError as exc:
        raise NotMeasurable(f"measured value does not fit: {exc}") from None


def measure(spec: ScenarioSpec, objects: Sequence[ImageObject]) -> dict[str, Any]:
    """Subquery id → answer computed from the objects, for the subqueries that can be measured."""
    return measure_all(spec, objects)[0]


def inverse(
    spec: ScenarioSpec, labels: Iterable[str], objects: Sequence[ImageObject] | None = None
) -> InverseResult:
    """The true answer of every subquery for ``labels`` (see the module docstring)."""
    labels = check_labels(spec, labels)
    answers, contradictions = label_answers(spec, labels)
    reached = aggregate(spec, answers, policy="error").labels
    if reached != labels:
        contradictions.append(f"h gives {_set(reached)} on the label answers, not {_set(labels)}")
    if objects is None:
        return InverseResult(answers, not contradictions, tuple(contradictions))
    measured, unmeasured = measure_all(spec, objects)
    candidate = {**answers, **copy.deepcopy(measured)}
    grounded = aggregate(spec, candidate, policy="error").labels
    if grounded == labels:
        # The objects settle what the labels leave open (and any conflict between classes).
        return InverseResult(candidate, True, (), measured, unmeasured)
    contradictions += [
        f"{sid}: objects give {_fmt(spec, sid, value)}, the labels give {_fmt(spec, sid, answers[sid])}"
        for sid, value in measured.items()
        if value != answers[sid]
    ]
    contradictions.append(f"h gives {_set(grounded)} on the measured answers, not {_set(labels)}")
    return InverseResult(answers, False, tuple(contradictions), measured, unmeasured)


def contradictions(spec: ScenarioSpec, labels: Iterable[str], objects: Sequence[ImageObject]) -> list[str]:
    """What contradicts ``labels`` among the objects' measured answers (empty when they agree)."""
    return list(inverse(spec, labels, objects).contradictions)


def _fmt(spec: ScenarioSpec, sid: str, value: Any) -> str:
    return format_answer(spec.subquery(sid), value)


def _set(labels: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(labels)) + "}"

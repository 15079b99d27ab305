"""The aggregator ``h``: subquery answers → the set of violated classes, with an evidence trail.

Every rule of the spec whose expression holds fires its class; no rule firing means
``{"normal"}``. Each firing is recorded as :class:`Evidence` (the class, the rule, the answers it
read), so a report can say *which answers made this image a ``missing_pushpin``*.

Unparseable answers
-------------------
Answers may be typed values or :class:`~models.spec.parsing.ParsedAnswer` objects; an answer
that is missing, ``None`` or a failed parse is *unparseable*. Every unparseable answer is listed
in :attr:`Aggregation.unparseable` with its reason, whatever the policy. The policy decides what
the rules see:

* ``normal`` (default): the subquery's normal answer is assumed, so it fires nothing on its own,
  and rules that combine it with other answers still work; evidence that relied on an assumed
  answer names it in :attr:`Evidence.assumed`. This mirrors how an inspector treats a question
  left unanswered: no evidence of a violation.
* ``ignore``: rules that read an unparseable answer are not evaluated (listed in
  :attr:`Aggregation.skipped`).
* ``error``: raise :class:`UnparseableAnswerError` (for data that must be complete, such as
  training answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from models.spec.expressions import ExpressionLimitError
from models.spec.functions import RULE_FUNCTIONS
from models.spec.parsing import ParsedAnswer, format_answer
from models.spec.schema import NORMAL, CompiledRule, ScenarioSpec


class UnparseablePolicy(StrEnum):
    """How :func:`aggregate` treats unparseable answers (see the module docstring)."""

    NORMAL = "normal"
    IGNORE = "ignore"
    ERROR = "error"


DEFAULT_POLICY = UnparseablePolicy.NORMAL


class UnparseableAnswerError(ValueError):
    """Raised under the ``error`` policy when an answer could not be read."""


@dataclass(frozen=True)
class Evidence:
    """One rule that fired: its class, its expression and the answers it read."""

    label: str
    rule: str
    values: dict[str, Any]
    formatted: dict[str, str]
    explanation: str = ""
    assumed: tuple[str, ...] = ()
    rule_index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rule": self.rule,
            "rule_index": self.rule_index,
            "explanation": self.explanation,
            "values": dict(self.values),
            "assumed": list(self.assumed),
            "text": self.text(),
        }

    def text(self) -> str:
        """``missing_pushpin: a compartment is empty (row_3 = [1, 1, 1, 1, 0]; rule: …)``."""
        values = "; ".join(f"{k} = {v}" for k, v in self.formatted.items())
        why = f"{self.explanation} " if self.explanation else ""
        assumed = f"; assumed normal: {', '.join(self.assumed)}" if self.assumed else ""
        return f"{self.label}: {why}({values}; rule: {self.rule}{assumed})"


@dataclass(frozen=True)
class Aggregation:
    """The result of ``h``: labels, the evidence trail, and what could not be read."""

    scenario: str
    labels: frozenset[str]
    evidence: tuple[Evidence, ...]
    unparseable: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    policy: str = DEFAULT_POLICY.value

    @property
    def is_normal(self) -> bool:
        return self.labels == frozenset({NORMAL})

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "labels": sorted(self.labels),
            "evidence": [e.to_dict() for e in self.evidence],
            "unparseable": dict(self.unparseable),
            "skipped": list(self.skipped),
            "policy": self.policy,
        }

    def lines(self) -> list[str]:
        """One human-readable line per fired rule, per unreadable answer and per skipped rule."""
        out = [e.text() for e in self.evidence] or ["normal: no rule fired"]
        out += [f"unparseable {sid}: {reason}" for sid, reason in self.unparseable.items()]
        return out + list(self.skipped)


def aggregate(
    spec: ScenarioSpec,
    answers: Mapping[str, Any],
    policy: UnparseablePolicy | str = DEFAULT_POLICY,
) -> Aggregation:
    """Apply the scenario's rules to ``answers`` (subquery id → typed value or ParsedAnswer)."""
    policy = UnparseablePolicy(policy)
    values, unparseable = read_answers(spec, answers)
    if unparseable and policy is UnparseablePolicy.ERROR:
        detail = "; ".join(f"{k}: {v}" for k, v in unparseable.items())
        raise UnparseableAnswerError(f"{spec.scenario}: unparseable answers ({detail})")
    normal = spec.normal_answers()
    env = {sid: values.get(sid, normal[sid]) for sid in spec.subquery_ids}
    evidence: list[Evidence] = []
    skipped: list[str] = []
    for rule in spec.compiled_rules:
        unread = sorted(rule.expression.names & unparseable.keys())
        if unread and policy is UnparseablePolicy.IGNORE:
            skipped.append(f"skipped rule {rule.index} ({rule.label}): unparseable {', '.join(unread)}")
            continue
        if _holds(spec, rule, env):
            evidence.append(_evidence(spec, rule, env, tuple(unread)))
    labels = frozenset(e.label for e in evidence) or frozenset({NORMAL})
    return Aggregation(spec.scenario, labels, tuple(evidence), unparseable, tuple(skipped), policy.value)


def read_answers(spec: ScenarioSpec, answers: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values of the readable answers, and the reason for every unreadable one.

    Raises ``ValueError`` for an unknown subquery id or a typed value of the wrong type: those
    are bugs of the caller, not model output.
    """
    unknown = sorted(set(answers) - set(spec.subquery_ids))
    if unknown:
        raise ValueError(f"{spec.scenario}: unknown subqueries {unknown}; expected {spec.subquery_ids}")
    values: dict[str, Any] = {}
    unparseable: dict[str, str] = {}
    for sub in spec.subqueries:
        answer = answers.get(sub.id)
        if answer is None:
            unparseable[sub.id] = "no answer given"
        elif isinstance(answer, ParsedAnswer) and not answer.ok:
            unparseable[sub.id] = answer.reason or "unparseable"
        else:
            raw = answer.value if isinstance(answer, ParsedAnswer) else answer
            try:
                values[sub.id] = sub.check_value(raw)
            except ValueError as exc:
                raise ValueError(f"{spec.scenario}: answer to {sub.id}: {exc}") from None
    return values, unparseable


def _holds(spec: ScenarioSpec, rule: CompiledRule, env: dict[str, Any]) -> bool:
    where = f"{spec.scenario} rules[{rule.index}] ({rule.label})"
    try:
        result = rule.expression.evaluate(env, RULE_FUNCTIONS)
    except ExpressionLimitError as exc:
        raise ExpressionLimitError(
            f"{where}: {rule.expression.source!r}: {exc} (see 'Limits' in docs/scenario_specs.md)"
        ) from None
    except Exception as exc:
        raise ValueError(
            f"{where}: evaluating {rule.expression.source!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(result, bool):
        raise ValueError(f"{where}: {rule.expression.source!r} gave {result!r}, expected True or False")
    return result


def _evidence(
    spec: ScenarioSpec, rule: CompiledRule, env: dict[str, Any], assumed: tuple[str, ...]
) -> Evidence:
    read = [sid for sid in spec.subquery_ids if sid in rule.expression.names]
    return Evidence(
        label=rule.label,
        rule=rule.expression.source,
        values={sid: env[sid] for sid in read},
        formatted={sid: format_answer(spec.subquery(sid), env[sid]) for sid in read},
        explanation=rule.explanation,
        assumed=assumed,
        rule_index=rule.index,
    )

"""The scenario spec: objects, subqueries, classes and the rules between them (pydantic v2).

A spec is the whole logical knowledge of one product line, so that adding a product takes a YAML
file and no code. The models check structure (pydantic) and then meaning (every reference
resolves, every normal answer has its subquery's type, every expression compiles); what is
wrong is collected as ``(field, message)`` pairs so one error lists all problems of a file.
The semantic round trip (each class recognised from its own answers) needs the aggregator and
is checked by :mod:`models.spec.loader`.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from models.spec.expressions import Expression, ExpressionError, compile_expression, is_valid_identifier
from models.spec.functions import RULE_FUNCTIONS
from models.spec.measures import MEASURE_FUNCTION_NAMES, OBJECT_ARGUMENTS, attribute_reads

AnswerType = Literal["integer", "boolean", "choice", "int_list"]
ReasoningType = Literal["counting", "direction", "distance", "size", "other"]
NORMAL = "normal"

_NAME = r"^[a-z][a-z0-9_]*$"


class SpecError(ValueError):
    """A scenario spec that cannot be used; names the file and every (field, problem)."""

    def __init__(self, source: str | None, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source or "<spec>"
        self.problems = list(problems)
        lines = "\n".join(f"  - {field}: {message}" for field, message in self.problems)
        super().__init__(f"{self.source}: invalid scenario spec\n{lines}")

    @property
    def summary(self) -> str:
        """The file and every (field: problem) on one line, for a log line or a command's error."""
        problems = "; ".join(f"{field}: {message}" for field, message in self.problems)
        return " ".join(f"{self.source}: invalid scenario spec: {problems}".split())


class SpecProblems(Exception):
    """Raised inside validation so that pydantic passes it through; the loader adds the file name."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ObjectSpec(_Model):
    """An object kind of the scene: its name (grounding labels), words for CLIP, hints.

    ``attributes`` names what grounding must write on each of these objects besides its mask (the
    keys the measures read, e.g. a connector's ``clamps``); ``within`` names the object it lies in
    or on, against which its position attributes (a cell, a fill level, centred) are measured.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9 _-]*$")
    words: list[str] = Field(min_length=1)
    colour: str | None = None
    shape: str | None = None
    normal_count: int | None = Field(default=None, ge=0)
    countable: bool = True
    description: str = ""
    attributes: list[str] = Field(default_factory=list)
    within: str | None = None


class SubquerySpec(_Model):
    """One atomic, verifiable question with its answer type and the answer of a normal image."""

    id: str = Field(pattern=_NAME)
    text: str = Field(min_length=1)
    answer_type: AnswerType
    reasoning_type: ReasoningType
    normal: Any
    choices: list[str] | None = None
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    length: int | None = Field(default=None, ge=1)
    objects: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    measure: str | list[str] | None = None

    def check_value(self, value: Any) -> Any:
        """``value`` in this subquery's canonical type, or ``ValueError`` saying what was expected."""
        if self.answer_type == "boolean":
            if not isinstance(value, bool):
                raise ValueError(f"expected yes/no (a boolean), got {value!r}")
            return value
        if self.answer_type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected an integer, got {value!r}")
            return value
        if self.answer_type == "choice":
            choices = self.choices or []
            if value not in choices:
                raise ValueError(f"expected one of {choices}, got {value!r}")
            return value
        if (
            not isinstance(value, list | tuple)
            or len(value) != self.length
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
        ):
            raise ValueError(f"expected a list of {self.length} integers, got {value!r}")
        return list(value)


class ClassSpec(_Model):
    """An anomaly class and the answers that differ from normal in an image of it (the inverse)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$")
    description: str = ""
    answers: dict[str, Any]


class RuleSpec(_Model):
    """``class`` fires when the boolean expression ``when`` over the subquery answers holds."""

    class_: str = Field(alias="class")
    when: str
    explanation: str = ""


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its compiled expression and its position in the spec (for messages)."""

    index: int
    label: str
    expression: Expression
    explanation: str


class ScenarioSpec(_Model):
    """A whole scenario: use :func:`models.spec.loader.load_spec` / ``spec_from_dict`` to build one."""

    scenario: str = Field(pattern=_NAME)
    description: str
    overrides: bool = False
    objects: list[ObjectSpec] = Field(min_length=1)
    subqueries: list[SubquerySpec] = Field(min_length=1)
    classes: list[ClassSpec] = Field(min_length=1)
    rules: list[RuleSpec] = Field(min_length=1)
    combinations: list[list[str]] = Field(default_factory=list)

    _rules: tuple[CompiledRule, ...] = PrivateAttr(default=())
    _measures: dict[str, tuple[Expression, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _semantics(self) -> ScenarioSpec:
        problems = _Checker(self).run()
        if problems:
            raise SpecProblems(problems)
        return self

    # --- lookups ---------------------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        """The anomaly classes, in spec order (``normal`` is not one of them)."""
        return [c.name for c in self.classes]

    @property
    def subquery_ids(self) -> list[str]:
        return [s.id for s in self.subqueries]

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    @property
    def compiled_rules(self) -> tuple[CompiledRule, ...]:
        return self._rules

    @property
    def measures(self) -> dict[str, tuple[Expression, ...]]:
        """Compiled ``measure`` expressions by subquery id, in fallback order (absent: no measure)."""
        return dict(self._measures)

    def subquery(self, subquery_id: str) -> SubquerySpec:
        for sub in self.subqueries:
            if sub.id == subquery_id:
                return sub
        raise KeyError(
            f"scenario {self.scenario!r} has no subquery {subquery_id!r} (has {self.subquery_ids})"
        )

    def class_spec(self, name: str) -> ClassSpec:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(f"scenario {self.scenario!r} has no class {name!r} (has {self.class_names})")

    def normal_answers(self) -> dict[str, Any]:
        """A fresh dict of every subquery's normal answer."""
        return {s.id: copy.deepcopy(s.normal) for s in self.subqueries}

    def object(self, name: str) -> ObjectSpec:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"scenario {self.scenario!r} has no object {name!r} (has {self.object_names})")

    def attribute_reads(self) -> dict[str, list[tuple[str, str]]]:
        """Subquery id → the ``(object, attribute)`` pairs its measures read, in order, without repeats."""
        reads: dict[str, list[tuple[str, str]]] = {}
        for sub in self.subqueries:
            sources = [sub.measure] if isinstance(sub.measure, str) else list(sub.measure or [])
            pairs = [pair for source in sources for pair in attribute_reads(source)]
            if pairs:
                reads[sub.id] = list(dict.fromkeys(pairs))
        return reads


def subquery_field(spec: ScenarioSpec, index: int) -> str:
    """``subqueries[3] (washers)``: a field path that a person can find in the file."""
    return f"subqueries[{index}] ({spec.subqueries[index].id})"


class _Checker:
    """Collects the semantic problems of a structurally valid spec."""

    def __init__(self, spec: ScenarioSpec) -> None:
        self.spec = spec
        self.problems: list[tuple[str, str]] = []

    def run(self) -> list[tuple[str, str]]:
        self._duplicates("objects", self.spec.object_names, "object name")
        self._duplicates("subqueries", self.spec.subquery_ids, "subquery id")
        self._duplicates("classes", self.spec.class_names, "class name")
        for i, obj in enumerate(self.spec.objects):
            self._object(i, obj)
        for i, sub in enumerate(self.spec.subqueries):
            self._subquery(i, sub)
        for i, cls in enumerate(self.spec.classes):
            self._class(i, cls)
        self._rules()
        self._combinations()
        return self.problems

    def _add(self, field: str, message: str) -> None:
        self.problems.append((field, message))

    def _duplicates(self, field: str, names: list[str], what: str) -> None:
        for name, n in Counter(names).items():
            if n > 1:
                self._add(field, f"duplicate {what} {name!r} ({n} times); each must be unique")

    def _object(self, i: int, obj: ObjectSpec) -> None:
        where = f"objects[{i}] ({obj.name})"
        for name in obj.attributes:
            if not re.fullmatch(_NAME, name):
                self._add(f"{where}.attributes", f"{name!r} is not an attribute name ({_NAME})")
        self._duplicates(f"{where}.attributes", obj.attributes, "attribute")
        if obj.within is not None and (obj.within == obj.name or obj.within not in self.spec.object_names):
            others = [n for n in self.spec.object_names if n != obj.name]
            self._add(f"{where}.within", f"must name another object of the spec {others}, got {obj.within!r}")

    def _subquery(self, i: int, sub: SubquerySpec) -> None:
        where = subquery_field(self.spec, i)
        if not is_valid_identifier(sub.id) or sub.id in RULE_FUNCTIONS:
            self._add(
                f"{where}.id", f"{sub.id!r} cannot be used in rule expressions (a keyword or function name)"
            )
        self._type_fields(where, sub)
        try:
            sub.check_value(sub.normal)
        except ValueError as exc:
            self._add(f"{where}.normal", f"{exc} for answer_type {sub.answer_type}")
        for name in sub.objects:
            if name not in self.spec.object_names:
                self._add(
                    f"{where}.objects", f"unknown object {name!r}; expected one of {self.spec.object_names}"
                )
        if sub.measure is not None:
            self._measure(where, sub)

    def _type_fields(self, where: str, sub: SubquerySpec) -> None:
        """``choices``/``synonyms`` belong to choice answers, ``length`` to int_list answers."""
        if sub.answer_type == "choice":
            choices = sub.choices or []
            if len(choices) < 2 or any(c != c.strip().lower() or not c for c in choices):
                self._add(
                    f"{where}.choices", "expected at least two lower-case choices for answer_type choice"
                )
            elif len(set(choices)) != len(choices):
                self._add(f"{where}.choices", f"duplicate choices in {choices}")
            for key in sub.synonyms:
                if key not in choices:
                    self._add(f"{where}.synonyms", f"{key!r} is not one of the choices {choices}")
        else:
            for name in ("choices", "synonyms"):
                if getattr(sub, name):
                    self._add(f"{where}.{name}", f"only answer_type choice takes {name}")
        if sub.answer_type == "int_list" and sub.length is None:
            self._add(
                f"{where}.length", "expected the list length (an integer >= 1) for answer_type int_list"
            )
        if sub.answer_type != "int_list" and sub.length is not None:
            self._add(f"{where}.length", "only answer_type int_list takes a length")

    def _measure(self, where: str, sub: SubquerySpec) -> None:
        """Compile the measure (or the list of fallbacks, tried in order) and check object names."""
        sources = [sub.measure] if isinstance(sub.measure, str) else list(sub.measure or [])
        if not sources:
            self._add(f"{where}.measure", "expected an expression or a non-empty list of expressions")
        compiled = []
        for k, source in enumerate(sources):
            field = f"{where}.measure" if isinstance(sub.measure, str) else f"{where}.measure[{k}]"
            try:
                expression = compile_expression(source, variables=(), functions=MEASURE_FUNCTION_NAMES)
            except ExpressionError as exc:
                self._add(field, str(exc))
                continue
            self._object_arguments(field, expression)
            self._attribute_arguments(field, source)
            compiled.append(expression)
        self.spec._measures[sub.id] = tuple(compiled)

    def _object_arguments(self, field: str, expression: Expression) -> None:
        for func, args in expression.calls:
            for position in OBJECT_ARGUMENTS.get(func, ()):
                value = args[position] if position < len(args) else None
                names = value if isinstance(value, list | tuple) else [value]
                for name in names:
                    if name not in self.spec.object_names:
                        self._add(
                            field,
                            f"{func}() argument {position + 1} must name an object of the spec "
                            f"{self.spec.object_names}, got {name!r}",
                        )

    def _attribute_arguments(self, field: str, source: str) -> None:
        """Every attribute a measure reads must be declared by the object it reads it from, so that
        grounding can be checked before any image for whether it writes it."""
        declared = {o.name: o.attributes for o in self.spec.objects}
        for label, key in attribute_reads(source):
            if label in declared and key not in declared[label]:
                index = self.spec.object_names.index(label)
                self._add(
                    field,
                    f"reads attribute {key!r} of {label!r}, which objects[{index}] ({label}).attributes does not "
                    f"declare (declared: {declared[label]})",
                )

    def _class(self, i: int, cls: ClassSpec) -> None:
        where = f"classes[{i}] ({cls.name})"
        if cls.name == NORMAL:
            self._add(f"{where}.name", "'normal' is implicit and cannot be a class")
        if not cls.answers:
            self._add(f"{where}.answers", "expected at least one subquery answer that differs from normal")
        for sid, value in cls.answers.items():
            if sid not in self.spec.subquery_ids:
                self._add(
                    f"{where}.answers", f"unknown subquery {sid!r}; expected one of {self.spec.subquery_ids}"
                )
                continue
            try:
                self.spec.subquery(sid).check_value(value)
            except ValueError as exc:
                self._add(f"{where}.answers.{sid}", str(exc))

    def _rules(self) -> None:
        compiled = []
        functions = frozenset(RULE_FUNCTIONS)
        for i, rule in enumerate(self.spec.rules):
            where = f"rules[{i}] ({rule.class_})"
            if rule.class_ not in self.spec.class_names:
                self._add(
                    f"{where}.class",
                    f"unknown class {rule.class_!r}; expected one of {self.spec.class_names}",
                )
            try:
                expression = compile_expression(
                    rule.when, variables=self.spec.subquery_ids, functions=functions
                )
            except ExpressionError as exc:
                self._add(f"{where}.when", str(exc))
                continue
            compiled.append(CompiledRule(i, rule.class_, expression, rule.explanation))
        ruled = {r.class_ for r in self.spec.rules}
        for i, name in enumerate(self.spec.class_names):
            if name not in ruled:
                self._add(f"classes[{i}] ({name})", "no rule fires this class; add one under rules")
        self.spec._rules = tuple(compiled)

    def _combinations(self) -> None:
        for i, combo in enumerate(self.spec.combinations):
            unknown = [c for c in combo if c not in self.spec.class_names]
            if unknown:
                self._add(f"combinations[{i}]", f"unknown classes {unknown}; expected names from classes")
            if len(set(combo)) < 2 or len(set(combo)) != len(combo):
                self._add(f"combinations[{i}]", f"expected at least two different classes, got {combo}")

"""Constraint decomposition: scenario specs, subqueries, the aggregator ``h``, parsing, the inverse.

The public API in one place; see ``docs/scenario_specs.md`` for the spec format.
"""

from models.spec.aggregate import (
    DEFAULT_POLICY,
    Aggregation,
    Evidence,
    UnparseableAnswerError,
    UnparseablePolicy,
    aggregate,
)
from models.spec.invariants import missing_invariants, paraphrase_invariants
from models.spec.inverse import InverseResult, contradictions, inverse, measure
from models.spec.loader import (
    SHIPPED_SCENARIOS,
    ScenarioCatalog,
    SkippedSpec,
    get_spec,
    load_catalog,
    load_spec,
    load_specs,
    shipped_specs,
    spec_from_dict,
)
from models.spec.parsing import ParsedAnswer, answer_matches, format_answer, parse_answer
from models.spec.schema import NORMAL, ClassSpec, ObjectSpec, ScenarioSpec, SpecError, SubquerySpec

__all__ = [
    "DEFAULT_POLICY",
    "NORMAL",
    "SHIPPED_SCENARIOS",
    "Aggregation",
    "ClassSpec",
    "Evidence",
    "InverseResult",
    "ObjectSpec",
    "ParsedAnswer",
    "ScenarioCatalog",
    "ScenarioSpec",
    "SkippedSpec",
    "SpecError",
    "SubquerySpec",
    "UnparseableAnswerError",
    "UnparseablePolicy",
    "aggregate",
    "answer_matches",
    "contradictions",
    "format_answer",
    "get_spec",
    "inverse",
    "load_catalog",
    "load_spec",
    "load_specs",
    "measure",
    "missing_invariants",
    "paraphrase_invariants",
    "parse_answer",
    "shipped_specs",
    "spec_from_dict",
]

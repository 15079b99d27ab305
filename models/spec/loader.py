"""Loading scenario specs: the five shipped ones and a user directory of ``*.yaml`` files.

The problems of a spec file are reported together as one :class:`SpecError` naming the file, each
field (``subqueries[2] (row_3).normal``) and what was expected (structural problems first, the rest
once the structure is right). Beyond structure, a spec must
round-trip: the rules never fire on the normal answers, each class's declared answers make ``h``
give exactly that class, and each declared combination gives exactly its classes. That is what
guarantees that every class is reachable and no two classes are indistinguishable.

User specs may not reuse a shipped scenario name unless they say ``overrides: true`` (then they
replace the shipped spec); ``overrides: true`` on a name that is not shipped is an error, since it
is most likely a misspelt name. Two user files may not define the same scenario.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.spec.aggregate import aggregate
from models.spec.inverse import label_answers
from models.spec.schema import ScenarioSpec, SpecError, SpecProblems

SPEC_DIR = Path(__file__).resolve().parent / "specs"
SHIPPED_SCENARIOS = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
_LISTS_WITH_NAMES = {"objects": "name", "subqueries": "id", "classes": "name", "rules": "class"}


def spec_from_dict(data: Any, source: str = "<dict>") -> ScenarioSpec:
    """Validate a parsed spec (structure, references, round trip) or raise :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(
            source, [("(top level)", f"expected a mapping of spec fields, got {type(data).__name__}")]
        )
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, _pydantic_problems(exc, data)) from None
    except SpecProblems as exc:
        raise SpecError(source, exc.problems) from None
    problems = round_trip_problems(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def load_spec(path: str | Path) -> ScenarioSpec:
    """Read and validate one YAML spec file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(str(path), [("(file)", f"cannot be read: {exc.strerror or exc}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [("(file)", f"not valid YAML: {exc}")]) from None
    return spec_from_dict(data, str(path))


@lru_cache(maxsize=1)
def _shipped() -> dict[str, ScenarioSpec]:
    specs = {}
    for name in SHIPPED_SCENARIOS:
        spec = load_spec(SPEC_DIR / f"{name}.yaml")
        if spec.scenario != name:
            raise SpecError(str(SPEC_DIR / f"{name}.yaml"), [("scenario", f"expected {name!r}")])
        specs[name] = spec
    return specs


def shipped_specs() -> dict[str, ScenarioSpec]:
    """The five MVTec LOCO AD specs shipped with the package (specs are immutable, so shared)."""
    return dict(_shipped())


def load_specs(user_dir: str | Path | None = None) -> dict[str, ScenarioSpec]:
    """The shipped specs plus every ``*.yaml`` / ``*.yml`` in ``user_dir`` (e.g. ``LOGICLS_SCENARIO_DIR``)."""
    specs = shipped_specs()
    if user_dir is None or str(user_dir) == "":
        return specs
    directory = Path(user_dir)
    if not directory.is_dir():
        raise SpecError(
            str(directory), [("(directory)", "the scenario directory does not exist or is not a directory")]
        )
    origin: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        spec = load_spec(path)
        name = spec.scenario
        if name in origin:
            raise SpecError(str(path), [("scenario", f"{name!r} is already defined by {origin[name]}")])
        if name in SHIPPED_SCENARIOS and not spec.overrides:
            raise SpecError(
                str(path),
                [
                    (
                        "scenario",
                        f"{name!r} is a shipped scenario; choose another name or set 'overrides: true'",
                    )
                ],
            )
        if spec.overrides and name not in SHIPPED_SCENARIOS:
            raise SpecError(
                str(path),
                [
                    (
                        "overrides",
                        f"there is no shipped scenario {name!r} to override; shipped: {SHIPPED_SCENARIOS}",
                    )
                ],
            )
        origin[name] = path
        specs[name] = spec
    return specs


def get_spec(scenario: str, user_dir: str | Path | None = None) -> ScenarioSpec:
    """One scenario's spec, with a clear error for an unknown name."""
    specs = load_specs(user_dir)
    if scenario not in specs:
        raise KeyError(f"unknown scenario {scenario!r}; known: {sorted(specs)}")
    return specs[scenario]


def round_trip_problems(spec: ScenarioSpec) -> list[tuple[str, str]]:
    """Where ``h`` does not give back the labels: normal answers, each class, each combination."""
    try:
        normal = aggregate(spec, spec.normal_answers(), policy="error")
    except ValueError as exc:
        return [("rules", str(exc))]
    if not normal.is_normal:
        return [("rules", f"rules fire on the normal answers: {'; '.join(normal.lines())}")]
    problems = []
    for i, cls in enumerate(spec.classes):
        problems += _expect(spec, [cls.name], f"classes[{i}] ({cls.name}).answers")
    for i, combo in enumerate(spec.combinations):
        problems += _expect(spec, combo, f"combinations[{i}]")
    return problems


def _expect(spec: ScenarioSpec, labels: list[str], where: str) -> list[tuple[str, str]]:
    answers, conflicts = label_answers(spec, labels)
    problems = [(where, conflict) for conflict in conflicts]
    try:
        got = aggregate(spec, answers, policy="error")
    except ValueError as exc:
        return [*problems, (where, str(exc))]
    if got.labels != frozenset(labels):
        fired = "; ".join(got.lines())
        problems.append(
            (where, f"h gives {sorted(got.labels)} on these answers, expected {sorted(labels)} ({fired})")
        )
    return problems


def _pydantic_problems(exc: ValidationError, data: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        message = err["msg"]
        if err["type"] not in {"missing", "extra_forbidden"} and "input" in err:
            shown = repr(err["input"])
            message += f" (got {shown[:80] + '…' if len(shown) > 80 else shown})"
        if err["type"] == "extra_forbidden":
            message = "unknown field (a typo?)"
        problems.append((_field_path(err["loc"], data), message))
    return problems


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """``subqueries[2] (row_3).answer_type`` from pydantic's location tuple."""
    path = ""
    node = data
    parent = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            key = _LISTS_WITH_NAMES.get(str(parent))
            if isinstance(node, dict) and key and node.get(key) is not None:
                path += f" ({node[key]})"
        else:
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, dict) else None
        parent = part
    return path or "(top level)"

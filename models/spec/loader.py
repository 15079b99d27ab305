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

A broken user file breaks only its own scenario: :func:`load_catalog` loads every other spec and
lists the broken file as a :class:`SkippedSpec` (:func:`load_specs` and :func:`get_spec` log it as a
warning naming the file and each field), so one typo in ``LOGICLS_SCENARIO_DIR`` does not take the
shipped scenarios down with it.
A broken file that overrides a shipped scenario withdraws that scenario too, rather than running
it silently with rules the user meant to replace. Asking for a skipped scenario by name
(:func:`get_spec`) raises its :class:`SpecError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.spec.aggregate import aggregate
from models.spec.inverse import label_answers
from models.spec.schema import ScenarioSpec, SpecError, SpecProblems

logger = logging.getLogger(__name__)

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
    return spec_from_dict(_read_yaml(Path(path)), str(path))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(str(path), [("(file)", f"cannot be read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        where = f"byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        raise SpecError(str(path), [("(file)", f"not UTF-8 text ({where}): save the file as UTF-8")]) from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [("(file)", f"not valid YAML: {exc}")]) from None


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


@dataclass(frozen=True)
class SkippedSpec:
    """A user spec file that cannot be used: its scenario is left out, every other one loads."""

    path: str
    scenario: str
    """The name the file declares (``scenario:``), else the file name without ``.yaml``."""
    error: SpecError


@dataclass(frozen=True)
class ScenarioCatalog:
    """The usable specs (shipped and user) and the user files that were skipped."""

    specs: dict[str, ScenarioSpec]
    skipped: tuple[SkippedSpec, ...] = ()

    def warn(self, unless: str | None = None) -> None:
        """One warning line per skipped file (file, scenario, every field), except for scenario ``unless``,
        whose error the caller raises instead."""
        for skipped in self.skipped:
            if skipped.scenario != unless:
                logger.warning("scenario %r skipped: %s", skipped.scenario, skipped.error.summary)


def load_catalog(user_dir: str | Path | None = None) -> ScenarioCatalog:
    """The shipped specs plus every ``*.yaml`` / ``*.yml`` in ``user_dir`` (e.g. ``LOGICLS_SCENARIO_DIR``).

    A user file that fails is skipped (see the module docstring; :meth:`ScenarioCatalog.warn` logs
    them); a missing directory is an error, since then no user scenario at all would load.
    """
    specs = shipped_specs()
    if user_dir is None or str(user_dir) == "":
        return ScenarioCatalog(specs)
    directory = Path(user_dir)
    if not directory.is_dir():
        raise SpecError(
            str(directory), [("(directory)", "the scenario directory does not exist or is not a directory")]
        )
    origin: dict[str, Path] = {}
    skipped: list[SkippedSpec] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        data: Any = None
        try:
            data = _read_yaml(path)
            spec = spec_from_dict(data, str(path))
            _check_user_name(spec, path, origin)
        except SpecError as error:
            skipped.append(_skip(path, data, error, specs, origin))
            continue
        origin[spec.scenario] = path
        specs[spec.scenario] = spec
    return ScenarioCatalog(specs, tuple(skipped))


def _check_user_name(spec: ScenarioSpec, path: Path, origin: dict[str, Path]) -> None:
    name = spec.scenario
    if name in origin:
        raise SpecError(str(path), [("scenario", f"{name!r} is already defined by {origin[name]}")])
    if name in SHIPPED_SCENARIOS and not spec.overrides:
        raise SpecError(
            str(path), [("scenario", f"{name!r} is a shipped scenario; choose another name or set 'overrides: true'")]
        )
    if spec.overrides and name not in SHIPPED_SCENARIOS:
        raise SpecError(
            str(path),
            [("overrides", f"there is no shipped scenario {name!r} to override; shipped: {SHIPPED_SCENARIOS}")],
        )


def _skip(
    path: Path, data: Any, error: SpecError, specs: dict[str, ScenarioSpec], origin: dict[str, Path]
) -> SkippedSpec:
    """Record a broken file; one that overrides a shipped scenario withdraws that scenario as well."""
    fields = data if isinstance(data, dict) else {}
    declared = fields.get("scenario")
    scenario = declared if isinstance(declared, str) and declared else path.stem
    if fields.get("overrides") is True and scenario in SHIPPED_SCENARIOS and scenario not in origin:
        specs.pop(scenario, None)
    return SkippedSpec(str(path), scenario, error)


def load_specs(user_dir: str | Path | None = None) -> dict[str, ScenarioSpec]:
    """The usable specs of :func:`load_catalog` (broken user files are logged and left out)."""
    catalog = load_catalog(user_dir)
    catalog.warn()
    return catalog.specs


def get_spec(scenario: str, user_dir: str | Path | None = None) -> ScenarioSpec:
    """One scenario's spec: its :class:`SpecError` when its file was skipped, a clear error for an unknown name."""
    catalog = load_catalog(user_dir)
    catalog.warn(unless=scenario)
    if scenario in catalog.specs:
        return catalog.specs[scenario]
    for skipped in catalog.skipped:
        if skipped.scenario == scenario:
            raise skipped.error
    raise KeyError(f"unknown scenario {scenario!r}; known: {sorted(catalog.specs)}")


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

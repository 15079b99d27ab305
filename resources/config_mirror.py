"""Launchpad settings derived from the core's config dataclasses: each setting is declared once, in `models/`.

A core config (``SplitConfig``, ``GroundingConfig``, ``TrainConfig``…) declares every field with its
type, default and help text (``field(default=…, metadata={"help": …})``, as PEFT's config dataclasses
do). :func:`mirror` turns it into the base class of the Dagster side (a run ``Config`` or a
``ConfigurableResource``): same names, same types (tuples become lists, the form run config has), same
defaults, the help as the launchpad's description. The Dagster class adds only what the core does
not have (a cache folder, a launch setting) and converts back with :meth:`Mirrored.to_core`; choices
and ranges are checked there, by the core's ``__post_init__``, whose messages name the field and the
allowed values.

What differs is declared where the class is made, with the reason, and pinned by a test
(`tests/pipelines/test_config_mirror.py`):

- ``hidden``: core fields that are not launchpad settings, each with the reason (a secret, a value
  the Dagster side declares itself or derives);
- ``defaults``: a launchpad default other than the core's (:class:`Default`, with its reason);
- ``unset``: every field optional and ``None`` by default, meaning "keep the base value" (training
  presets), with the help saying what unset means.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any, ClassVar

from dagster import Config
from pydantic import BaseModel, Field, create_model

HELP = "help"


@dataclasses.dataclass(frozen=True)
class Default:
    """A launchpad default that differs from the core's, and why."""

    value: Any
    reason: str


class Mirrored:
    """What every generated class adds: the link back to its core dataclass."""

    core_class: ClassVar[type]
    hidden_fields: ClassVar[Mapping[str, str]]
    default_changes: ClassVar[Mapping[str, Default]]
    unset_means: ClassVar[str | None]

    def core_values(self) -> dict[str, Any]:
        """The mirrored fields as the core takes them (lists back to tuples; unset ones left out)."""
        hints = typing.get_type_hints(self.core_class)
        values = {}
        for name in mirrored_names(type(self)):
            value = getattr(self, name)
            if value is None and self.unset_means is not None:
                continue
            values[name] = tuple(value) if isinstance(value, list) and _is_tuple(hints[name]) else value
        return values

    def to_core(self, base: Any = None, **changes: Any) -> Any:
        """The core config of these settings, on top of ``base`` (a core config whose values the unset fields
        keep) when given, with ``changes`` on top of both; validated by the core."""
        values = {**self.core_values(), **changes}
        return dataclasses.replace(base, **values) if base is not None else self.core_class(**values)


def mirror(
    core: type,
    *,
    base: type[BaseModel] = Config,
    hidden: Mapping[str, str] | None = None,
    defaults: Mapping[str, Default] | None = None,
    unset: str | None = None,
    unset_help: Mapping[str, str] | None = None,
) -> type[BaseModel]:
    """The Dagster base class (``base``: ``Config`` or ``ConfigurableResource``) of ``core``'s settings.

    Subclass it to add Dagster-only fields and methods. ``unset`` makes every field ``T | None = None``
    and is appended to each help text (``unset_help`` replaces it for single fields, where unset means
    something else).
    """
    hidden, defaults, unset_help = dict(hidden or {}), dict(defaults or {}), dict(unset_help or {})
    core_fields = {f.name: f for f in dataclasses.fields(core)}
    unknown = (set(hidden) | set(defaults) | set(unset_help)) - set(core_fields)
    if unknown:
        raise ValueError(f"mirror of {core.__name__}: no such fields {sorted(unknown)}")
    hints = typing.get_type_hints(core)
    definitions: dict[str, Any] = {}
    for name, spec in core_fields.items():
        if name in hidden:
            continue
        help_text = spec.metadata.get(HELP)
        if not help_text:
            raise ValueError(f"{core.__name__}.{name} has no help text: give it field(metadata={{'help': ...}})")
        annotation = _launchpad_type(hints[name])
        if unset is not None:
            note = unset_help.get(name, unset)
            definitions[name] = (annotation | None, Field(default=None, description=f"{help_text} {note}"))
            continue
        if name in defaults:
            default = defaults[name].value
        elif spec.default is not MISSING:
            default = spec.default
        elif spec.default_factory is not MISSING:
            definitions[name] = (annotation, Field(default_factory=spec.default_factory, description=help_text))
            continue
        else:
            definitions[name] = (annotation, Field(description=help_text))
            continue
        definitions[name] = (annotation, Field(default=_launchpad_value(default), description=help_text))
    model = create_model(
        f"{core.__name__}Settings",
        __base__=(Mirrored, base),
        __module__=__name__,
        __doc__=f"The launchpad side of `{core.__module__}.{core.__name__}` (derived from it).",
        **definitions,
    )
    model.core_class = core
    model.hidden_fields = hidden
    model.default_changes = defaults
    model.unset_means = unset
    return model


def mirrored_names(cls: type) -> list[str]:
    """The core fields that ``cls`` (a :func:`mirror` class or a subclass) shows in the launchpad."""
    return [f.name for f in dataclasses.fields(cls.core_class) if f.name not in cls.hidden_fields]


def _is_tuple(annotation: Any) -> bool:
    if typing.get_origin(annotation) is tuple:
        return True
    return any(_is_tuple(arg) for arg in typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS)


_UNIONS = (typing.Union, types.UnionType)


def _launchpad_type(annotation: Any) -> Any:
    """Run config has lists, not tuples: ``tuple[str, ...]`` and ``tuple[float, float]`` become lists. A
    ``Literal`` becomes its values' type: the core checks the choice, with a message that names them."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        kinds = {type(value) for value in typing.get_args(annotation)}
        return kinds.pop() if len(kinds) == 1 else annotation
    if origin is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = args[0] if len(set(args)) == 1 else typing.Union[tuple(args)]  # noqa: UP007 - built from a list
        return list[item]
    if origin in _UNIONS:
        converted = tuple(_launchpad_type(a) for a in typing.get_args(annotation))
        return typing.Union[converted]  # noqa: UP007 - built from a tuple
    return annotation


def _launchpad_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

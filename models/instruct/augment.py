"""Augmented training images whose labels and subquery answers follow the edit (the paper's D_aug).

For counting and direction subqueries the paper cuts and pastes masked objects with Poisson image
editing and updates the labels; for the other types it adds noise and transfers style. Here:

* **paste** an extra instance of a grounded object (count + 1), **remove** one (covered with a
  patch of the surface it lies on, count − 1), **move** one to another free place (positions
  change), placed by :mod:`models.instruct.cutpaste` so that it stays on its surface (a pin in a
  compartment of its box, a washer in its bag) and apart from other objects;
* the edited image's answers are the parent's true answers with every measurable subquery
  measured again on the edited objects (:func:`models.spec.measure`), and its labels are
  ``h`` of those answers. An edit is kept only when that is trustworthy:

  - the parent's grounding agrees with its labels (``inverse(...).consistent``), so its answers
    are known;
  - the edited object is *editable*: countable, read by a counting or direction subquery, and
    every subquery that reads it has a measure (so no answer that the edit may change is left
    stale: pushpins, screws, nuts, washers, fruit and toppings are editable; a connector is not,
    because whether the cable positions correspond cannot be measured);
  - every subquery that reads it is measurable on the edited objects (or its measure defines no
    value for this scene, before and after the edit: the topping ratio without almonds);
  - the new label set is ``normal`` or one class; one of the spec's combinations only with
    ``AugmentConfig.allow_multi_anomaly`` (off by default: the paper trains on normal and
    single-anomaly images, and LOCO FC keeps every multi-anomaly image for the test set, so an
    edit of a single-anomaly parent must not teach the test set's combinations);
  - every answer the edit changed is either its normal value or read by a rule that fired: a third
    splicing connector would change an answer that no class explains, and calling that image
    ``normal`` would teach a falsehood.

* **noise** (Gaussian) and **style** (Reinhard colour transfer from another training image of the
  same scenario) keep objects, answers and labels.

Every augmentation draws from its own random generator seeded by (seed, parent image, kind,
index), so the table does not depend on the order in which images are processed.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from models.atomic import write_bytes_atomic
from models.images import read_rgb
from models.instruct import cutpaste
from models.objects import ImageObject, object_from_mask, objects_from_json, objects_to_json
from models.spec import ScenarioSpec, aggregate, inverse, measure
from models.spec.inverse import measure_all

AUGMENT_VERSION = 2
"""Bump when an augmentation (here or in `models.instruct.cutpaste`) changes its output for the same inputs and
config (the augmented_images asset's code version). 2: no multi-anomaly edits unless ``allow_multi_anomaly``."""
KINDS = ("paste", "remove", "move", "noise", "style")
CUT_PASTE = ("paste", "remove", "move")
# Attributes that describe where an object is, not what it is: stale once the object moves.
POSITIONAL_ATTRIBUTES = frozenset({"cell", "side", "position", "centred", "terminals"})
# A measure that evaluates to None defines no answer for such a scene (the topping ratio without
# one of the toppings): the answer stays the label's, before and after an edit alike.
NO_VALUE = "the measure gave no value"
AUGMENT_COLUMNS = [
    "aug_id", "parent_image_id", "scenario", "kind", "image_path", "width", "height", "labels",
    "parent_labels", "label_changed", "objects", "answers", "changed_answers", "edited_label", "edit",
]  # fmt: skip
AUGMENT_SCHEMA = pa.schema([
    ("aug_id", pa.string()), ("parent_image_id", pa.string()), ("scenario", pa.string()), ("kind", pa.string()),
    ("image_path", pa.string()), ("width", pa.int64()), ("height", pa.int64()), ("labels", pa.list_(pa.string())),
    ("parent_labels", pa.list_(pa.string())), ("label_changed", pa.bool_()), ("objects", pa.string()),
    ("answers", pa.string()), ("changed_answers", pa.string()), ("edited_label", pa.string()), ("edit", pa.string()),
])  # fmt: skip


@dataclass(frozen=True)
class AugmentConfig:
    """How many augmentations of each kind every training image gets, and how they are made."""

    paste: int = field(default=1, metadata={"help": "Cut-paste: an extra instance of an editable object "
                                                    "(count + 1)."})
    remove: int = field(default=1, metadata={"help": "Cut-paste: one instance removed (count - 1)."})
    move: int = field(default=1, metadata={"help": "Cut-paste: one instance moved to another free place."})
    noise: int = field(default=1, metadata={"help": "Gaussian noise copies (labels unchanged)."})
    style: int = field(default=1, metadata={"help": "Reinhard colour transfer from another training image "
                                                    "(labels unchanged)."})
    seed: int = field(default=0, metadata={"help": "Seed of every random choice."})
    noise_sigma: float = field(default=6.0, metadata={"help": "Standard deviation of the noise in grey levels."})
    gap: int = field(default=3, metadata={"help": "Pixels kept free between a placed object and any other."})
    min_shift: float = field(default=1.0, metadata={"help": "Least distance a moved object travels, in "
                                                            "multiples of its longer side."})
    attempts: int = field(default=8, metadata={"help": "Tries per cut-paste augmentation before giving up."})
    keep_unchanged: bool = field(default=True, metadata={"help": "Keep cut-paste edits that change no label."})
    allow_multi_anomaly: bool = field(default=False, metadata={
        "help": "Keep cut-paste edits whose labels combine several classes (one of the spec's combinations, e.g. "
                "a nut pasted beside a missing washer). Off: the paper trains on normal and single-anomaly "
                "images; LOCO FC keeps every multi-anomaly image for test."})

    def __post_init__(self) -> None:
        for kind in KINDS:
            if getattr(self, kind) < 0:
                raise ValueError(f"AugmentConfig.{kind} must be >= 0, got {getattr(self, kind)}")
        if self.attempts < 1 or self.gap < 0 or self.noise_sigma < 0 or self.min_shift < 0:
            raise ValueError("AugmentConfig: attempts must be >= 1 and gap, noise_sigma, min_shift >= 0")

    def count(self, kind: str) -> int:
        return int(getattr(self, kind))


@dataclass
class Augmentation:
    """One augmented image with everything the CoT data set needs about it."""

    aug_id: str
    parent_image_id: str
    kind: str
    image: np.ndarray  # RGB uint8
    labels: list[str]
    parent_labels: list[str]
    objects: list[ImageObject]
    answers: dict[str, Any]
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    edited_label: str | None = None
    edit: dict[str, Any] = field(default_factory=dict)


class Rejected(Exception):
    """An edit that cannot be trusted or does not fit; the message is the reason (counted)."""


# --- which objects may be edited ------------------------------------------------------------------


def editable_labels(spec: ScenarioSpec) -> dict[str, tuple[str, ...]]:
    """Object name → the subqueries that read it, for objects cut-paste may edit (module docstring)."""
    measured = spec.measures
    out: dict[str, tuple[str, ...]] = {}
    for obj in spec.objects:
        if not obj.countable:
            continue
        reading = [s for s in spec.subqueries if obj.name in s.objects]
        if (
            reading
            and all(s.id in measured for s in reading)
            and any(s.reasoning_type in ("counting", "direction") for s in reading)
        ):
            out[obj.name] = tuple(s.id for s in reading)
    return out


def valid_label_set(spec: ScenarioSpec, labels: Iterable[str]) -> bool:
    """``normal``, one class, or one of the spec's combinations of classes."""
    labels = frozenset(labels)
    if len(labels) == 1:
        return True
    return any(labels == frozenset(combo) for combo in spec.combinations)


def container_of(spec: ScenarioSpec, objects: Sequence[ImageObject], index: int) -> int | None:
    """The largest non-countable object of the spec whose mask holds the object's centroid."""
    holders = {o.name for o in spec.objects if not o.countable}
    cx, cy = (round(v) for v in objects[index].centroid)
    best = None
    for j, other in enumerate(objects):
        if j == index or other.label not in holders:
            continue
        x0, y0, x1, y1 = other.bbox
        if not (x0 <= cx < x1 and y0 <= cy < y1) or not other.mask()[cy, cx]:
            continue
        if best is None or other.area > objects[best].area:
            best = j
    return best


# --- one edit -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parent:
    """A training image with its objects and true answers."""

    image_id: str
    image: np.ndarray
    labels: frozenset[str]
    objects: list[ImageObject]
    answers: dict[str, Any]
    consistent: bool


def cut_paste(
    spec: ScenarioSpec, parent: Parent, kind: str, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[ImageObject], dict[str, Any]]:
    """One paste/remove/move edit of a random editable object: image, objects, edit description."""
    editable = editable_labels(spec)
    labels = sorted({o.label for o in parent.objects if o.label in editable})
    if not labels:
        raise Rejected("no editable object")
    # The kind first, then an instance: a box of many toppings and three fruit edits fruit as often.
    label = labels[int(rng.integers(len(labels)))]
    candidates = [i for i, o in enumerate(parent.objects) if o.label == label]
    return edit_object(spec, parent, int(rng.choice(candidates)), kind, config, rng)


def edit_object(
    spec: ScenarioSpec, parent: Parent, index: int, kind: str, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[ImageObject], dict[str, Any]]:
    """Paste a copy of, remove, or move the object ``index`` (raises :class:`Rejected` when no place fits)."""
    obj = parent.objects[index]
    mask = obj.mask()
    around = surroundings(spec, parent, index, mask, config.gap)
    if kind == "remove":
        image = _erase(parent.image, mask, around, rng)
        objects = parent.objects[:index] + parent.objects[index + 1 :]
        return image, objects, {"object": obj.label, "from": list(obj.bbox)}
    foot = cutpaste.footprint(mask, ground=around.ground)
    ok = cutpaste.placements(around.free, foot.clone)
    if kind == "move":
        ys, xs = np.mgrid[: ok.shape[0], : ok.shape[1]]
        ok &= np.hypot(xs - foot.x0, ys - foot.y0) >= config.min_shift * max(foot.shape)
    x, y = _pick(ok, rng)
    base = _erase(parent.image, mask, around, rng) if kind == "move" else parent.image
    image, new_mask = cutpaste.paste(base, parent.image, foot, x, y)
    attributes = {k: v for k, v in obj.attributes.items() if k not in POSITIONAL_ATTRIBUTES}
    placed = object_from_mask(new_mask, obj.label, obj.score, attributes)
    if kind == "paste":
        objects = [*parent.objects, placed]
    else:
        objects = [*parent.objects[:index], placed, *parent.objects[index + 1 :]]
    return image, objects, {"object": obj.label, "from": list(obj.bbox), "to": list(placed.bbox)}


@dataclass(frozen=True)
class Surroundings:
    """What an object lies on: ``surface`` (without other objects), ``ground`` (the surface and the
    object's halo, where a clone margin may reach) and ``free`` (surface away from every object)."""

    surface: np.ndarray
    ground: np.ndarray
    free: np.ndarray


def surroundings(spec: ScenarioSpec, parent: Parent, index: int, mask: np.ndarray, gap: int) -> Surroundings:
    """The object's surface (inside its container object, if it has one) and its free part."""
    holder = container_of(spec, parent.objects, index)
    others = np.zeros(mask.shape, bool)
    for j, other in enumerate(parent.objects):
        if j not in (index, holder):
            others |= other.mask()
    container = parent.objects[holder].mask() if holder is not None else None
    surface = cutpaste.surface(parent.image, mask, others, container) & ~others
    ground = surface | (cutpaste.dilate(mask, cutpaste.HALO) & ~others)
    return Surroundings(surface, ground, surface & ~cutpaste.dilate(others | mask, gap))


def _pick(ok: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    ys, xs = np.nonzero(ok)
    if xs.size == 0:
        raise Rejected("no free place")
    k = int(rng.integers(xs.size))
    return int(xs[k]), int(ys[k])


def _erase(image: np.ndarray, mask: np.ndarray, around: Surroundings, rng: np.random.Generator) -> np.ndarray:
    """The object covered by a patch of free surface of its shape, or inpainted if none fits."""
    region = cutpaste.hole(mask, around.surface)
    ok = cutpaste.placements(around.free, cutpaste.patch_shape(region))
    if not ok.any():
        return cutpaste.inpaint(image, region)
    x, y = _pick(ok, rng)
    return cutpaste.cover(image, region, around.surface, x, y)


def relabel(
    spec: ScenarioSpec, parent: Parent, objects: Sequence[ImageObject], edited_label: str,
    allow_multi_anomaly: bool = False,
) -> tuple[dict[str, Any], frozenset[str], dict[str, dict[str, Any]]]:
    """Answers, labels and changed answers of an edited image; raises :class:`Rejected` when untrustworthy,
    or when the labels combine several classes and ``allow_multi_anomaly`` is off."""
    measured, unmeasured = measure_all(spec, objects)
    _, before = measure_all(spec, parent.objects)
    stale = [
        sid for sid in editable_labels(spec)[edited_label]
        if sid not in measured and not (unmeasured[sid] == NO_VALUE and before.get(sid) == NO_VALUE)
    ]  # fmt: skip
    if stale:
        raise Rejected("not measurable after the edit")
    answers = {**copy.deepcopy(parent.answers), **measured}
    result = aggregate(spec, answers, policy="error")
    if not valid_label_set(spec, result.labels):
        raise Rejected("not a valid label set")
    if len(result.labels) > 1 and not allow_multi_anomaly:
        raise Rejected("a multi-anomaly label set (allow_multi_anomaly is off)")
    changed = {
        sid: {"before": parent.answers[sid], "after": answers[sid]}
        for sid in spec.subquery_ids
        if answers[sid] != parent.answers[sid]
    }
    explained = {sid for evidence in result.evidence for sid in evidence.values}
    normal = spec.normal_answers()
    if any(answers[sid] != normal[sid] and sid not in explained for sid in changed):
        raise Rejected("a change no class explains")
    return answers, result.labels, changed


# --- all augmentations of one image ----------------------------------------------------------------


def augmentation_rng(seed: int, image_id: str, kind: str, k: int) -> np.random.Generator:
    """The independent random generator of one augmentation."""
    key = [seed, zlib.crc32(image_id.encode()), KINDS.index(kind), k]
    return np.random.default_rng(np.random.SeedSequence(key))


def aug_stem(scenario: str, parent_image_id: str, kind: str, k: int) -> str:
    """``train_good_003-paste0``: the parent's path within the scenario, the kind and the index."""
    inner = parent_image_id.removeprefix(f"{scenario}/").replace("/", "_")
    return f"{inner}-{kind}{k}"


def augment_image(
    spec: ScenarioSpec,
    parent: Parent,
    config: AugmentConfig,
    style_source: Callable[[np.random.Generator], tuple[str, np.ndarray] | None],
    rejected: Counter[str] | None = None,
) -> list[Augmentation]:
    """Every configured augmentation of one training image (cut-paste only for consistent parents)."""
    out = []
    for kind in KINDS:
        for k in range(config.count(kind)):
            rng = augmentation_rng(config.seed, parent.image_id, kind, k)
            aug_id = f"{spec.scenario}/augmented/{aug_stem(spec.scenario, parent.image_id, kind, k)}"
            made = _make(spec, parent, kind, config, rng, style_source, rejected)
            if made is not None:
                made.aug_id = aug_id
                out.append(made)
    return out


def _make(
    spec: ScenarioSpec,
    parent: Parent,
    kind: str,
    config: AugmentConfig,
    rng: np.random.Generator,
    style_source: Callable[[np.random.Generator], tuple[str, np.ndarray] | None],
    rejected: Counter[str] | None,
) -> Augmentation | None:
    if kind in CUT_PASTE:
        return _cut_paste_with_retries(spec, parent, kind, config, rng, rejected)
    if kind == "noise":
        image = cutpaste.gaussian_noise(parent.image, config.noise_sigma, rng)
        edit: dict[str, Any] = {"sigma": config.noise_sigma}
    else:
        style = style_source(rng)
        if style is None:
            _count(rejected, kind, "no other image for the style")
            return None
        image, edit = cutpaste.reinhard(parent.image, style[1]), {"style_image_id": style[0]}
    return Augmentation("", parent.image_id, kind, image, sorted(parent.labels), sorted(parent.labels),
                        list(parent.objects), copy.deepcopy(parent.answers), edit=edit)


def _cut_paste_with_retries(
    spec: ScenarioSpec,
    parent: Parent,
    kind: str,
    config: AugmentConfig,
    rng: np.random.Generator,
    rejected: Counter[str] | None,
) -> Augmentation | None:
    if not parent.consistent:
        _count(rejected, kind, "grounding contradicts the labels")
        return None
    for _ in range(config.attempts):
        try:
            image, objects, edit = cut_paste(spec, parent, kind, config, rng)
            answers, labels, changed = relabel(spec, parent, objects, edit["object"], config.allow_multi_anomaly)
        except Rejected as why:
            _count(rejected, kind, str(why))
            continue
        if labels == parent.labels and not config.keep_unchanged:
            _count(rejected, kind, "labels unchanged")
            continue
        return Augmentation("", parent.image_id, kind, image, sorted(labels), sorted(parent.labels),
                            objects, answers, changed, edit["object"], edit)
    return None


def _count(rejected: Counter[str] | None, kind: str, reason: str) -> None:
    if rejected is not None:
        rejected[f"{kind}: {reason}"] += 1


# --- a whole split -------------------------------------------------------------------------------


def write_png(path: Path, image_rgb: np.ndarray) -> None:
    """Write a PNG through a temporary file in the same folder and a rename (atomic)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    write_bytes_atomic(path, data.tobytes())


def parent_of(spec: ScenarioSpec, image_id: str, image: np.ndarray, labels: Iterable[str],
              objects: list[ImageObject]) -> Parent:
    """A training image with its true answers from the inverse of ``h`` on its grounded objects."""
    labels = frozenset(labels)
    truth = inverse(spec, labels, objects)
    return Parent(image_id, image, labels, objects, truth.answers, truth.consistent)


@dataclass
class AugmentRun:
    """The ``augmented_images`` table, a few before/after pairs, and why edits were rejected."""

    table: pd.DataFrame
    examples: list[tuple[Parent, Augmentation]]
    rejected: Counter[str]


def augment_split(
    spec: ScenarioSpec,
    train: pd.DataFrame,
    objects: Mapping[str, list[ImageObject]],
    out_dir: Path,
    config: AugmentConfig,
    n_examples: int = 2,
) -> AugmentRun:
    """Augment every training image (``image_id, image_path, labels`` rows) and write PNGs to ``out_dir``."""
    train = train.sort_values("image_id").reset_index(drop=True)
    paths = dict(zip(train["image_id"], train["image_path"], strict=True))
    rejected: Counter[str] = Counter()
    rows, examples = [], []
    for row in train.itertuples(index=False):
        image = read_rgb(row.image_path)
        parent = parent_of(spec, row.image_id, image, row.labels, objects.get(row.image_id, []))
        pool = [i for i in paths if i != row.image_id]

        def style_source(rng: np.random.Generator, pool: list[str] = pool) -> tuple[str, np.ndarray] | None:
            if not pool:
                return None
            chosen = pool[int(rng.integers(len(pool)))]
            return chosen, read_rgb(paths[chosen])

        for aug in augment_image(spec, parent, config, style_source, rejected):
            path = out_dir / f"{aug.aug_id.rsplit('/', 1)[1]}.png"
            write_png(path, aug.image)
            rows.append(_row(spec.scenario, aug, path))
            if aug.kind in CUT_PASTE and aug.labels != aug.parent_labels and len(examples) < n_examples:
                examples.append((parent, aug))
    return AugmentRun(pd.DataFrame(rows, columns=AUGMENT_COLUMNS), examples, rejected)


def _row(scenario: str, aug: Augmentation, path: Path) -> dict[str, Any]:
    height, width = aug.image.shape[:2]
    return {
        "aug_id": aug.aug_id,
        "parent_image_id": aug.parent_image_id,
        "scenario": scenario,
        "kind": aug.kind,
        "image_path": str(path),
        "width": int(width),
        "height": int(height),
        "labels": list(aug.labels),
        "parent_labels": list(aug.parent_labels),
        "label_changed": aug.labels != aug.parent_labels,
        "objects": objects_to_json(aug.objects),
        "answers": json.dumps(aug.answers, sort_keys=True),
        "changed_answers": json.dumps(aug.changed, sort_keys=True),
        "edited_label": aug.edited_label,
        "edit": json.dumps(aug.edit, sort_keys=True),
    }


# --- checks ------------------------------------------------------------------------------------------


def h_disagreements(spec: ScenarioSpec, table: pd.DataFrame) -> list[str]:
    """Augmentations whose recorded labels are not ``h`` of their recorded answers."""
    bad = []
    for row in table.itertuples(index=False):
        labels = aggregate(spec, json.loads(row.answers), policy="error").labels
        if labels != frozenset(row.labels):
            bad.append(f"{row.aug_id}: h gives {sorted(labels)}, recorded {sorted(row.labels)}")
    return bad


def reground_agreement(
    spec: ScenarioSpec, table: pd.DataFrame, grounded: Mapping[str, list[ImageObject]]
) -> pd.DataFrame:
    """Per cut-paste image: do the subqueries of the edited object, measured on objects grounded again,
    equal the recorded answers (those measured on the edited objects; an answer that came from the
    labels is not compared), and does the edited object's count match? (``grounded``: aug_id → objects)."""
    editable = editable_labels(spec)
    rows = []
    for row in table[table["kind"].isin(CUT_PASTE)].itertuples(index=False):
        found = grounded.get(row.aug_id, [])
        recorded, edited = json.loads(row.answers), objects_from_json(row.objects)
        measured = measure(spec, found)
        # Only what was measured on the edited objects: an answer the labels gave stays unchecked.
        sids = [sid for sid in editable.get(row.edited_label, ()) if sid in measure(spec, edited)]
        expected = sum(o.label == row.edited_label for o in edited)
        rows.append({
            "aug_id": row.aug_id,
            "kind": row.kind,
            "edited_label": row.edited_label,
            "expected_count": expected,
            "found_count": sum(o.label == row.edited_label for o in found),
            "answers_agree": all(sid in measured and measured[sid] == recorded[sid] for sid in sids),
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=["aug_id", "kind", "edited_label", "expected_count", "found_count",
                                        "answers_agree"])
    frame["count_agrees"] = frame["expected_count"] == frame["found_count"]
    return frame


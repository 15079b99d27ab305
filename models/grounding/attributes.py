"""The attribute stage: what each grounded object is, read from its pixels and the geometry of its mask.

Every backend ends with labelled masks; what the scenario specs' measures and the chain of thought
need beyond that (a screw's length class, a connector's clamps, a cable's colour and the terminal
each of its ends enters, a pin's cell, the fill level of a bottle) is read here, after any
backend, from the image and the masks alone, so that ``classical`` and ``clip_sam`` give the same
attributes for the same masks. Each spec object declares the attributes it needs
(``attributes: [clamps, side]``); :data:`PROVIDERS` says which ones this stage can write, and
:func:`check_attributes` refuses a spec it cannot serve before any image is read.

How the stage reads an object:

* **colour** in CIELAB (L* 0–100): the median of the mask's more saturated half (so a mask a little
  too large, which takes in some table, keeps the object's colour), named by the nearest calibrated
  centroid of the spec's colour words;
* **length and width** of the mask's minimum-area rotated rectangle, its long axis;
* **sub-parts**: dark enclosed regions inside a light part (a connector's clamp levers), with their
  areas and centres, so a connector's clamps are counted and ordered from the top;
* **contacts**: where an object touches another (a cable end in a connector), so the terminal a
  cable enters is the clamp nearest to its end along the connector's axis;
* **position in its container** (the spec's ``within``): a cell of a grid, the height of a surface,
  the offset from a centre line and the tilt.

The thresholds come from a :class:`Calibration` fitted on the scenario's *normal* training images,
whose answers are known (one long and one short screw, one cable colour per connector size, the
fill level at the neck), in the spirit of the few-shot statistics LogSAD keeps. Fitting uses
medians, so a few mis-segmented objects do not move it; a parameter with no normal example keeps a
documented default and is listed in :attr:`Calibration.defaults`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from itertools import pairwise, permutations
from typing import Any, ClassVar

import cv2
import numpy as np

from models.objects import ImageObject, rle_decode
from models.spec import ScenarioSpec
from models.spec.measures import cell_of

logger = logging.getLogger(__name__)

# Bump when the stage writes other attributes for the same masks and pixels.
ATTRIBUTE_VERSION = 1


class AttributeUnavailableError(ValueError):
    """A spec declares (or a measure reads) an attribute that grounding cannot write."""


# --- calibration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """One scenario's attribute thresholds, fitted on its normal training images (JSON-able).

    ``values`` maps ``label`` → ``attribute`` → parameter → value (pixels, CIELAB, shares);
    ``defaults`` lists the ``label.attribute`` entries that kept a default for want of a normal
    example; ``images`` is how many normal images the fit saw.
    """

    scenario: str
    images: int = 0
    values: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    defaults: tuple[str, ...] = ()
    version: int = ATTRIBUTE_VERSION

    def params(self, label: str, attribute: str) -> dict[str, Any]:
        return self.values.get(label, {}).get(attribute, {})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"defaults": list(self.defaults)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            scenario=str(data["scenario"]),
            images=int(data.get("images", 0)),
            values={str(k): dict(v) for k, v in dict(data.get("values", {})).items()},
            defaults=tuple(data.get("defaults", ())),
            version=int(data.get("version", ATTRIBUTE_VERSION)),
        )

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))


def _round(value: Any) -> Any:
    """Floats rounded to 4 decimals, recursively: a stable, readable calibration."""
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


# --- one image ---------------------------------------------------------------------------------------


class ImageView:
    """One image's pixels and its objects' masks, each decoded once."""

    def __init__(self, image: np.ndarray, objects: Sequence[ImageObject]) -> None:
        self.image = image
        self.objects = list(objects)
        self._masks: dict[int, np.ndarray] = {}
        self._distances: dict[int, np.ndarray] = {}

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @cached_property
    def lab(self) -> np.ndarray:
        """CIELAB of every pixel: L* in 0–100, a* and b* around 0 (float32)."""
        return cv2.cvtColor(self.image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)

    def mask(self, index: int) -> np.ndarray:
        if index not in self._masks:
            self._masks[index] = rle_decode(self.objects[index].mask_rle)
        return self._masks[index]

    def distance(self, index: int) -> np.ndarray:
        """Distance in pixels from every pixel to the object's mask (0 on the mask)."""
        if index not in self._distances:
            outside = (~self.mask(index)).astype(np.uint8)
            self._distances[index] = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
        return self._distances[index]

    def indices(self, labels: Iterable[str]) -> list[int]:
        wanted = set(labels)
        return [i for i, o in enumerate(self.objects) if o.label in wanted]


@dataclass(frozen=True)
class Measured:
    """One image after the pixel pass: its size, its objects and per object the providers' features."""

    width: int
    height: int
    objects: list[ImageObject]
    features: list[dict[str, dict[str, Any]]]

    def indices(self, labels: Iterable[str]) -> list[int]:
        wanted = set(labels)
        return [i for i, o in enumerate(self.objects) if o.label in wanted]


# --- geometry and colour --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Oriented:
    """A mask's minimum-area rotated rectangle: centre, long and short side, and the long axis."""

    centre: tuple[float, float]
    length: float
    width: float
    axis: tuple[float, float]


def oriented(mask: np.ndarray) -> Oriented:
    points = cv2.findNonZero(mask.astype(np.uint8))
    (cx, cy), (w, h), angle = cv2.minAreaRect(points)
    theta = math.radians(angle if w >= h else angle + 90.0)
    axis = (math.cos(theta), math.sin(theta))
    if axis[1] < 0 or (axis[1] == 0 and axis[0] < 0):  # point the axis down (or right)
        axis = (-axis[0], -axis[1])
    # Pixel centres span one pixel less than the pixels themselves.
    return Oriented((float(cx), float(cy)), float(max(w, h)) + 1.0, float(min(w, h)) + 1.0, axis)


def colour_of(view: ImageView, mask: np.ndarray) -> list[float]:
    """Median CIELAB of the more saturated half of the mask's pixels."""
    lab = view.lab[mask]
    if lab.shape[0] == 0:
        return [0.0, 0.0, 0.0]
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    vivid = lab[chroma >= np.median(chroma)]
    return [float(v) for v in np.median(vivid, axis=0)]


def lab_of_rgb(rgb: Sequence[float]) -> list[float]:
    pixel = np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0
    return [float(v) for v in cv2.cvtColor(pixel, cv2.COLOR_RGB2Lab)[0, 0]]


# Basic colour words (sRGB), with "pale", "light" and "dark" variants, for naming colours; a fruit
# is named by the colour of its skin.
BASIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow": (240, 205, 30), "orange": (240, 130, 25), "red": (200, 30, 40), "blue": (35, 85, 210),
    "green": (50, 150, 50), "brown": (140, 90, 45), "pink": (240, 150, 180), "purple": (120, 50, 160),
    "white": (245, 245, 245), "grey": (128, 128, 128), "gray": (128, 128, 128), "black": (20, 20, 20),
    "silver": (190, 195, 200),
}  # fmt: skip
FRUIT_COLOURS: dict[str, str] = {"orange": "orange", "banana": "yellow", "cherry": "dark red",
                                 "apple": "red", "lemon": "yellow", "lime": "green", "nectarine": "red",
                                 "tangerine": "orange", "strawberry": "red", "grape": "purple"}  # fmt: skip
LIGHTNESS_WEIGHT = 0.5  # colour distance: L* counts half, so lighting moves a colour less than a hue change


def reference_lab(word: str) -> list[float] | None:
    """CIELAB of a colour word (``red``, ``pale yellow``, ``dark red``), or None when unknown."""
    word = word.strip().lower()
    modifier, _, base = word.rpartition(" ")
    rgb = BASIC_COLOURS.get(base)
    if rgb is None or modifier not in ("", "pale", "light", "dark"):
        return None
    colour = np.asarray(rgb, float)
    if modifier in ("pale", "light"):
        colour = colour + (0.5 if modifier == "pale" else 0.3) * (255.0 - colour)
    elif modifier == "dark":
        colour = 0.55 * colour
    return lab_of_rgb(colour)


def colour_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return float(math.hypot(LIGHTNESS_WEIGHT * (a[0] - b[0]), a[1] - b[1], a[2] - b[2]))


def nearest(colour: Sequence[float], centroids: Mapping[str, Sequence[float]]) -> str:
    return min(sorted(centroids), key=lambda name: colour_distance(colour, centroids[name]))


def colour_words(text: str | None) -> list[str]:
    """``"yellow, blue or red"`` → ``["yellow", "blue", "red"]``."""
    if not text:
        return []
    return [w.strip() for w in re.split(r",|\bor\b|\band\b", text.lower()) if w.strip()]


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, float)))


def _spread(values: Sequence[float]) -> float:
    """Robust standard deviation (1.4826 × the median absolute deviation)."""
    v = np.asarray(values, float)
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if v.size else 0.0


# --- providers -----------------------------------------------------------------------------------------


class Provider(ABC):
    """Writes some attributes on the objects of a label: measures pixels, fits thresholds, decides.

    ``measure`` runs once per object with the image (the pixel pass); ``fit`` sees the normal
    training images' measurements and returns the calibration parameters (``None`` when it saw no
    example, then ``default`` applies); ``assign`` decides the attribute values of one object.
    """

    attributes: ClassVar[tuple[str, ...]]

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        """Why this provider cannot serve ``label`` of ``spec`` (None: it can)."""
        return None

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        return {}

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        return {}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {}

    @abstractmethod
    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        """The attribute values of object ``index`` (an attribute left out is not measurable)."""

    def features(self, image: Measured, index: int) -> dict[str, Any]:
        return image.features[index].get(self.name, {})

    @property
    def name(self) -> str:
        return self.attributes[0]


class LengthClass(Provider):
    """``length_class`` of a screw-like object: its rotated length against the normal long and short one.

    In a normal image the longest object of the label is the long one and the shortest the short
    one; the other classes are the design's shares of the long length (the spec's description).
    """

    attributes = ("length_class",)
    RATIOS: ClassVar[dict[str, float]] = {"very short": 0.35, "too short": 0.5, "too long": 1.3}
    DEFAULT_LONG = 430.0 / 1100.0  # the long screw's length as a share of the image height (MVTec LOCO)
    DEFAULT_SHORT = 0.65  # the short screw as a share of the long one

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        return {"length": oriented(view.mask(index)).length}

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        longs, shorts = [], []
        for image in normal:
            lengths = sorted(self.features(image, i)["length"] for i in image.indices([label]))
            if len(lengths) >= 2:
                longs.append(lengths[-1])
                shorts.append(lengths[0])
        if not longs:
            return None
        return {"long_px": _median(longs), "short_px": _median(shorts)}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"long_share_of_height": self.DEFAULT_LONG, "short_share_of_long": self.DEFAULT_SHORT}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        long_px = params.get("long_px", params.get("long_share_of_height", self.DEFAULT_LONG) * image.height)
        short_px = params.get("short_px", params.get("short_share_of_long", self.DEFAULT_SHORT) * long_px)
        centres = sorted({**{k: r * long_px for k, r in self.RATIOS.items()}, "short": short_px,
                          "long": long_px}.items(), key=lambda kv: kv[1])  # fmt: skip
        length = self.features(image, index)["length"]
        for (name, centre), (_, upper) in pairwise(centres):
            if length < (centre + upper) / 2:
                return {"length_class": name}
        return {"length_class": centres[-1][0]}


class Clamps(Provider):
    """``clamps``: the dark levers enclosed by a light part (a splicing connector's housing).

    Pixels darker than ``DARK`` times the part's own light level (its 75th percentile of L*, so
    lighting cancels) form components; those lying mostly on the mask's rim (within ``RIM`` pixels
    of its edge) are table seen through a mask a little too large, not levers. A lever is a
    component of at least half the normal lever's area (the largest dark component of a normal
    connector); the small ports are not.
    """

    attributes = ("clamps",)
    DARK = 0.7
    RIM = 2.5
    DEFAULT_LEVER = 0.117  # a lever's area as a share of the squared width of its part
    MIN_SHARE = 0.5

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        mask = view.mask(index)
        box = oriented(mask)
        lightness = view.lab[..., 0]
        level = float(np.percentile(lightness[mask], 75))
        dark = (mask & (lightness < self.DARK * level)).astype(np.uint8)
        dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        n, labels, stats, centres = cv2.connectedComponentsWithStats(dark, connectivity=8)
        depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        on_rim = np.bincount(labels[(depth <= self.RIM) & (labels > 0)], minlength=n)
        parts = [[int(stats[k, cv2.CC_STAT_AREA]), float(centres[k][0]), float(centres[k][1])]
                 for k in range(1, n)
                 if stats[k, cv2.CC_STAT_AREA] >= 4 and on_rim[k] < 0.5 * stats[k, cv2.CC_STAT_AREA]]  # fmt: skip
        return {"parts": parts, "axis": list(box.axis), "width": box.width}

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        largest = [max(p[0] for p in f["parts"]) for image in normal for i in image.indices([label])
                   if (f := self.features(image, i))["parts"]]  # fmt: skip
        return {"lever_area": _median(largest)} if largest else None

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"lever_share_of_width2": self.DEFAULT_LEVER}

    def levers(self, image: Measured, index: int, params: Mapping[str, Any]) -> list[list[float]]:
        """The connector's levers (area, x, y), from the top."""
        f = self.features(image, index)
        area = params.get("lever_area", params.get("lever_share_of_width2", self.DEFAULT_LEVER) * f["width"] ** 2)
        found = [p for p in f["parts"] if p[0] >= self.MIN_SHARE * area]
        return sorted(found, key=lambda p: (p[2], p[1]))

    def clamp_axis(self, image: Measured, index: int, levers: Sequence[Sequence[float]]) -> tuple[float, float]:
        """The direction the clamps follow, pointing down: through the first and last lever, else the
        more vertical side of the part's rotated rectangle (a 2-clamp housing is nearly square)."""
        if len(levers) >= 2:
            dx, dy = levers[-1][1] - levers[0][1], levers[-1][2] - levers[0][2]
        else:
            dx, dy = self.features(image, index)["axis"]
            if abs(dx) > abs(dy):
                dx, dy = -dy, dx
        norm = math.hypot(dx, dy) or 1.0
        return (dx / norm, dy / norm) if dy >= 0 else (-dx / norm, -dy / norm)

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        return {"clamps": len(self.levers(image, index, params))}


class Side(Provider):
    """``side``: the half of the image (left or right of its vertical centre line) the object's centre is in."""

    attributes = ("side",)

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        return {"side": side_of(image.objects[index], image.width)}


def side_of(obj: ImageObject, width: int) -> str:
    return "left" if obj.centroid[0] < width / 2 else "right"


class Colour(Provider):
    """``colour``: the nearest of the spec's colour words (``colour: yellow, blue or red``) in CIELAB.

    Each word starts at its reference colour; fitting moves it to the median colour of the normal
    images' objects nearest to it, so the centroids are the scene's own yellow, blue and red.
    """

    attributes = ("colour",)

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        words = colour_words(spec.object(label).colour)
        unknown = [w for w in words if reference_lab(w) is None]
        if len(words) < 2 or unknown:
            return (f"it names colours by the object's 'colour' hint, which must list at least two known colour "
                    f"words (got {spec.object(label).colour!r}; known: {sorted(BASIC_COLOURS)}, with pale/light/dark)")
        return None

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        return {"lab": colour_of(view, view.mask(index))}

    def references(self, spec: ScenarioSpec, label: str) -> dict[str, list[float]]:
        return {w: lab for w in colour_words(spec.object(label).colour) if (lab := reference_lab(w)) is not None}

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        references = self.references(spec, label)
        colours = [self.features(image, i)["lab"] for image in normal for i in image.indices([label])]
        if not colours:
            return None
        groups: dict[str, list[list[float]]] = {}
        for lab in colours:
            groups.setdefault(nearest(lab, references), []).append(lab)
        centroids = {w: [float(v) for v in np.median(np.asarray(groups[w]), axis=0)] if w in groups else references[w]
                     for w in references}  # fmt: skip
        return {"centroids": centroids, "examples": {w: len(groups.get(w, [])) for w in references}}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"centroids": self.references(spec, label)}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        return {"colour": nearest(self.features(image, index)["lab"], params["centroids"])}


class Fruit(Provider):
    """``fruit``: which fruit an icon shows (by its colour), and which fruit a juice is made of.

    An object whose words name fruits (``fruit icon``: orange, banana, cherry) is named by the
    nearest fruit colour, fitted like :class:`Colour`. Another object declaring ``fruit`` (the juice)
    is named through the normal images, where it goes with the icon's fruit: its centroid for a
    fruit is the median colour of the normal juices whose icon shows that fruit (a fruit without a
    normal example starts from the juice's own colour word that matches the fruit best).
    """

    attributes = ("fruit",)

    def fruits(self, spec: ScenarioSpec, label: str) -> list[str]:
        return [w for w in spec.object(label).words if w.lower() in FRUIT_COLOURS]

    def partner(self, spec: ScenarioSpec, label: str) -> str | None:
        """The object that names the fruit for ``label`` (the icon for the juice)."""
        if self.fruits(spec, label):
            return None
        return next((o.name for o in spec.objects if o.name != label and "fruit" in o.attributes
                     and self.fruits(spec, o.name)), None)  # fmt: skip

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        if self.fruits(spec, label) or self.partner(spec, label):
            return None
        return (f"its words name no fruit ({sorted(FRUIT_COLOURS)}) and no other object declaring 'fruit' "
                "names one to pair it with")

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        return {"lab": colour_of(view, view.mask(index))}

    def references(self, spec: ScenarioSpec, label: str) -> dict[str, list[float]]:
        """Each fruit's starting colour: its skin's, or for the juice the juice's own colour word that
        matches it best (``colour: orange, pale yellow or dark red``: banana juice is the pale yellow)."""
        source = self.partner(spec, label) or label
        skins = {f: reference_lab(FRUIT_COLOURS[f.lower()]) or [] for f in self.fruits(spec, source)}
        own = [lab for w in colour_words(spec.object(label).colour) if (lab := reference_lab(w)) is not None]
        if source == label or len(own) != len(skins) or len(own) > 6:
            return skins
        fruits = list(skins)
        best = min(permutations(own),
                   key=lambda p: sum(colour_distance(skins[f], c) for f, c in zip(fruits, p, strict=True)))
        return dict(zip(fruits, best, strict=True))

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        references = self.references(spec, label)
        partner = self.partner(spec, label)
        groups: dict[str, list[list[float]]] = {}
        for image in normal:
            for i in image.indices([label]):
                lab = self.features(image, i)["lab"]
                if partner is None:
                    groups.setdefault(nearest(lab, references), []).append(lab)
                    continue
                icons = image.indices([partner])
                if len(icons) == 1:  # the icon's fruit by its own colour: the reference is good enough here
                    fruit = nearest(self.features(image, icons[0])["lab"], references)
                    groups.setdefault(fruit, []).append(lab)
        if not groups:
            return None
        centroids = {f: [float(v) for v in np.median(np.asarray(groups[f]), axis=0)] if f in groups else references[f]
                     for f in references}  # fmt: skip
        return {"centroids": centroids, "examples": {f: len(groups.get(f, [])) for f in references}}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"centroids": self.references(spec, label)}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        return {"fruit": nearest(self.features(image, index)["lab"], params["centroids"])}


class Terminals(Provider):
    """``terminals``: the clamp each end of a cable enters, ``[left, right]`` counted from 1 at the top.

    An end is where the cable comes within reach of a connector (an object declaring ``clamps``);
    its terminal is the connector's lever nearest to that point along the connector's long axis.
    A free end (no connector there, a cut cable's piece) is ``None``; the slot is the side of the
    connector, so a cable whose left connector is missing reads ``[None, 3]``.
    """

    attributes = ("terminals",)
    MIN_TOUCH = 3  # pixels of the cable within reach of the connector that make a contact
    GAP = 4.0  # pixels between a cable end and its connector that still make a contact (masks a little small)

    def holders(self, spec: ScenarioSpec) -> list[str]:
        return [o.name for o in spec.objects if "clamps" in o.attributes]

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        if not self.holders(spec):
            return "it needs an object that declares 'clamps' (the connector whose clamps the ends enter)"
        return None

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        cable = view.mask(index)
        area = int(cable.sum())
        contour = cv2.findContours(cable.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
        perimeter = max((cv2.arcLength(c, True) for c in contour), default=1.0)
        reach = 2.0 * area / max(perimeter, 1.0) + self.GAP  # about the cable's thickness, and a gap
        contacts = []
        for j in view.indices(self.holders(spec)):
            near = cable & (view.distance(j) <= reach)
            if int(near.sum()) >= self.MIN_TOUCH:
                ys, xs = np.nonzero(near)
                contacts.append([j, float(xs.mean()), float(ys.mean())])
        return {"contacts": contacts}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        ends: list[int | None] = [None, None]
        clamps = PROVIDERS["clamps"]
        assert isinstance(clamps, Clamps)
        for j, x, y in self.features(image, index)["contacts"]:
            holder = image.objects[int(j)]
            levers = clamps.levers(image, int(j), calibration.params(holder.label, "clamps"))
            if not levers:
                continue
            ux, uy = clamps.clamp_axis(image, int(j), levers)
            along = x * ux + y * uy
            nearest_lever = min(range(len(levers)), key=lambda k: abs(levers[k][1] * ux + levers[k][2] * uy - along))
            ends[0 if side_of(holder, image.width) == "left" else 1] = nearest_lever + 1
        return {"terminals": ends}


def grid_of(
    spec: ScenarioSpec, label: str | None = None, container: str | None = None
) -> tuple[str, str, int, int] | None:
    """``(label, container, rows, cols)`` of the spec's ``grid(label, container, rows, cols)`` measure."""
    for expressions in spec.measures.values():
        for expression in expressions:
            for func, args in expression.calls:
                if func != "grid" or len(args) < 4 or not all(isinstance(a, int) for a in args[2:4]):
                    continue
                if (label is None or args[0] == label) and (container is None or args[1] == container):
                    return str(args[0]), str(args[1]), int(args[2]), int(args[3])
    return None


class Cell(Provider):
    """``cell``: ``[row, col]`` (from 0) of the grid cell of the container the object's centre lies in,
    the grid being the spec's ``grid(label, container, rows, cols)`` measure."""

    attributes = ("cell",)

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        if grid_of(spec, label=label) is None:
            return f"it needs a grid({label!r}, container, rows, cols) measure in the spec"
        return None

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        _, container, rows, cols = grid_of(spec, label=image.objects[index].label)  # type: ignore[misc]
        holders = [image.objects[i] for i in image.indices([container])]
        if not holders:
            return {}
        holder = max(holders, key=lambda o: o.area)
        return {"cell": list(cell_of(image.objects[index].centroid, holder.bbox, rows, cols))}


class Separators(Provider):
    """``separators_complete`` and ``missing_separators`` of a compartment box.

    The box's bounding box is split into the spec's grid; each separator between two neighbouring
    cells is a light wall across the darker floor. Its strength is how much brighter the brightest
    line near where the wall should be is than the floor there (medians along the wall, so a pin
    lying across it does not count); a wall is missing when it is less than half as strong as the
    normal images' walls. ``missing_separators`` lists each missing wall as the two cells
    ``[[row, col], [row, col]]`` it separates (from 0).
    """

    attributes = ("separators_complete", "missing_separators")
    DEFAULT_STRENGTH = 1.35  # wall / floor brightness of a wall that is there
    SEARCH = 0.2  # the wall is looked for within this share of a cell around its expected place
    INSET = 0.2  # the share of a wall at each end (near the crossings) left out

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        if grid_of(spec, container=label) is None:
            return f"it needs a grid(label, {label!r}, rows, cols) measure in the spec"
        return None

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        _, _, rows, cols = grid_of(spec, container=view.objects[index].label)  # type: ignore[misc]
        x0, y0, x1, y1 = view.objects[index].bbox
        cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
        grey = view.image.min(axis=2).astype(np.float32)  # saturated pins are dark here, grey walls not
        walls = []
        for r in range(rows):
            for c in range(1, cols):  # the wall left of cell (r, c)
                band = self._band(grey, x0 + c * cw, y0 + r * ch, y0 + (r + 1) * ch, cw, vertical=True)
                walls.append([[r, c - 1], [r, c], band])
        for r in range(1, rows):
            for c in range(cols):  # the wall above cell (r, c)
                band = self._band(grey, y0 + r * ch, x0 + c * cw, x0 + (c + 1) * cw, ch, vertical=False)
                walls.append([[r - 1, c], [r, c], band])
        return {"walls": walls}

    def _band(self, grey: np.ndarray, at: float, start: float, end: float, cell: float, vertical: bool) -> float:
        """Wall strength: the brightest line's median over the floor's median, near ``at``."""
        lo, hi = at - self.SEARCH * cell, at + self.SEARCH * cell
        inset = self.INSET * (end - start)
        a, b = round(start + inset), round(end - inset)
        p, q = max(0, math.floor(lo)), math.ceil(hi) + 1
        region = grey[a:b, p:q] if vertical else grey[p:q, a:b].T
        if region.size == 0:
            return 1.0
        profile = np.median(region, axis=0)  # one value per line across the wall
        return float(profile.max() / max(float(np.median(profile)), 1.0))

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        strengths = [w[2] for image in normal for i in image.indices([label]) for w in self.features(image, i)["walls"]]
        return {"wall_strength": _median(strengths)} if strengths else None

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"wall_strength": self.DEFAULT_STRENGTH}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        threshold = 1.0 + 0.5 * (params["wall_strength"] - 1.0)
        missing = [[a, b] for a, b, strength in self.features(image, index)["walls"] if strength < threshold]
        return {"separators_complete": not missing, "missing_separators": missing}


def container_of(spec: ScenarioSpec, image: Measured, index: int) -> ImageObject | None:
    """The largest object of the spec's ``within`` label for this object's label (None: none found)."""
    within = spec.object(image.objects[index].label).within
    found = [image.objects[i] for i in image.indices([within])] if within else []
    return max(found, key=lambda o: o.area) if found else None


def _needs_within(spec: ScenarioSpec, label: str) -> str | None:
    if spec.object(label).within is None:
        return f"it is measured against the object it lies in: give {label!r} a 'within' (e.g. within: bottle)"
    return None


class Fill(Provider):
    """``fill``: how high a filling (juice) reaches in its container, against the normal images.

    The level is the filling's top edge as a share of the container's height from its top; a level
    more than ``TOLERANCE`` of the normal level (or six robust deviations of it) above the normal
    one is ``too much``, below it ``too little``.
    """

    attributes = ("fill",)
    DEFAULT_LEVEL = 0.21  # the neck's base, as a share of the bottle's height (MVTec LOCO juice_bottle)
    TOLERANCE = 0.25

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        return _needs_within(spec, label)

    def level(self, spec: ScenarioSpec, image: Measured, index: int) -> float | None:
        holder = container_of(spec, image, index)
        if holder is None:
            return None
        return (image.objects[index].bbox[1] - holder.bbox[1]) / max(holder.height, 1)

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        levels = [v for image in normal for i in image.indices([label])
                  if (v := self.level(spec, image, i)) is not None]  # fmt: skip
        if not levels:
            return None
        normal_level = _median(levels)
        return {"level": normal_level, "tolerance": max(6 * _spread(levels), self.TOLERANCE * normal_level)}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"level": self.DEFAULT_LEVEL, "tolerance": self.TOLERANCE * self.DEFAULT_LEVEL}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        level = self.level(spec, image, index)
        if level is None:
            return {}
        if level < params["level"] - params["tolerance"]:
            return {"fill": "too much"}
        if level > params["level"] + params["tolerance"]:
            return {"fill": "too little"}
        return {"fill": "just right"}


class Position(Provider):
    """``position``: ``top`` or ``bottom`` of its container, split where the normal images' objects of
    this kind part (midway between the labels' normal heights), else at the middle."""

    attributes = ("position",)

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        return _needs_within(spec, label)

    def height(self, spec: ScenarioSpec, image: Measured, index: int) -> float | None:
        holder = container_of(spec, image, index)
        if holder is None:
            return None
        return (image.objects[index].centroid[1] - holder.bbox[1]) / max(holder.height, 1)

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        labels = [o.name for o in spec.objects if "position" in o.attributes and o.within == spec.object(label).within]
        medians = []
        for name in labels:
            heights = [h for image in normal for i in image.indices([name])
                       if (h := self.height(spec, image, i)) is not None]  # fmt: skip
            if heights:
                medians.append(_median(heights))
        if len(medians) < 2:
            return None
        return {"split": (min(medians) + max(medians)) / 2}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"split": 0.5}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        height = self.height(spec, image, index)
        if height is None:
            return {}
        return {"position": "top" if height < params["split"] else "bottom"}


class Centred(Provider):
    """``centred``: the object sits on its container's centre line, and straight.

    The offset is the distance of the object's rotated-box centre from the container's, along the
    container's crosswise axis, as a share of the container's width there. The tilt is the angle of
    the object's long axis against the container's (0–180°), read only when the object has one
    (its rotated box at least ``ELONGATED`` times as long as wide: a label, not a round icon), so an
    icon turned with its tilted label is still straight on it. Both are judged against the
    normal images: beyond twice the normal deviation (its 90th percentile, so a few odd masks do not
    widen it) and at least ``MIN_OFFSET`` of the width or ``MIN_TILT`` degrees is not centred. When
    the normal objects show no common direction, tilt is not judged.
    """

    attributes = ("centred",)
    MIN_OFFSET, MIN_TILT = 0.1, 5.0
    ELONGATED = 1.35
    MAX_TILT_SPREAD = 30.0  # beyond this the normal objects have no common direction

    def supports(self, spec: ScenarioSpec, label: str) -> str | None:
        return _needs_within(spec, label)

    def measure(self, spec: ScenarioSpec, view: ImageView, index: int) -> dict[str, Any]:
        within = spec.object(view.objects[index].label).within
        holders = view.indices([within]) if within else []
        if not holders:
            return {}
        holder = oriented(view.mask(max(holders, key=lambda i: view.objects[i].area)))
        mine = oriented(view.mask(index))
        vertical = abs(holder.axis[1]) > abs(holder.axis[0])  # a bottle stands; a label lies across
        across = (holder.axis[1], -holder.axis[0]) if vertical else holder.axis
        across = across if across[0] >= 0 else (-across[0], -across[1])  # pointing right
        width = holder.width if vertical else holder.length
        dx = (mine.centre[0] - holder.centre[0]) * across[0] + (mine.centre[1] - holder.centre[1]) * across[1]
        tilt = None
        if mine.length >= self.ELONGATED * mine.width:  # against the container's direction, when it has one
            tilt = _direction(mine) - (_direction(holder) if holder.length >= self.ELONGATED * holder.width else 0.0)
            tilt %= 180.0
        return {"offset": dx / max(width, 1.0), "tilt": tilt}

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        poses = [f for image in normal for i in image.indices([label]) if (f := self.features(image, i))]
        if not poses:
            return None
        offsets = np.asarray([f["offset"] for f in poses], float)
        offset = float(np.median(offsets))
        params: dict[str, Any] = {
            "offset": offset,
            "offset_tolerance": max(2 * float(np.percentile(np.abs(offsets - offset), 90)), self.MIN_OFFSET),
            "tilt": None, "tilt_tolerance": None,
        }  # fmt: skip
        tilts = [f["tilt"] for f in poses if f["tilt"] is not None]
        if tilts:
            doubled = np.radians(2 * np.asarray(tilts))  # directions: 0° and 180° are the same
            rough = math.degrees(math.atan2(np.sin(doubled).mean(), np.cos(doubled).mean())) / 2
            turns = np.asarray([_turn(t, rough) for t in tilts])
            tilt = (rough + float(np.median(turns))) % 180.0  # the median direction, near the mean one
            spread = 2 * float(np.percentile(np.abs([_turn(t, tilt) for t in tilts]), 90))
            if spread <= self.MAX_TILT_SPREAD:
                params |= {"tilt": tilt, "tilt_tolerance": max(spread, self.MIN_TILT)}
        return params

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"offset": 0.0, "offset_tolerance": self.MIN_OFFSET, "tilt": None, "tilt_tolerance": None}

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        pose = self.features(image, index)
        if not pose:
            return {}
        centred = abs(pose["offset"] - params["offset"]) <= params["offset_tolerance"]
        if params.get("tilt") is not None and pose["tilt"] is not None:
            centred = centred and abs(_turn(pose["tilt"], params["tilt"])) <= params["tilt_tolerance"]
        return {"centred": bool(centred)}


def _direction(box: Oriented) -> float:
    """The long axis's direction in degrees, 0–180."""
    return math.degrees(math.atan2(box.axis[1], box.axis[0])) % 180.0


def _turn(a: float, b: float) -> float:
    """The signed angle from direction ``b`` to ``a`` (degrees, directions taken modulo 180)."""
    return (a - b + 90.0) % 180.0 - 90.0


class Amount(Provider):
    """``amount``: ``just right``, ``too much`` or ``too little`` of a heap (cereals), by its area
    against the normal images' median (beyond ``TOLERANCE`` of it, or six robust deviations)."""

    attributes = ("amount",)
    DEFAULT_SHARE = 0.2  # the normal cereals' share of the image (the generated breakfast_box)
    TOLERANCE = 0.3

    def fit(self, spec: ScenarioSpec, label: str, normal: Sequence[Measured]) -> dict[str, Any] | None:
        shares = [self.share(image, i) for image in normal for i in image.indices([label])]
        if not shares:
            return None
        share = _median(shares)
        return {"share": share, "tolerance": max(6 * _spread(shares), self.TOLERANCE * share)}

    def default(self, spec: ScenarioSpec, label: str) -> dict[str, Any]:
        return {"share": self.DEFAULT_SHARE, "tolerance": self.TOLERANCE * self.DEFAULT_SHARE}

    def share(self, image: Measured, index: int) -> float:
        return image.objects[index].area / (image.width * image.height)

    def assign(
        self, spec: ScenarioSpec, image: Measured, index: int, params: Mapping[str, Any], calibration: Calibration
    ) -> dict[str, Any]:
        share = self.share(image, index)
        if share > params["share"] + params["tolerance"]:
            return {"amount": "too much"}
        if share < params["share"] - params["tolerance"]:
            return {"amount": "too little"}
        return {"amount": "just right"}


_PROVIDER_LIST: tuple[Provider, ...] = (
    LengthClass(), Clamps(), Side(), Colour(), Fruit(), Terminals(), Cell(), Separators(), Fill(), Position(),
    Centred(), Amount(),
)  # fmt: skip
#: Attribute name → the provider that writes it. Add an attribute here and nowhere else.
PROVIDERS: dict[str, Provider] = {name: p for p in _PROVIDER_LIST for name in p.attributes}
#: Every attribute the stage can write.
STAGE_ATTRIBUTES = frozenset(PROVIDERS)


# --- the stage -------------------------------------------------------------------------------------------


def check_attributes(spec: ScenarioSpec, backend_name: str, backend_attributes: Iterable[str] = ()) -> None:
    """Raise :class:`AttributeUnavailableError` before any image when grounding with this backend and
    the stage cannot write an attribute the spec declares, naming the spec, the measure and the attribute."""
    own = set(backend_attributes)
    readers: dict[tuple[str, str], list[str]] = {}
    for sid, pairs in spec.attribute_reads().items():
        for pair in pairs:
            readers.setdefault(pair, []).append(sid)
    problems = []
    for obj in spec.objects:
        for attribute in obj.attributes:
            if attribute in own:
                continue
            provider = PROVIDERS.get(attribute)
            reason = (f"neither the attribute stage ({', '.join(sorted(STAGE_ATTRIBUTES))}) nor the backend "
                      f"({', '.join(sorted(own)) or 'none'}) writes it") if provider is None \
                else provider.supports(spec, obj.name)  # fmt: skip
            if reason is None:
                continue
            used = readers.get((obj.name, attribute), [])
            names = ", ".join(repr(s) for s in used)
            what = {0: "the spec declares", 1: f"the measure of subquery {names} reads"}.get(
                len(used), f"the measures of subqueries {names} read")
            problems.append(f"{what} attribute {attribute!r} of {obj.name!r}, but {reason}")
    if problems:
        raise AttributeUnavailableError(
            f"scenario spec {spec.scenario!r} cannot be grounded with the {backend_name!r} backend: "
            + "; ".join(problems)
        )


def check_backend(spec: ScenarioSpec, backend: str) -> None:
    """:func:`check_attributes` for a backend named in a grounding config, before its models load."""
    from models.grounding.base import backend_class

    check_attributes(spec, backend, backend_class(backend).attributes)


class AttributeStage:
    """The attributes a spec declares, measured, calibrated and written for one scenario."""

    def __init__(self, spec: ScenarioSpec, backend_name: str = "any", backend_attributes: Iterable[str] = ()) -> None:
        check_attributes(spec, backend_name, backend_attributes)
        self.spec = spec
        self.own = frozenset(backend_attributes)
        self.declared = {o.name: [a for a in o.attributes if a not in self.own] for o in spec.objects}

    def providers(self, label: str) -> list[Provider]:
        """The providers of a label's attributes, each once, in declaration order."""
        return list(dict.fromkeys(PROVIDERS[a] for a in self.declared.get(label, [])))

    def measure(self, image: np.ndarray, objects: Sequence[ImageObject]) -> Measured:
        """The pixel pass: every provider's features of every object that declares its attributes."""
        view = ImageView(image, objects)
        features: list[dict[str, dict[str, Any]]] = []
        for index, obj in enumerate(view.objects):
            found = {p.name: p.measure(self.spec, view, index) for p in self.providers(obj.label)}
            features.append(found)
        return Measured(view.width, view.height, view.objects, features)

    def calibrate(self, normal: Iterable[Measured]) -> Calibration:
        """Fit every declared attribute's thresholds on the normal training images' measurements."""
        normal = list(normal)
        values: dict[str, dict[str, dict[str, Any]]] = {}
        defaults = []
        for obj in self.spec.objects:
            for provider in self.providers(obj.name):
                fitted = provider.fit(self.spec, obj.name, normal)
                if fitted is None:
                    fitted = provider.default(self.spec, obj.name)
                    defaults.append(f"{obj.name}.{provider.name}")
                if fitted:
                    values.setdefault(obj.name, {})[provider.name] = _round(fitted)
        if defaults:
            logger.warning("%s: no normal example for %s; the attribute stage uses defaults there",
                           self.spec.scenario, ", ".join(defaults))
        return Calibration(self.spec.scenario, len(normal), values, tuple(defaults))

    def assign(self, image: Measured, calibration: Calibration) -> list[ImageObject]:
        """The objects with every declared attribute the stage could decide written."""
        out = []
        if calibration.version != ATTRIBUTE_VERSION:
            raise ValueError(
                f"{self.spec.scenario}: the attribute calibration is version {calibration.version}, this code "
                f"writes version {ATTRIBUTE_VERSION}: materialize grounding again to calibrate anew"
            )
        for index, obj in enumerate(image.objects):
            attributes = dict(obj.attributes)
            for provider in self.providers(obj.label):
                params = calibration.params(obj.label, provider.name) or provider.default(self.spec, obj.label)
                for key in provider.attributes:
                    attributes.pop(key, None)  # one home per attribute: the stage's value or none
                attributes.update(provider.assign(self.spec, image, index, params, calibration))
            out.append(replace(obj, attributes=attributes))
        return out

    def apply(self, image: np.ndarray, objects: Sequence[ImageObject], calibration: Calibration) -> list[ImageObject]:
        """Measure and assign one image."""
        return self.assign(self.measure(image, objects), calibration)

"""What every grounding backend shares: the object query, the configuration, the interface, the registry.

A backend turns an RGB image and the scenario's object vocabulary into :class:`ImageObject` records
in pixels of the original image. Backends are looked up by name and imported only when built, so a
weight-free backend never pays for importing torch and open_clip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from models.objects import ImageObject

if TYPE_CHECKING:
    from models.spec import ScenarioSpec

# Bump when a backend's output for the same image and config changes, so old caches are not reused.
GROUNDING_VERSION = 2

# Backends by name, as "module:class". Add a backend here and nowhere else.
BACKENDS: dict[str, str] = {
    "clip_sam": "models.grounding.clip_sam:ClipSamBackend",
    "classical": "models.grounding.classical:ClassicalBackend",
}

_DEVICES = ("auto", "cpu", "cuda")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ObjectQuery:
    """One object of a scenario's vocabulary, as a backend needs it.

    ``name`` is the label written to the table (an object name of the scenario spec); ``words`` are
    open-vocabulary prompts for it (default: the name itself); the hints describe the normal object
    for backends that segment by appearance. A backend uses the hints it can and ignores the rest.
    """

    name: str
    words: tuple[str, ...] = ()
    colour: str | None = None
    shape: str | None = None
    normal_count: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("an ObjectQuery needs a non-empty name (the object name of the scenario spec)")
        words = tuple(w.strip() for w in self.words if w.strip()) or (self.name,)
        object.__setattr__(self, "words", words)
        if self.normal_count is not None and self.normal_count < 0:
            raise ValueError(f"object {self.name!r}: normal_count must be >= 0, got {self.normal_count}")


def queries_from_spec(spec: ScenarioSpec) -> list[ObjectQuery]:
    """A scenario spec's objects as queries (their names become the grounding labels)."""
    return [
        ObjectQuery(name=o.name, words=tuple(o.words), colour=o.colour, shape=o.shape, normal_count=o.normal_count)
        for o in spec.objects
    ]


def _setting(default: Any, help: str, *, cache: bool = True) -> Any:
    """A config field with its help text; ``cache=False`` leaves it out of the config's part of the cache key.

    A field is left out when it changes speed or placement but not the objects found (device, batch
    sizes), or when it is a file path that the backend keys by the file's identity instead, so a cache
    survives a move.
    """
    return field(default=default, metadata={"help": help, "cache": cache})


@dataclass(frozen=True)
class GroundingConfig:
    """Everything that selects and tunes a backend; the Dagster resource mirrors these fields.

    The backend defaults to ``classical``, the weight-free segmenter: the project runs where no weights
    can be downloaded, and ``clip_sam`` needs local SAM and CLIP checkpoint files. Every other default
    is the method's (LogSAD-style): SAM ViT-H automatic masks and OpenCLIP ViT-L-14 (DataComp.XL) text
    matching, used as soon as ``backend`` is ``clip_sam``. Nothing is downloaded.
    """

    backend: str = _setting("classical", "clip_sam (the method's: SAM masks named by CLIP; needs sam_checkpoint "
                                         "and clip_weights) or classical (no weights; only the five generated "
                                         "scenarios' objects).")
    device: str = _setting("auto", "auto = CUDA when present, else CPU; or cpu, cuda, cuda:N.", cache=False)
    precision: str = _setting("auto", "auto = bf16 on CUDA, fp32 on CPU; or fp32/bf16/fp16.")
    # SAM automatic mask generator
    sam_model_type: str = _setting("vit_h", "SAM image encoder: vit_h, vit_l or vit_b.")
    sam_checkpoint: str = _setting("", "Local SAM checkpoint file (e.g. sam_vit_h_4b8939.pth).", cache=False)
    points_per_side: int = _setting(32, "SAM: prompt points per image side (the grid of automatic masks).")
    points_per_batch: int = _setting(64, "SAM: prompt points run together (memory, not results).", cache=False)
    pred_iou_thresh: float = _setting(0.88, "SAM: least predicted mask IoU kept, in [0, 1].")
    stability_score_thresh: float = _setting(0.95, "SAM: least mask stability score kept, in [0, 1].")
    box_nms_thresh: float = _setting(0.7, "SAM: box IoU above which overlapping masks are suppressed, in [0, 1].")
    crop_n_layers: int = _setting(0, "SAM: layers of image crops also segmented (0: the whole image only).")
    min_mask_region_area: int = _setting(0, "SAM: holes and islands smaller than this many pixels are removed.")
    # CLIP scoring of every mask
    clip_model: str = _setting("ViT-L-14", "open_clip model name.")
    clip_weights: str = _setting("", "Local open_clip weights file (.pt or .safetensors) for clip_model.",
                                 cache=False)
    clip_pretrained_tag: str = _setting("datacomp_xl_s13b_b90k", "open_clip pretrained tag of the weights "
                                                                 "(selects their preprocessing).")
    clip_batch_size: int = _setting(32, "Mask crops scored by CLIP together (memory, not results).", cache=False)
    prompt_templates: tuple[str, ...] = _setting(("a photo of a {}.", "a close-up photo of the {}."),
                                                 "Text prompts per object word; each holds {} for the word.")
    background_words: tuple[str, ...] = _setting(("background", "table", "surface", "shadow", "empty space"),
                                                 "Words a mask may match instead of an object (then it is "
                                                 "dropped).")
    crop_padding: float = _setting(0.1, "Context around a mask's box in the crop CLIP sees, as a share of the "
                                           "box's longer side.")
    # Which masks become objects
    min_score: float = _setting(0.3, "Least CLIP probability of a mask's best object label for it to become "
                                     "that object, in [0, 1].")
    min_object_area: int = _setting(64, "Masks with fewer pixels are dropped.")
    max_area_fraction: float = _setting(0.85, "Masks covering more of the image than this share are dropped "
                                              "(background), in [0, 1].")
    dedup_iou: float = _setting(0.7, "Masks of one label overlapping more than this IoU count as one object, "
                                     "in [0, 1].")

    def __post_init__(self) -> None:
        if self.device not in _DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(
                f"GroundingConfig.device must be one of {_DEVICES} or 'cuda:N', got {self.device!r}"
            )
        if self.precision not in _PRECISIONS:
            raise ValueError(
                f"GroundingConfig.precision must be one of {_PRECISIONS}, got {self.precision!r}"
            )
        for name in (
            "pred_iou_thresh",
            "stability_score_thresh",
            "box_nms_thresh",
            "min_score",
            "max_area_fraction",
            "dedup_iou",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"GroundingConfig.{name} must lie in [0, 1], got {value}")
        for name in ("points_per_side", "points_per_batch", "clip_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"GroundingConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not all("{}" in t for t in self.prompt_templates) or not self.prompt_templates:
            raise ValueError(
                "GroundingConfig.prompt_templates must be non-empty and each hold '{}' for the word"
            )

    def replace(self, **changes: Any) -> GroundingConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> dict[str, Any]:
        """The fields that decide which objects are found: the cache key's part from the config."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("cache", True)
        }


class GroundingBackend(ABC):
    """Finds the queried objects in one image.

    Subclasses set :attr:`name`, take a :class:`GroundingConfig` and implement :meth:`ground` and
    :meth:`fingerprint`. What an object *is* beyond its label (a screw's length class, a cable's
    colour) is written by the attribute stage after every backend
    (:mod:`models.grounding.attributes`); :attr:`attributes` lists what a backend writes itself.
    """

    name: ClassVar[str]
    attributes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: GroundingConfig) -> None:
        self.config = config

    @abstractmethod
    def ground(self, image: np.ndarray, queries: Sequence[ObjectQuery]) -> list[ImageObject]:
        """Objects in an H×W×3 RGB uint8 image; labels are query names, coordinates original pixels."""

    def validate(self, queries: Sequence[ObjectQuery]) -> None:
        """Raise before any image is read when this backend cannot ground these queries at all.

        One clear error up front beats the same failure logged for every image; the default
        accepts any vocabulary.
        """
        return None

    def fingerprint(self) -> dict[str, Any]:
        """What decides this backend's output besides the image: config fields and weights identity."""
        return {"backend": self.name, "version": GROUNDING_VERSION, **self.config.fingerprint()}

    def cache_key(self) -> str:
        """A short stable hash of :meth:`fingerprint`, naming this backend's cache folder."""
        text = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_image(image: np.ndarray) -> None:
    """Raise a clear error unless ``image`` is H×W×3 uint8, the only layout backends accept."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise ValueError(f"grounding needs an H×W×3 RGB uint8 image, got {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"grounding got an empty image of shape {image.shape}")


def check_queries(queries: Sequence[ObjectQuery]) -> None:
    """Raise unless there is at least one query and no name repeats (names become table labels)."""
    names = [q.name for q in queries]
    if not names:
        raise ValueError("grounding needs at least one ObjectQuery (the scenario's objects)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"ObjectQuery names must be unique, repeated: {duplicates}")


def available_backends() -> list[str]:
    """Names accepted by :func:`build_backend`."""
    return sorted(BACKENDS)


def backend_class(name: str) -> type[GroundingBackend]:
    """The backend class registered as ``name`` (imports its module, loads no model)."""
    target = BACKENDS.get(name)
    if target is None:
        raise ValueError(f"unknown grounding backend {name!r}: choose one of {available_backends()}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_backend(config: GroundingConfig) -> GroundingBackend:
    """Instantiate the backend ``config.backend`` names (this loads its models)."""
    return backend_class(config.backend)(config)

"""Turning Fig. 3 prompts and targets into model inputs, and batching them.

Rules that a silent mistake would break (see the shared notes):

* ``mm_token_type_ids`` (1 on image tokens) must reach ``forward`` and ``generate``: without it
  Qwen2.5-VL quietly falls back to 1-D positions. The collators always carry it, padded with 0.
* Each image expands to ``t·h·w / merge²`` ``<|image_pad|>`` tokens; truncating inside them fails
  ("Image features and image tokens do not match"). Prompts are never truncated; only the end of a
  target may be cut (``max_length``).
* The prompt is encoded by the processor (which expands the image tokens) and the target by the
  tokenizer alone, then concatenated; that equals tokenising the whole rendered chat because
  ``<|im_start|>assistant\\n`` ends a pre-token. Labels cover the target and its ``<|im_end|>``.
* Right padding for loss batches, left padding for batched generation.

The frame of positions. Targets cite boxes and points in the original image's pixels (grounding measures
them there). The model reads an image resized to the processor's pixel budget (:class:`PixelBudget`:
at native resolution only rounded to multiples of 28 px, 1600×1280 → 1596×1288; with a lowered
``max_pixels`` much smaller), and Qwen2.5-VL's absolute coordinates refer to that resized image. So the
prompt encoder converts the positions of the in-context example's target and of the training target
into the frame of the image they describe (:func:`models.instruct.reasoning.rescale_positions`), here
and nowhere else; the model's replies cite positions in that frame too (only their ``<answer>`` is
parsed, and it carries no positions).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from transformers import BatchFeature
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from models.images import read_rgb
from models.instruct.reasoning import rescale_positions
from models.vlm.prompt import build_messages

IGNORE_INDEX = -100


@dataclass
class EncodedPrompt:
    """One chat prompt up to ``<|im_start|>assistant\\n``, with its two images' pixels."""

    input_ids: torch.Tensor  # (L,) long
    mm_token_type_ids: torch.Tensor  # (L,) long, 1 on image tokens
    pixel_values: torch.Tensor  # (patches, C·T·P·P)
    image_grid_thw: torch.Tensor  # (n_images, 3)
    test_scale: tuple[float, float] = (1.0, 1.0)  # model frame / original pixels of the test image, per axis


@dataclass
class EncodedExample:
    """A prompt followed by assistant tokens; ``label_mask`` marks which of those are scored."""

    prompt: EncodedPrompt
    target_ids: torch.Tensor  # (T,) long
    label_mask: torch.Tensor  # (T,) bool

    @property
    def num_tokens(self) -> int:
        return int(self.prompt.input_ids.numel() + self.target_ids.numel())


@dataclass(frozen=True)
class PromptRequest:
    """One question in Fig. 3 format: images as PIL images or file paths."""

    question: str
    example_image: Any
    example_target: str
    test_image: Any


@dataclass(frozen=True)
class PixelBudget:
    """How the image processor resizes an image: its pixel bounds and its tile (patch × merge)."""

    min_pixels: int
    max_pixels: int
    patch_size: int = 14
    merge_size: int = 2

    @classmethod
    def of(cls, processor) -> PixelBudget:
        image_processor = processor.image_processor
        return cls(int(image_processor.size["shortest_edge"]), int(image_processor.size["longest_edge"]),
                   int(image_processor.patch_size), int(image_processor.merge_size))

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of the image the model sees (the processor's own rounding and bounds)."""
        height, width = smart_resize(height, width, factor=self.patch_size * self.merge_size,
                                     min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        return width, height

    def visual_tokens(self, width: int, height: int) -> int:
        """``<|image_pad|>`` tokens of one ``width`` × ``height`` image."""
        model_width, model_height = self.model_size(width, height)
        return (model_width // self.patch_size) * (model_height // self.patch_size) // self.merge_size ** 2

    def scale(self, image: Image.Image) -> tuple[float, float]:
        """Model frame over original pixels, per axis."""
        model_width, model_height = self.model_size(*image.size)
        return model_width / image.size[0], model_height / image.size[1]


def resolution_table(budget: PixelBudget, image_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Per distinct image size among ``image_paths``: how many images, the size the model sees and its visual
    tokens (``width, height, images, model_width, model_height, visual_tokens``); reads headers only."""
    sizes = Counter()
    for path in dict.fromkeys(str(p) for p in image_paths):
        with Image.open(path) as image:
            sizes[image.size] += 1
    rows = [(w, h, n, *budget.model_size(w, h), budget.visual_tokens(w, h)) for (w, h), n in sorted(sizes.items())]
    return pd.DataFrame(rows, columns=["width", "height", "images", "model_width", "model_height", "visual_tokens"])


MAX_ASPECT_RATIO = 200
"""The Qwen2-VL image processor refuses images longer than 200 times their width (or the reverse)."""


def image_shape_problem(width: int, height: int) -> str | None:
    """Why the processor would refuse a ``width`` × ``height`` image, or None when it takes it."""
    ratio = max(width, height) / max(min(width, height), 1)
    if ratio > MAX_ASPECT_RATIO:
        return (f"is {width}x{height} pixels, an aspect ratio of {ratio:.0f}:1; Qwen2.5-VL's image processor "
                f"takes at most {MAX_ASPECT_RATIO}:1: crop or pad it")
    return None


def load_image(image: Any) -> Image.Image:
    """A PIL RGB image from a PIL image or a path (one the processor would refuse is a ValueError naming it).

    A path is read with :func:`models.images.read_rgb`, the reader grounding uses: the model sees the
    pixels the cited boxes were measured on (EXIF orientation applied, 16-bit and grey converted alike).
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    pixels = read_rgb(image)
    problem = image_shape_problem(pixels.shape[1], pixels.shape[0])
    if problem:
        raise ValueError(f"image {image} {problem}")
    return Image.fromarray(pixels)


class CachedImageProcessor:
    """The processor's image processor with a bounded cache of each image's pixel values.

    Resizing and normalising an image costs about 13 ms per core, which starves a GPU when every epoch
    re-encodes the same few thousand images; the result depends only on the pixels and the settings, so it
    is kept per image (keyed by a hash of the pixels) and reused bit for bit. Each image is processed alone
    and the results concatenated, which is what the wrapped processor returns for the list.
    """

    def __init__(self, inner: Any, max_images: int) -> None:
        self.inner, self.max_images = inner, max_images
        self.cache: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()

    def __getattr__(self, name: str) -> Any:  # merge_size, patch_size, … of the wrapped processor
        return getattr(self.inner, name)

    def _one(self, image: Image.Image, kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
        key = (hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest(), image.size, image.mode,
               repr(sorted(kwargs.items())))
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        out = dict(self.inner([image], **kwargs))
        self.cache[key] = out
        if len(self.cache) > self.max_images:
            self.cache.popitem(last=False)
        return out

    def __call__(self, images: Sequence[Image.Image], **kwargs: Any) -> BatchFeature:
        parts = [self._one(image, kwargs) for image in images]
        return BatchFeature({key: torch.cat([part[key] for part in parts]) for key in parts[0]})


def cache_pixel_values(processor: Any, max_images: int) -> None:
    """Make ``processor`` reuse each image's pixel values (:class:`CachedImageProcessor`), up to ``max_images``."""
    if max_images > 0 and not isinstance(processor.image_processor, CachedImageProcessor):
        processor.image_processor = CachedImageProcessor(processor.image_processor, max_images)


class PromptEncoder:
    """Encodes Fig. 3 prompts and assistant targets with a Qwen2.5-VL processor."""

    def __init__(self, processor, max_length: int | None = None) -> None:
        self.processor = processor
        self.max_length = max_length
        tokenizer = processor.tokenizer
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.end_token_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.budget = PixelBudget.of(processor)

    def encode_prompt(self, request: PromptRequest) -> EncodedPrompt:
        """The prompt, its example target's positions in the example image's model frame."""
        example_image, test_image = load_image(request.example_image), load_image(request.test_image)
        example_target = rescale_positions(request.example_target, *self.budget.scale(example_image))
        messages = build_messages(request.question, example_image, example_target, test_image)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        batch = self.processor(text=[text], images=[example_image, test_image], return_tensors="pt")
        return EncodedPrompt(
            input_ids=batch["input_ids"][0],
            mm_token_type_ids=batch["mm_token_type_ids"][0],
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            test_scale=self.budget.scale(test_image),
        )

    def encode_target(self, target: str) -> torch.Tensor:
        """Token ids of the assistant text followed by ``<|im_end|>``."""
        ids = self.processor.tokenizer(target, add_special_tokens=False)["input_ids"]
        return torch.tensor([*ids, self.end_token_id], dtype=torch.long)

    def encode_example(self, request: PromptRequest, target: str) -> EncodedExample:
        """Prompt + target with every target token labelled (the training case); the target's positions
        in the test image's model frame."""
        prompt = self.encode_prompt(request)
        target_ids = self.encode_target(rescale_positions(target, *prompt.test_scale))
        if self.max_length is not None:
            room = self.max_length - prompt.input_ids.numel()
            if room < 1:
                raise ValueError(
                    f"the prompt alone has {prompt.input_ids.numel()} tokens (images included), more than "
                    f"max_length={self.max_length}; lower max_pixels instead of truncating image tokens"
                )
            target_ids = target_ids[:room]
        return EncodedExample(prompt, target_ids, torch.ones_like(target_ids, dtype=torch.bool))


def request_from_row(row: Mapping[str, Any]) -> PromptRequest:
    """A prompt request from a training/evaluation table row (see ``train.SAMPLE_COLUMNS``)."""
    return PromptRequest(
        question=str(row["question"]),
        example_image=row["example_image_path"],
        example_target=str(row["example_target"]),
        test_image=row["image_path"],
    )


def _pad(sequences: Sequence[torch.Tensor], value: int, left: bool) -> torch.Tensor:
    width = max(int(s.numel()) for s in sequences)
    out = torch.full((len(sequences), width), value, dtype=sequences[0].dtype)
    for i, seq in enumerate(sequences):
        if left:
            out[i, width - seq.numel():] = seq
        else:
            out[i, : seq.numel()] = seq
    return out


def _vision_inputs(prompts: Sequence[EncodedPrompt]) -> dict[str, torch.Tensor]:
    """Pixels and grids in sample order, which is the order of the image tokens in the batch."""
    return {
        "pixel_values": torch.cat([p.pixel_values for p in prompts]),
        "image_grid_thw": torch.cat([p.image_grid_thw for p in prompts]),
    }


def collate_for_loss(examples: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with ``labels`` = target ids where labelled, ``-100`` everywhere else."""
    input_ids, token_types, labels = [], [], []
    for ex in examples:
        input_ids.append(torch.cat([ex.prompt.input_ids, ex.target_ids]))
        token_types.append(torch.cat([ex.prompt.mm_token_type_ids, torch.zeros_like(ex.target_ids)]))
        prompt_labels = torch.full_like(ex.prompt.input_ids, IGNORE_INDEX)
        target_labels = ex.target_ids.masked_fill(~ex.label_mask, IGNORE_INDEX)
        labels.append(torch.cat([prompt_labels, target_labels]))
    ids = _pad(input_ids, pad_token_id, left=False)
    attention = _pad([torch.ones_like(x) for x in input_ids], 0, left=False)
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "mm_token_type_ids": _pad(token_types, 0, left=False),
        "labels": _pad(labels, IGNORE_INDEX, left=False),
        **_vision_inputs([ex.prompt for ex in examples]),
    }


def collate_for_generation(prompts: Sequence[EncodedPrompt], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for batched generation."""
    return {
        "input_ids": _pad([p.input_ids for p in prompts], pad_token_id, left=True),
        "attention_mask": _pad([torch.ones_like(p.input_ids) for p in prompts], 0, left=True),
        "mm_token_type_ids": _pad([p.mm_token_type_ids for p in prompts], 0, left=True),
        **_vision_inputs(prompts),
    }


def move_to(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}

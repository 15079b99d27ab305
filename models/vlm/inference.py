"""Batched greedy generation in the Fig. 3 format, with optional reuse of image features.

Why image-feature reuse and not a shared KV prefix: in Fig. 3 the subquery comes *before* both
images, so the subqueries of one test image share only the system prompt and the first user tokens
(tens of tokens); the image tokens follow text that differs per subquery, so their keys/values
differ too and cannot be copied. What *is* shared is the vision encoder's work: the test image and
the normal example images are the same across subqueries. ``ImageFeatureCache`` encodes each
distinct image once and hands the features to ``generate`` through ``mm_encoder_outputs``
(transformers 5), which skips the vision tower. The result is the same computation (each image is
encoded on its own either way; the vision tower's window attention never mixes images), up to
float reassociation from different batch shapes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Sequence

import torch
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutputWithPooling

from models.vlm.encoding import EncodedPrompt, PromptEncoder, PromptRequest, collate_for_generation, move_to
from models.vlm.model import LoadedVLM, greedy_generation_config

logger = logging.getLogger(__name__)


GENERATION_MARGIN = 16
"""Tokens allowed beyond the longest target (and its end token): a slightly longer answer is not cut."""

TOKEN_BUDGET = 16_384
"""Default tokens per generate() batch: padded prompt length plus the generation limit, times the prompts.

Why a token budget and not a count of prompts: at native resolution one Fig. 3 prompt carries two images
of up to 2,622 visual tokens each (breakfast_box, 1600×1280), so eight prompts are a 45k-token prefill,
while eight prompts of the tiny model's 224² images are a few hundred tokens. 16,384 tokens is two to
three native LOCO prompts per batch: with Qwen2.5-VL-7B in bf16 their KV cache takes about 0.9 GB and the
largest transient activation (the MLP's 18,944-wide hidden state for every token) about 0.6 GB, which fits
next to the weights on a 24 GB GPU."""


def generation_room(targets: Iterable[str], tokenizer) -> int:
    """New tokens enough for the longest target, counted with the model's own tokenizer, plus its end token
    and :data:`GENERATION_MARGIN`.

    Counted, not estimated: Qwen's tokenizer splits numbers into single digits, so the box coordinates
    that the reasoning cites make a target about 2.1 characters a token, and a limit from a guessed ratio
    cuts the ``<answer>`` off long targets (then even a perfect model is scored wrong). Scoring a model on
    its own training targets needs no more: a model that learned them stops there, and one that did not
    (a tiny random model) never emits the end token, so more is waste.
    """
    texts = [str(t) for t in targets]
    if not texts:
        raise ValueError("generation_room needs at least one target text")
    lengths = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return max(len(ids) for ids in lengths) + 1 + GENERATION_MARGIN


def prompt_batches(requests: Sequence[PromptRequest], encoder: PromptEncoder, *, max_new_tokens: int,
                   batch_size: int | None = None,
                   token_budget: int = TOKEN_BUDGET) -> Iterator[tuple[list[int], list[EncodedPrompt]]]:
    """Encode ``requests`` in order and group them into batches: ``(request indices, prompts)``.

    ``batch_size`` (when given) caps the prompts per batch; the padded batch, ``prompts × (longest prompt
    + max_new_tokens)`` tokens, stays within ``token_budget`` except that a prompt that alone exceeds it
    is a batch of its own. Prompts are encoded one at a time, so only one batch's pixels are in memory.
    """
    indices: list[int] = []
    prompts: list[EncodedPrompt] = []
    width = 0
    for index, request in enumerate(requests):
        prompt = encoder.encode_prompt(request)
        wider = max(width, int(prompt.input_ids.numel()) + max_new_tokens)
        full = batch_size is not None and len(prompts) >= batch_size
        if prompts and (full or wider * (len(prompts) + 1) > token_budget):
            yield indices, prompts
            indices, prompts, wider = [], [], int(prompt.input_ids.numel()) + max_new_tokens
        indices.append(index)
        prompts.append(prompt)
        width = wider
    if prompts:
        yield indices, prompts


def trim_generated(new_ids: torch.Tensor, stop_ids: set[int]) -> list[torch.Tensor]:
    """Per row: the generated tokens up to and including the first stop token (padding dropped)."""
    rows = []
    for row in new_ids:
        stops = [i for i, token in enumerate(row.tolist()) if token in stop_ids]
        rows.append(row[: stops[0] + 1] if stops else row)
    return rows


@torch.no_grad()
def generate_ids(vlm: LoadedVLM, prompts: Sequence[EncodedPrompt], max_new_tokens: int,
                 image_features: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Greedy continuation of already encoded prompts in one left-padded batch (KV cache on).

    ``image_features``: the vision tower's output per image, in the order of the images in
    ``prompts`` (two per prompt); when given, pixels are not encoded again.
    """
    pad_id = int(vlm.tokenizer.pad_token_id)
    batch = move_to(collate_for_generation(prompts, pad_id), vlm.device)
    if image_features is not None:
        batch.pop("pixel_values")
        features = tuple(f.to(vlm.device) for f in image_features)
        batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=features)}
    config = greedy_generation_config(vlm.tokenizer, max_new_tokens)
    output = vlm.model.generate(**batch, generation_config=config)
    new_ids = output[:, batch["input_ids"].shape[1]:].cpu()
    return trim_generated(new_ids, set(config.eos_token_id))


def decode(vlm: LoadedVLM, ids: Sequence[torch.Tensor]) -> list[str]:
    return vlm.tokenizer.batch_decode([row.tolist() for row in ids], skip_special_tokens=True)


def generate(vlm: LoadedVLM, requests: Sequence[PromptRequest], *, max_new_tokens: int = 256,
             batch_size: int | None = None, token_budget: int = TOKEN_BUDGET,
             progress: bool = False) -> list[str]:
    """Answers (``<think>…</think><answer>…</answer>`` text) to Fig. 3 prompts, greedy, in order; batches
    as :func:`prompt_batches` forms them."""
    encoder = PromptEncoder(vlm.processor)
    texts: list[str] = []
    batches = prompt_batches(requests, encoder, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             token_budget=token_budget)
    for _, prompts in tqdm(batches, desc="generate", disable=not progress):
        texts.extend(decode(vlm, generate_ids(vlm, prompts, max_new_tokens)))
    return texts


class ImageFeatureCache:
    """Vision-tower outputs per image key (e.g. the image path), computed once per image.

    ``max_entries`` bounds the cache, least recently used first out: a whole test split at native
    resolution would otherwise pile up (a 7B model's features of one 1600×1100 image take ~16 MB).
    With requests ordered by test image, a small bound loses nothing: the shared example image is
    used by every request and stays, and a test image is done before the next one starts.
    """

    def __init__(self, vlm: LoadedVLM, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.vlm = vlm
        self.max_entries = max_entries
        self.computed = 0  # vision-tower calls made, evicted images that came back included
        self._features: OrderedDict[Hashable, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._features)

    @torch.no_grad()
    def features(self, key: Hashable | None, pixel_values: torch.Tensor,
                 grid_thw: torch.Tensor) -> torch.Tensor:
        """The image's features; ``key=None`` (an in-memory image) computes them without caching."""
        if key in self._features:
            self._features.move_to_end(key)
            return self._features[key]
        device = self.vlm.device
        out = self.vlm.base_model.get_image_features(pixel_values.to(device), grid_thw.to(device))
        self.computed += 1
        if key is not None:
            self._features[key] = out.pooler_output[0]
            if self.max_entries is not None and len(self._features) > self.max_entries:
                self._features.popitem(last=False)
        return out.pooler_output[0]


def _split_pixels(prompt: EncodedPrompt) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The prompt's per-image (pixel rows, grid) pairs."""
    sizes = prompt.image_grid_thw.prod(-1).tolist()
    pixels = torch.split(prompt.pixel_values, sizes)
    return [(p, prompt.image_grid_thw[i:i + 1]) for i, p in enumerate(pixels)]


def generate_with_image_cache(vlm: LoadedVLM, requests: Sequence[PromptRequest], *,
                              max_new_tokens: int = 256, batch_size: int | None = None,
                              token_budget: int = TOKEN_BUDGET, cache: ImageFeatureCache | None = None,
                              progress: bool = False) -> list[str]:
    """Like ``generate`` but every distinct image file goes through the vision tower once.

    Batch the subqueries of one test image together for the best effect.
    """
    encoder = PromptEncoder(vlm.processor)
    cache = ImageFeatureCache(vlm) if cache is None else cache
    texts: list[str] = []
    batches = prompt_batches(requests, encoder, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             token_budget=token_budget)
    for indices, prompts in tqdm(batches, desc="generate", disable=not progress):
        features = []
        for index, prompt in zip(indices, prompts, strict=True):
            request = requests[index]
            keys = [_image_key(request.example_image), _image_key(request.test_image)]
            for key, (pixels, grid) in zip(keys, _split_pixels(prompt), strict=True):
                features.append(cache.features(key, pixels, grid))
        texts.extend(decode(vlm, generate_ids(vlm, prompts, max_new_tokens, image_features=features)))
    logger.info("image feature cache: %d vision-tower calls for %d requests", cache.computed, len(requests))
    return texts


def _image_key(image) -> str | None:
    """Paths are cache keys; in-memory images are not cached (their identity is not stable)."""
    return str(image) if isinstance(image, str) or hasattr(image, "__fspath__") else None

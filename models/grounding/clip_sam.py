"""The method's grounding (LogSAD-style): SAM proposes masks, CLIP names them.

SAM's automatic mask generator proposes class-agnostic masks over a grid of point prompts. Each mask
that is neither a speck nor most of the image is cut out (its box, padded, with everything outside
the mask set to CLIP's mean colour so only the object speaks) and scored by CLIP against every
object's words and some background words. A mask takes the object whose best word scores highest;
masks that look like background or score low are dropped, and of two masks covering nearly the same
pixels the better-scoring one stays. Coordinates are those of the original image because SAM maps
its masks back to the input size.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import MaskData, rle_to_mask

from models.devices import resolve_device, resolve_dtype
from models.grounding.base import GroundingBackend, GroundingConfig, ObjectQuery, check_image, check_queries
from models.grounding.weights import file_identity, load_clip, load_sam
from models.objects import ImageObject, object_from_mask

logger = logging.getLogger(__name__)


@dataclass
class Proposal:
    """One SAM mask with its box (exclusive ends) and SAM's own quality estimates."""

    mask: np.ndarray
    box: tuple[int, int, int, int]
    area: int
    sam_iou: float
    stability: float


@dataclass(frozen=True)
class Vocabulary:
    """CLIP text embeddings of every word and the labels they stand for (a None label is background).

    ``membership`` is words × labels, True where the word is one of the label's words.
    """

    features: torch.Tensor
    membership: torch.Tensor
    labels: tuple[str | None, ...]


class MixedPrecisionMaskGenerator(SamAutomaticMaskGenerator):
    """SAM's automatic mask generator that tolerates bf16/fp16 autocast.

    Under autocast SAM's quality scores come out in half precision, which the stock generator
    cannot turn into NumPy arrays; each batch's half-precision results are made fp32 here.
    """

    def _process_batch(self, *args: object, **kwargs: object) -> MaskData:
        data = super()._process_batch(*args, **kwargs)
        for key, value in list(data.items()):
            if isinstance(value, torch.Tensor) and value.dtype in (torch.bfloat16, torch.float16):
                data[key] = value.float()
        return data


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of a non-empty mask, exclusive ends."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_iou(a: Proposal, b: Proposal) -> float:
    """Pixel IoU of two proposals, counting the intersection only inside the boxes' overlap."""
    x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = int(np.count_nonzero(a.mask[y0:y1, x0:x1] & b.mask[y0:y1, x0:x1]))
    return inter / (a.area + b.area - inter)


def select_masks(
    proposals: Sequence[Proposal],
    probs: np.ndarray,
    labels: Sequence[str | None],
    min_score: float,
    dedup_iou: float,
) -> list[tuple[int, str, float]]:
    """``(proposal index, label, score)`` of the masks that become objects, best first.

    ``probs`` is proposals × labels; a ``None`` label is background. Each mask keeps its best label;
    background and scores below ``min_score`` are dropped; a mask whose IoU with a better one already
    kept exceeds ``dedup_iou`` is a duplicate and dropped too.
    """
    best = probs.argmax(axis=1)
    scores = probs[np.arange(len(best)), best]
    kept: list[tuple[int, str, float]] = []
    for i in np.argsort(-scores, kind="stable"):
        label = labels[best[i]]
        if label is None or scores[i] < min_score:
            continue
        if any(mask_iou(proposals[i], proposals[j]) > dedup_iou for j, _, _ in kept):
            continue
        kept.append((int(i), label, float(scores[i])))
    return kept


def masked_crop(
    image: np.ndarray, proposal: Proposal, padding: float, size: int, fill: np.ndarray
) -> np.ndarray:
    """The proposal's padded box as a ``size``×``size`` RGB square, pixels outside the mask set to ``fill``.

    The box is padded to a square with ``fill`` before resizing, so long thin objects (a cable, a
    screw) keep their shape instead of being cropped away by a centre crop.
    """
    h, w = proposal.mask.shape
    x0, y0, x1, y1 = proposal.box
    pad = round(padding * max(x1 - x0, y1 - y0))
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    crop = np.where(proposal.mask[y0:y1, x0:x1, None], image[y0:y1, x0:x1], fill)
    side = max(crop.shape[0], crop.shape[1])
    square = np.empty((side, side, 3), dtype=np.uint8)
    square[:] = fill
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def query_words(query: ObjectQuery) -> list[str]:
    """The prompts for one object: its words, and each with the colour hint in front when it lacks it."""
    words = list(query.words)
    if query.colour:
        words += [f"{query.colour} {w}" for w in query.words if query.colour.lower() not in w.lower()]
    return words


def vocabulary_words(
    queries: Sequence[ObjectQuery], background_words: Sequence[str]
) -> tuple[list[str], list[int], tuple[str | None, ...]]:
    """Every word to embed, the index of the label it stands for, and the labels (None: background)."""
    words: list[str] = []
    groups: list[int] = []
    for g, query in enumerate(queries):
        query_prompts = query_words(query)
        words += query_prompts
        groups += [g] * len(query_prompts)
    labels: list[str | None] = [q.name for q in queries]
    if background_words:
        words += background_words
        groups += [len(queries)] * len(background_words)
        labels.append(None)
    return words, groups, tuple(labels)


class ClipSamBackend(GroundingBackend):
    """SAM automatic masks named by OpenCLIP; see the module docstring for the method."""

    name = "clip_sam"
    attributes = frozenset({"sam_iou", "stability"})

    def __init__(self, config: GroundingConfig) -> None:
        super().__init__(config)
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.precision, self.device)
        sam = load_sam(config.sam_model_type, config.sam_checkpoint, self.device)
        self.generator = MixedPrecisionMaskGenerator(
            sam,
            points_per_side=config.points_per_side,
            points_per_batch=config.points_per_batch,
            pred_iou_thresh=config.pred_iou_thresh,
            stability_score_thresh=config.stability_score_thresh,
            box_nms_thresh=config.box_nms_thresh,
            crop_n_layers=config.crop_n_layers,
            min_mask_region_area=config.min_mask_region_area,
            output_mode="uncompressed_rle",
        )
        self.clip, self.tokenizer, preprocess = load_clip(
            config.clip_model, config.clip_weights, config.clip_pretrained_tag, self.device
        )
        size = preprocess["size"]
        self.clip_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.clip_mean = torch.tensor(preprocess["mean"], device=self.device).view(1, 3, 1, 1)
        self.clip_std = torch.tensor(preprocess["std"], device=self.device).view(1, 3, 1, 1)
        self.fill = np.round(np.asarray(preprocess["mean"]) * 255).astype(np.uint8)
        self._vocabularies: dict[tuple[ObjectQuery, ...], Vocabulary] = {}

    def fingerprint(self) -> dict[str, object]:
        """Config plus the identity of both weight files (a new checkpoint means new objects)."""
        return {
            **super().fingerprint(),
            "sam_weights": file_identity(self.config.sam_checkpoint),
            "clip_weights": file_identity(self.config.clip_weights),
        }

    def ground(self, image: np.ndarray, queries: Sequence[ObjectQuery]) -> list[ImageObject]:
        """Objects in ``image``: SAM proposals that CLIP names after one of ``queries``."""
        check_image(image)
        check_queries(queries)
        vocabulary = self.vocabulary(queries)
        start = time.perf_counter()
        proposals = self.propose(image)
        sam_s = time.perf_counter() - start
        if not proposals:
            return []
        probs = self.label_probabilities(image, proposals, vocabulary)
        chosen = select_masks(
            proposals, probs, vocabulary.labels, self.config.min_score, self.config.dedup_iou
        )
        logger.debug(
            "clip_sam: %d proposals -> %d objects (SAM %.2f s, CLIP %.2f s)",
            len(proposals),
            len(chosen),
            sam_s,
            time.perf_counter() - start - sam_s,
        )
        return [
            object_from_mask(
                proposals[i].mask,
                label,
                score,
                {"sam_iou": round(proposals[i].sam_iou, 4), "stability": round(proposals[i].stability, 4)},
            )
            for i, label, score in chosen
        ]

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """No gradients, and autocast to bf16/fp16 where the config or the GPU asks for it."""
        enabled = self.dtype != torch.float32
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled):
            yield

    def propose(self, image: np.ndarray) -> list[Proposal]:
        """SAM's masks that are neither specks nor most of the image (those are never objects)."""
        h, w = image.shape[:2]
        max_area = self.config.max_area_fraction * h * w
        with self._inference():
            records = self.generator.generate(image)
        proposals = []
        for record in records:
            if not self.config.min_object_area <= record["area"] <= max_area:
                continue
            mask = rle_to_mask(record["segmentation"])
            proposals.append(
                Proposal(
                    mask=mask,
                    box=mask_box(mask),
                    area=int(record["area"]),
                    sam_iou=float(record["predicted_iou"]),
                    stability=float(record["stability_score"]),
                )
            )
        return proposals

    def vocabulary(self, queries: Sequence[ObjectQuery]) -> Vocabulary:
        """Text embeddings of every object word and background word (cached per query set).

        Each word's embedding is the normalised mean over the prompt templates, as in CLIP's
        zero-shot classification.
        """
        key = tuple(queries)
        if key not in self._vocabularies:
            words, groups, labels = vocabulary_words(queries, self.config.background_words)
            self._vocabularies[key] = Vocabulary(
                features=self._encode_words(words),
                membership=torch.as_tensor(np.equal.outer(groups, range(len(labels))), device=self.device),
                labels=labels,
            )
        return self._vocabularies[key]

    def _encode_words(self, words: Sequence[str]) -> torch.Tensor:
        """Words × D normalised text features, each the mean over the prompt templates."""
        templates = self.config.prompt_templates
        prompts = [t.format(word) for word in words for t in templates]
        with self._inference():
            tokens = self.tokenizer(prompts).to(self.device)
            features = self.clip.encode_text(tokens, normalize=True).float()
        features = features.view(len(words), len(templates), -1).mean(dim=1)
        return torch.nn.functional.normalize(features, dim=-1)

    def label_probabilities(
        self, image: np.ndarray, proposals: Sequence[Proposal], vocabulary: Vocabulary
    ) -> np.ndarray:
        """Proposals × labels probabilities: softmax over labels of each label's best-word logit.

        Taking the best word rather than summing over words keeps an object with many words from
        winning by their number alone.
        """
        scale = float(self.clip.logit_scale.detach().exp())
        n_labels = len(vocabulary.labels)
        out = np.empty((len(proposals), n_labels), dtype=np.float64)
        size = self.config.clip_batch_size
        for start in range(0, len(proposals), size):
            batch = proposals[start : start + size]
            features = self._encode_crops(image, batch)
            word_logits = scale * features @ vocabulary.features.T
            label_logits = word_logits[:, :, None].masked_fill(~vocabulary.membership, -torch.inf).amax(dim=1)
            out[start : start + len(batch)] = label_logits.softmax(dim=1).cpu().double().numpy()
        return out

    def _encode_crops(self, image: np.ndarray, proposals: Sequence[Proposal]) -> torch.Tensor:
        """Normalised CLIP image features of the proposals' masked crops."""
        crops = np.stack(
            [masked_crop(image, p, self.config.crop_padding, self.clip_size, self.fill) for p in proposals]
        )
        pixels = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        pixels = (pixels - self.clip_mean) / self.clip_std
        with self._inference():
            return self.clip.encode_image(pixels, normalize=True).float()

"""Per-token negative log-likelihood at chosen positions, and per-sample difficulty inputs.

Why not the model's built-in loss: it is a token mean over the whole batch (we need per-sample
sums, for perplexity and for exact gradient equality across data-parallel shards), and it applies
``lm_head`` to every position. With the real vocabulary (151,936) full fp32 logits for a batch
(B=8, L=2k) take ≈ 9.7 GB. ``TargetTokenNLL`` runs the decoder, then applies ``lm_head`` only at
the labelled positions.

Perplexity of a greedy output (Eq. 4's ``Perplexity(ŷ_i)``), as implemented:
``PPL_i = exp(mean NLL of the answer tokens of ŷ_i)``, where the answer tokens are the generated
tokens overlapping the first answer block (:func:`models.envelope.split_envelope`: the text between
``<answer>`` and ``</answer>`` outside the reasoning, to the end if unclosed), scored
by a teacher-forced pass over prompt + greedy output under the current model (eval mode). If the
output has no ``<answer>`` block, or an empty one, all generated tokens count (the end token only
if nothing else was generated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn

from models.envelope import split_envelope
from models.vlm.encoding import (
    IGNORE_INDEX,
    EncodedExample,
    EncodedPrompt,
    PromptEncoder,
    collate_for_loss,
    move_to,
)
from models.vlm.inference import decode, generate_ids
from models.vlm.model import LoadedVLM

AnswerChecker = Callable[[Mapping[str, Any], str], bool]


class TargetTokenNLL(nn.Module):
    """``forward(**batch) -> (nll, sample_index)``: NLL of every labelled token and its row.

    Wraps the (PEFT) model so that DistributedDataParallel can wrap this module: its forward is
    the whole differentiable computation.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mm_token_type_ids: torch.Tensor,
                labels: torch.Tensor, pixel_values: torch.Tensor,
                image_grid_thw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        causal_lm = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        hidden = causal_lm.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            mm_token_type_ids=mm_token_type_ids,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            use_cache=False,
        ).last_hidden_state
        next_tokens = labels[:, 1:]
        scored = next_tokens != IGNORE_INDEX
        logits = causal_lm.lm_head(hidden[:, :-1][scored]).float()
        nll = F.cross_entropy(logits, next_tokens[scored], reduction="none")
        return nll, scored.nonzero()[:, 0]


def answer_positions(token_texts: Sequence[str], ends_with_stop: bool) -> torch.Tensor:
    """Boolean mask over generated tokens: those inside the ``<answer>`` block (see module doc)."""
    n = len(token_texts)
    content = n - 1 if ends_with_stop else n
    mask = torch.zeros(n, dtype=torch.bool)
    if content == 0:
        mask[:] = True
        return mask
    ends = torch.tensor([len(t) for t in token_texts[:content]]).cumsum(0)
    starts = ends - torch.tensor([len(t) for t in token_texts[:content]])
    span = split_envelope("".join(token_texts[:content])).answer_span
    if span is not None:
        begin, end = span
        mask[:content] = (starts < end) & (ends > begin)
    if not mask.any():
        mask[:content] = True
    return mask


@dataclass(frozen=True)
class SampleScore:
    generated: str
    correct: bool
    perplexity: float


@torch.no_grad()
def score_rows(vlm: LoadedVLM, nll_module: TargetTokenNLL, encoder: PromptEncoder,
               rows: Sequence[Mapping[str, Any]], prompts: Sequence[EncodedPrompt], answer_checker: AnswerChecker,
               max_new_tokens: int,
               autocast: Callable[[], AbstractContextManager] = nullcontext) -> list[SampleScore]:
    """Greedy-generate each row's answer from its encoded prompt, check it, and measure its answer
    perplexity (one batch; :func:`models.vlm.inference.prompt_batches` forms it)."""
    with autocast():
        generated = generate_ids(vlm, prompts, max_new_tokens)
    texts = decode(vlm, generated)
    stop_ids = {encoder.end_token_id, encoder.pad_token_id}
    examples = []
    for prompt, ids in zip(prompts, generated, strict=True):
        if ids.numel() == 0:  # only possible with max_new_tokens=0
            raise ValueError("max_new_tokens must be at least 1")
        token_texts = vlm.tokenizer.batch_decode([[t] for t in ids.tolist()])
        mask = answer_positions(token_texts, ends_with_stop=int(ids[-1]) in stop_ids)
        examples.append(EncodedExample(prompt, ids, mask))
    batch = move_to(collate_for_loss(examples, encoder.pad_token_id), vlm.device)
    with autocast():
        nll, rows_of = nll_module(**batch)
    sums = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, rows_of.cpu(), nll.double().cpu())
    counts = torch.bincount(rows_of.cpu(), minlength=len(rows))
    return [
        SampleScore(text, bool(answer_checker(row, text)), math.exp(float(s) / int(c)))
        for row, text, s, c in zip(rows, texts, sums, counts, strict=True)
    ]

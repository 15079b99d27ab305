"""Generation limits in the model's own tokens, and batches by a token budget (#13 item 5).

Qwen's tokenizer (and the tiny model's, trained with Qwen2's pre-tokenizer) splits numbers into single
digits, so a target citing fifteen boxes is about one character a token: a limit of "3 characters a
token" cuts its ``<answer>`` off, and scoring then counts even a perfect model wrong.
"""

import random

import pytest
import torch

from models.envelope import format_target
from models.evaluation.answerers import PredictionConfig
from models.vlm.encoding import PromptEncoder, request_from_row
from models.vlm.inference import GENERATION_MARGIN, TOKEN_BUDGET, generation_room, prompt_batches
from models.vlm.model import LoadedVLM
from models.vlm.prompt import exact_answer_match
from models.vlm.scoring import TargetTokenNLL, score_rows


def _pushpins_like_targets(n: int = 6) -> list[str]:
    """Targets like pushpins' row subqueries: many cited boxes (digits), a short answer at the end."""
    rng = random.Random(0)
    targets = []
    for i in range(n):
        boxes = ",".join(f"[{rng.randint(100, 1600)},{rng.randint(100, 1000)},{rng.randint(100, 1600)},"
                         f"{rng.randint(100, 1000)}]" for _ in range(3 + 3 * i))
        targets.append(format_target(f"The positions of each pushpin are respectively {boxes}.", str(3 + i)))
    return targets


@pytest.fixture(scope="module")
def vlm(tiny_model_dir):
    return LoadedVLM.from_pretrained(tiny_model_dir)


def test_the_tokenizer_splits_digits_and_the_old_estimate_cut_answers(vlm):
    tokenizer = vlm.tokenizer
    assert len(tokenizer("1234", add_special_tokens=False)["input_ids"]) == 4
    targets = _pushpins_like_targets()
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets)
    assert max(len(t) for t in targets) // 3 + 16 < longest  # what the 3-characters-a-token guess allowed
    assert generation_room(targets, tokenizer) == longest + 1 + GENERATION_MARGIN


def test_scoring_sees_every_targets_answer(vlm, samples, monkeypatch):
    """A model that emits exactly each target, cut at the scoring limit, is scored right on every row."""
    targets = _pushpins_like_targets()
    rows = [{**row, "target": target} for row, target in zip(samples.to_dict("records"), targets, strict=False)]
    tokenizer = vlm.tokenizer
    encoder = PromptEncoder(vlm.processor)
    end = encoder.end_token_id
    limit = generation_room([r["target"] for r in rows], tokenizer)

    def perfect_generate(input_ids, generation_config, **_):
        outputs = []
        for row in rows[: input_ids.shape[0]]:
            ids = [*tokenizer(row["target"], add_special_tokens=False)["input_ids"], end]
            outputs.append(torch.tensor(ids[: generation_config.max_new_tokens]))
        width = max(len(o) for o in outputs)
        padded = torch.full((len(outputs), width), tokenizer.pad_token_id, dtype=torch.long)
        for i, o in enumerate(outputs):
            padded[i, : len(o)] = o
        return torch.cat([input_ids, padded], dim=1)

    monkeypatch.setattr(vlm.model, "generate", perfect_generate)
    prompts = [encoder.encode_prompt(request_from_row(r)) for r in rows]
    scores = score_rows(vlm, TargetTokenNLL(vlm.model), encoder, rows, prompts, exact_answer_match, limit)
    assert all(s.correct for s in scores)
    assert all(s.generated.endswith("</answer>") for s in scores)
    old_limit = max(len(r["target"]) for r in rows) // 3 + 16
    cut = score_rows(vlm, TargetTokenNLL(vlm.model), encoder, rows, prompts, exact_answer_match, old_limit)
    assert not all(s.correct for s in cut)  # the test can fail: the old limit loses answers


def test_prediction_limit_counts_tokens(vlm):
    targets = _pushpins_like_targets()
    room = generation_room(targets, vlm.tokenizer)
    assert PredictionConfig().generation_limit(targets, vlm.tokenizer, tiny=True) == room
    assert PredictionConfig().generation_limit(targets, vlm.tokenizer, tiny=False) == max(room, 512)
    assert PredictionConfig(max_new_tokens=9).generation_limit(targets, vlm.tokenizer, tiny=False) == 9


def test_batches_fit_the_token_budget(vlm, samples):
    requests = [request_from_row(r) for r in samples.to_dict("records")]
    encoder = PromptEncoder(vlm.processor)
    width = max(int(encoder.encode_prompt(r).input_ids.numel()) for r in requests) + 10
    batches = list(prompt_batches(requests, encoder, max_new_tokens=10, token_budget=3 * width))
    assert [i for indices, _ in batches for i in indices] == list(range(len(requests)))
    assert all(len(indices) <= 3 for indices, _ in batches) and len(batches) == 3  # 8 prompts, 3 a batch
    capped = list(prompt_batches(requests, encoder, max_new_tokens=10, batch_size=2))
    assert [len(indices) for indices, _ in capped] == [2, 2, 2, 2]
    alone = list(prompt_batches(requests[:2], encoder, max_new_tokens=10, token_budget=1))
    assert [len(indices) for indices, _ in alone] == [1, 1]  # a prompt over the budget still runs, alone


def test_default_budget_holds_two_native_loco_prompts_not_eight():
    native_prompt = 2 * 2622 + 150  # two breakfast_box images at 1596×1288 and the text
    assert 2 <= TOKEN_BUDGET // (native_prompt + 256) < 8

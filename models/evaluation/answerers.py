"""Who answers the subqueries: a local Qwen2.5-VL (with or without adapter) or a chat endpoint.

Both build the same Fig. 3 prompt from :func:`models.vlm.prompt.build_messages`, so the in-context
baseline over an API sees word for word what the local models see; only the image transport
differs (file paths for the local processor, inline ``data:`` URLs for the endpoint).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from models.evaluation.predict import Answerer, Question
from models.llm import ChatCompleter, Message, image_part, text_part
from models.spec import UnparseablePolicy
from models.vlm import ImageFeatureCache, LoadedVLM, build_messages, generate_with_image_cache
from models.vlm.inference import TOKEN_BUDGET, generation_room

API_CACHE_TAG = "lac-icl-fig3-v1"
"""Names the prompt in the response cache; bump it when the Fig. 3 text changes."""

CHECKPOINT_MIN_NEW_TOKENS = 512
FEATURE_CACHE_IMAGES = 16
"""Images whose vision features stay cached: the example(s) and the test images of a batch or two."""


def default_max_new_tokens(targets: Iterable[str], tokenizer, *, tiny: bool) -> int:
    """Room for the longest training target in the model's own tokens, as training scores
    (:func:`generation_room`); a real checkpoint gets at least 512 tokens, since a large model answering in
    context writes longer reasoning than the training targets."""
    room = generation_room(targets, tokenizer)
    return room if tiny else max(room, CHECKPOINT_MIN_NEW_TOKENS)


@dataclass(frozen=True)
class PredictionConfig:
    """How the test split is answered: the same settings for the main chain and every Table III row."""

    batch_size: int | None = field(default=None, metadata={
        "help": "Most prompts per generate() call; None: as many as token_budget holds."})
    token_budget: int = field(default=TOKEN_BUDGET, metadata={
        "help": "Tokens per generate() call: prompts × (longest prompt, images included, + max_new_tokens); a "
                "native-resolution LOCO prompt has up to 5.3k tokens."})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "Generation limit; None = room for the longest training target in the model's tokens (as "
                f"training scores), at least {CHECKPOINT_MIN_NEW_TOKENS} for a real checkpoint."})
    unparseable_policy: str = field(default=UnparseablePolicy.NORMAL.value, metadata={
        "help": "What h does with unreadable answers: normal (assume the normal answer), ignore (skip rules "
                "reading it), error."})
    api_concurrency: int = field(default=4, metadata={"help": "Requests in flight to a chat endpoint."})

    def __post_init__(self) -> None:
        for name in ("token_budget", "api_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"PredictionConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"PredictionConfig.{name} must be >= 1 or None, got {getattr(self, name)}")
        UnparseablePolicy(self.unparseable_policy)  # a clear ValueError naming the value

    @property
    def policy(self) -> UnparseablePolicy:
        return UnparseablePolicy(self.unparseable_policy)

    def generation_limit(self, targets: Iterable[str], tokenizer, *, tiny: bool) -> int:
        """``max_new_tokens``, or :func:`default_max_new_tokens` for the targets the model was trained on."""
        return self.max_new_tokens or default_max_new_tokens(targets, tokenizer, tiny=tiny)


def local_answerer(vlm: LoadedVLM, *, max_new_tokens: int, batch_size: int | None = None,
                   token_budget: int = TOKEN_BUDGET, progress: bool = False) -> Answerer:
    """Greedy, batched generation where each distinct image goes through the vision tower once.

    Questions arrive grouped by test image (``build_questions``), so a batch holds the subqueries of
    one or a few images and the shared example image; the bounded feature cache keeps exactly those.
    """

    def answer(questions: Sequence[Question]) -> list[str]:
        cache = ImageFeatureCache(vlm, max_entries=max(FEATURE_CACHE_IMAGES, 2 * (batch_size or 0) + 2))
        return generate_with_image_cache(vlm, [q.request() for q in questions], max_new_tokens=max_new_tokens,
                                         batch_size=batch_size, token_budget=token_budget, cache=cache,
                                         progress=progress)

    return answer


def api_messages(question: Question) -> list[Message]:
    """Fig. 3 as chat-completions messages: the same text, images inline as ``image_url`` parts.

    The system prompt becomes a plain string (some OpenAI-compatible servers accept only that for
    the system role); the user turn keeps its text/image order: subquery, example image, example
    output and instruction, test image.
    """
    messages = build_messages(question.question, question.example.image_path, question.example.target,
                              question.image_path)
    out: list[Message] = []
    for message in messages:
        parts = message["content"]
        if message["role"] == "system":
            out.append({"role": "system", "content": "".join(p["text"] for p in parts)})
            continue
        content = [image_part(p["image"]) if p["type"] == "image" else text_part(p["text"]) for p in parts]
        out.append({"role": message["role"], "content": content})
    return out


class _NotAsked(Exception):
    """A question left unasked because an earlier one failed; that failure is what propagates."""


def api_answerer(client: ChatCompleter, *, concurrency: int) -> Answerer:
    """Replies from an OpenAI-compatible vision endpoint, ``concurrency`` requests in flight.

    Retries, the request budget and the response cache are the client's (``models.llm``): a
    re-run is answered from disk without a single request.
    """

    def answer(questions: Sequence[Question]) -> list[str]:
        failed = threading.Event()

        def ask(question: Question) -> str:
            # After a failure (key refused, budget spent, endpoint down) ask nothing more: a worker
            # takes its next question before the failure reaches this thread and cancels the rest.
            if failed.is_set():
                raise _NotAsked
            try:
                return client.complete(api_messages(question), tag=API_CACHE_TAG)
            except BaseException:
                failed.set()
                raise

        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        try:  # questions start in order, so the first error in order is the real one, never _NotAsked
            return list(pool.map(ask, questions))
        finally:
            pool.shutdown(cancel_futures=True)

    return answer

"""10–20 paraphrases per subquery, from an LLM when one is configured, else from rules.

The paper has a large language model write 10–20 paraphrases of every subquery to diversify the
instruction text. A paraphrase is only useful if the true answer stays the same, so every
candidate, whatever its source, passes one validator: it must keep each *invariant* (numbers,
named objects, the answer's format such as ``[n1, n2, n3, n4, n5]``, a choice list such as
``just right/too much/too little``), introduce no number of its own, differ from the original and
from every other kept paraphrase. Whether an invariant is kept, and the normal form in which
texts are compared, are :mod:`models.spec.invariants`'s (the one checker, with its rules for
number words, choice lists and plurals).

Without an endpoint (the default) a deterministic rule-based paraphraser produces the text, so
the chain runs anywhere; it only rewrites the question's head and wraps it in frames, never
touching a protected span. With an endpoint, the LLM's list is validated; if too few survive it
is asked again (bounded rounds) and finally topped up with rule-based paraphrases. Each
:class:`Paraphrase` says which source made it.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from models.llm import ChatCompleter, Message
from models.spec.invariants import NUMBER, missing_invariants, normalise, numbers

log = logging.getLogger(__name__)

PROMPT_VERSION = "paraphrase-v1"
"""The LLM prompt's version; part of every cache key, so bump it whenever the prompt changes."""

Source = Literal["llm", "offline"]

#: Columns of the ``subquery_paraphrases`` table. Row 0 of each subquery is its original text
#: (``paraphrase_source`` "original"); the others say which :data:`Source` wrote them, and ``model``
#: which LLM (``None`` for the original and the offline rules).
PARAPHRASE_COLUMNS = ["scenario", "subquery_id", "paraphrase_id", "text", "paraphrase_source", "model"]
PARAPHRASE_SCHEMA = pa.schema([
    ("scenario", pa.string()), ("subquery_id", pa.string()), ("paraphrase_id", pa.int64()), ("text", pa.string()),
    ("paraphrase_source", pa.string()), ("model", pa.string()),
])  # fmt: skip


@dataclass(frozen=True)
class Paraphrase:
    """One paraphrase and where it came from (``model`` is ``None`` for the offline rules)."""

    text: str
    source: Source
    model: str | None = None


@dataclass(frozen=True)
class ParaphraseConfig:
    """How many paraphrases each subquery gets (the paper: 10–20) and how they are drawn."""

    n_min: int = field(default=10, metadata={"help": "Fewest paraphrases per subquery (> 0)."})
    n_max: int = field(default=20, metadata={"help": "Most paraphrases per subquery (>= n_min)."})
    seed: int = field(default=0, metadata={"help": "Seed of the offline paraphraser."})
    max_rounds: int = field(default=3, metadata={"help": "Most LLM requests per subquery (asked again while "
                                                         "fewer than n_min of its paraphrases are valid)."})

    def __post_init__(self) -> None:
        if not 0 < self.n_min <= self.n_max:
            raise ValueError(f"need 0 < n_min <= n_max, got {self.n_min}, {self.n_max}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")


_DEFAULTS = ParaphraseConfig()


def paraphrase_subquery(
    text: str,
    invariants: list[str],
    n_min: int = _DEFAULTS.n_min,
    n_max: int = _DEFAULTS.n_max,
    *,
    client: ChatCompleter | None = None,
    seed: int = _DEFAULTS.seed,
    max_rounds: int = _DEFAULTS.max_rounds,
) -> list[Paraphrase]:
    """Valid, distinct paraphrases of ``text``: between ``n_min`` and ``n_max`` of them.

    ``invariants`` must each occur in ``text``; a paraphrase keeps all of them. Offline (no
    ``client``) gives ``n_max``. With ``client`` the LLM is asked for ``n_max``, again (at most
    ``max_rounds`` times in all) while fewer than ``n_min`` survive validation, and a list still
    short of ``n_min`` is topped up with offline paraphrases; LLM errors
    (:class:`~models.llm.LLMError`, budget included) propagate rather than silently degrade.
    Offline results are deterministic for ``seed``.
    """
    if not 0 < n_min <= n_max:
        raise ValueError(f"need 0 < n_min <= n_max, got {n_min}, {n_max}")
    absent = missing_invariants(text, invariants)
    if absent:
        raise ValueError(f"invariant {absent[0]!r} does not occur in the subquery {text!r}")
    if client is None:
        found = [Paraphrase(t, "offline") for t in offline_paraphrases(text, invariants, n_max, seed=seed)]
    else:
        texts = _ask_llm(client, text, invariants, n_min, n_max, max_rounds)
        found = [Paraphrase(t, "llm", client.model) for t in texts]
    if len(found) < n_min:  # top up an LLM's short list with rule-based paraphrases
        have = [p.text for p in found]
        extra = offline_paraphrases(text, invariants, n_min - len(found), seed=seed, exclude=have)
        found += [Paraphrase(t, "offline") for t in extra]
    if len(found) < n_min:
        log.warning("only %d of %d paraphrases for %r", len(found), n_min, text)
    return found


# --- validation -----------------------------------------------------------------------------

_BRACKETED = re.compile(r"\[[^\[\]]+\]")


def dedup_key(text: str) -> str:
    """Two paraphrases are duplicates when they differ only in case, punctuation or spacing."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", normalise(text)).split())


def all_invariants(text: str, invariants: Iterable[str]) -> list[str]:
    """The caller's invariants plus those read off the text itself: bracketed answer formats."""
    return list(dict.fromkeys([*invariants, *_BRACKETED.findall(text)]))


def rejection_reason(original: str, candidate: str, invariants: Iterable[str]) -> str | None:
    """Why ``candidate`` is no valid paraphrase of ``original``, or ``None`` when it is."""
    if "\n" in candidate.strip() or len(candidate.strip()) < 3:
        return "not a single line"
    if len(candidate) > 2 * len(original) + 80:
        return "too long"
    if dedup_key(candidate) == dedup_key(original):
        return "the original"
    lost = missing_invariants(candidate, all_invariants(original, invariants))
    if lost:
        return f"lost {lost[0]!r}"
    if numbers(candidate) != numbers(original):
        return "numbers changed"
    return None


def select_valid(
    original: str, candidates: Iterable[str], invariants: Iterable[str], exclude: Iterable[str] = ()
) -> tuple[list[str], Counter[str]]:
    """The valid candidates in order, without duplicates of each other or of ``exclude``.

    Also returns how many were dropped for each reason, for logs and reports.
    """
    invariants = list(invariants)
    seen = {dedup_key(t) for t in exclude}
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    for candidate in candidates:
        reason = rejection_reason(original, candidate, invariants)
        if reason is None and dedup_key(candidate) in seen:
            reason = "duplicate"
        if reason is None:
            kept.append(candidate)
            seen.add(dedup_key(candidate))
        else:
            dropped[reason.split(" '")[0]] += 1
    return kept, dropped


# --- the LLM path ---------------------------------------------------------------------------

_SYSTEM = (
    "You rewrite questions that a vision-language model answers about an industrial inspection "
    "image. A paraphrase must ask exactly the same thing, so that its correct answer is the same "
    "and is given in the same format."
)


def _llm_messages(
    text: str, invariants: list[str], count: int, kept: list[str], rejected: list[str], round_no: int
) -> list[Message]:
    """The request of one round. Later rounds name the round, the paraphrases kept so far and a
    few rejected ones: the feedback helps, and it keeps every round's cache key distinct."""
    rules = [
        f"Keep each of these phrases word for word (letter case may change): {json.dumps(invariants)}.",
        "Keep every number and the required answer format exactly; add no numbers, options or hints.",
        "Each paraphrase is one line: a complete question or request in English.",
        "Vary wording and sentence structure; do not repeat the original.",
    ]
    if round_no:
        rules.append(f"This is request {round_no + 1}: earlier replies gave too few valid paraphrases.")
    if kept:
        rules.append(f"These paraphrases exist already; write different ones: {json.dumps(kept)}.")
    if rejected:
        rules.append(f"These were rejected (rules broken or repeated): {json.dumps(rejected[:10])}.")
    user = (
        f"Write {count} different paraphrases of this question:\n{text}\n\nRules:\n"
        + "\n".join(f"- {rule}" for rule in rules)
        + "\n\nReply with a JSON array of strings and nothing else."
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _ask_llm(
    client: ChatCompleter, text: str, invariants: list[str], n_min: int, n_max: int, max_rounds: int
) -> list[str]:
    """Validated LLM paraphrases; a round is asked again only while fewer than ``n_min`` survive."""
    kept: list[str] = []
    rejected: list[str] = []
    for round_no in range(max_rounds):
        messages = _llm_messages(text, invariants, n_max - len(kept), kept, rejected, round_no)
        reply = client.complete(messages, tag=PROMPT_VERSION, validate=parse_paraphrase_list)
        candidates = parse_paraphrase_list(reply)
        new, dropped = select_valid(text, candidates, invariants, exclude=kept)
        kept += new
        rejected = [c for c in candidates if c not in new]
        log.info(
            "%s round %d: kept %d LLM paraphrases of %r, dropped %s",
            PROMPT_VERSION,
            round_no + 1,
            len(new),
            text,
            dict(dropped) or "none",
        )
        if len(kept) >= n_min:
            break
    return kept[:n_max]


_NUMBERED = re.compile(r"^\s*(?:\d{1,2}[.):]|[-*•])\s+(.+?)\s*$", re.M)


def parse_paraphrase_list(reply: str) -> list[str]:
    """The paraphrases in an LLM reply: a JSON array (possibly fenced or wrapped in an object),
    else numbered or bulleted lines. Raises ``ValueError`` when there is neither, which makes the
    client treat the reply as malformed and ask again."""
    items = _json_strings(reply)
    if not items:
        items = _NUMBERED.findall(reply)
    texts = [t for t in (_clean(item) for item in items) if t]
    if not texts:
        raise ValueError("reply holds no JSON array of strings and no numbered lines")
    return texts


def _json_strings(reply: str) -> list[str]:
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"[\[{]", reply)][:50]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(reply, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, list)), [])
        strings = [_item_text(v) for v in value]
        if any(strings):
            return [s for s in strings if s]
    return []


def _item_text(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        text = item.get("text") or item.get("paraphrase")
        return text if isinstance(text, str) else ""
    return ""


def _clean(item: str) -> str:
    text = " ".join(item.split())
    text = re.sub(r"^(?:\d{1,2}[.):]|[-*•])\s+", "", text)
    return text.strip().strip("\"'“”").strip()


# --- the offline paraphraser ----------------------------------------------------------------

_PREPOSITIONS = r"in|on|inside|within|at|under|below|above|between|near|beside|behind|next to|along"
_SPLIT_LOCATION = re.compile(rf"(?P<np>.+?)(?P<loc>\s+(?:{_PREPOSITIONS})\s.+)?", re.I)
# Words that show a "how many" phrase is more than a noun phrase (then only frames apply).
_VERBISH = frozenset(
    "are is was were be been can could do does did have has there you will would should appear "  # noqa: SIM905
    "appears lie lies contain contains".split()
)
_QUESTION_WORDS = "are|is|do|does|can|could|how|what|which|where|who|was|were|has|have"
_DETERMINERS = frozenset("a an any some the this that these those each every".split())  # noqa: SIM905
_SYNONYMS = [
    (r"\bthe uploaded image\b", "the image provided"),
    (r"\bimage\b", "picture"),
    (r"\bpicture\b", "image"),
    (r"\bphoto\b", "image"),
    (r"\bcorrespond\b", "match"),
    (r"\bpositions\b", "locations"),
]

_DIRECT_FRAMES = [
    "{Q}",
    "Please tell me: {Q}",
    "Question: {Q}",
    "Please answer: {Q}",
    "Look closely: {Q}",
    "Take a close look at the image. {Q}",
    "Inspect the image carefully. {Q}",
    "Examine the picture. {Q}",
    "Here is a question about the image. {Q}",
    "Looking at the image, {q}",
    "Based on the image, {q}",
    "In this image, {q}",
    "From what you can see, {q}",
    "According to the image, {q}",
    "Judging from the picture, {q}",
    "With the image in mind, {q}",
    "Have a look at the image. {Q}",
    "Answer this question about the image: {Q}",
    "Quick check: {Q}",
    "Now, {q}",
]
_COUNT_FRAMES = ["Count carefully: {Q}", "After counting carefully, {q}"]
_EMBEDDED_FRAMES = [
    "Tell me {e}.",
    "Please tell me {e}.",
    "Can you tell me {e}?",
    "Could you tell me {e}?",
    "I would like to know {e}.",
    "Please determine {e}.",
    "Find out {e}.",
    "Looking at the image, tell me {e}.",
]


@dataclass(frozen=True)
class _Parts:
    """A subquery cut into leading context sentences, the question, and a trailing ``(…)`` note."""

    context: str
    question: str
    trailer: str


def offline_paraphrases(
    text: str, invariants: list[str], n_max: int = 20, *, seed: int = 0, exclude: Iterable[str] = ()
) -> list[str]:
    """Up to ``n_max`` valid, distinct rule-based paraphrases, the same ones for the same seed."""
    pool, _ = select_valid(text, _offline_candidates(text, invariants), invariants, exclude)
    rng = random.Random(f"{PROMPT_VERSION}|{seed}|{text}")
    rng.shuffle(pool)
    return pool[:n_max]


def _offline_candidates(text: str, invariants: list[str]) -> list[str]:
    parts = _split(text)
    protected = all_invariants(text, invariants)
    directs: list[str] = []
    embeddeds: list[str] = []
    for question in _question_variants(parts.question, protected):
        direct, embedded = _question_forms(question, protected)
        directs += direct
        embeddeds += embedded
    framed = [_frame(f, d) for d in directs for f in _frames_for(directs[0])]
    framed += [f.format(e=e) for e in embeddeds for f in _EMBEDDED_FRAMES]
    return _place_context(parts, directs, framed)


def _split(text: str) -> _Parts:
    text = " ".join(text.split())
    trailer = ""
    match = re.search(r"\s*(\([^()]*\))$", text)
    if match and match.start() > 0 and text[: match.start()].rstrip()[-1:] in ".?!":
        trailer, text = match[1], text[: match.start()].rstrip()
    sentences = re.split(r"(?<=[.?!])\s+(?=[A-Z])", text)
    return _Parts(" ".join(sentences[:-1]), sentences[-1], trailer)


def _protected_spans(text: str, protected: list[str]) -> list[tuple[int, int]]:
    spans = [(m.start(), m.end()) for m in NUMBER.finditer(text.lower())]
    for phrase in protected:
        pattern = r"\s*".join(re.escape(word) for word in phrase.split())
        spans += [(m.start(), m.end()) for m in re.finditer(pattern, text, re.I)]
    return spans


def _question_variants(question: str, protected: list[str]) -> list[str]:
    """The question, its leading clause moved to the end, and synonym swaps of both."""
    variants = [question]
    lead = re.fullmatch(rf"(?P<lead>[A-Z][^,?]{{3,60}}), (?P<rest>(?:{_QUESTION_WORDS})\b.+)\?", question)
    if lead:
        variants.append(f"{_upper_first(lead['rest'])}, {_lower_first(lead['lead'])}?")
    return [v for variant in variants for v in _synonym_variants(variant, protected)]


def _synonym_variants(question: str, protected: list[str]) -> list[str]:
    """The question, and one variant per synonym swap that touches no protected span."""
    variants = [question]
    spans = _protected_spans(question, protected)
    for pattern, replacement in _SYNONYMS:

        def swap(m: re.Match[str], replacement: str = replacement) -> str:
            if any(m.start() < end and start < m.end() for start, end in spans):
                return m[0]
            return _upper_first(replacement) if m[0][0].isupper() else replacement

        swapped = re.sub(pattern, swap, question, flags=re.I)
        if swapped != question:
            variants.append(swapped)
    return variants


def _question_forms(question: str, protected: list[str]) -> tuple[list[str], list[str]]:
    """Direct rewrites of the question (the question first) and embeddable clauses."""
    if not question.endswith("?"):
        return [question], []
    body = question[:-1].strip()
    for rule in (_count_forms, _exist_forms, lambda b: _choice_forms(b, protected), _do_forms, _what_forms):
        forms = rule(body)
        if forms is not None:
            direct, embedded = forms
            return [question, *direct], embedded
    return [question], []


def _count_forms(body: str) -> tuple[list[str], list[str]] | None:
    patterns = [
        r"how many (?P<np>.+?) (?:are|is) there(?P<loc>\s.+)?",
        r"how many (?P<np>.+?) (?:can|do) you see(?P<loc>\s.+)?",
        rf"how many (?P<np>.+?) (?:are|is)(?P<loc>\s(?:{_PREPOSITIONS})\s.+)",
        r"how many (?P<rest>.+)",
    ]
    for pattern in patterns:
        match = re.fullmatch(pattern, body, re.I)
        if match:
            break
    else:
        return None
    fields = match.groupdict()
    if fields.get("rest") is not None:
        fields = _SPLIT_LOCATION.fullmatch(fields["rest"]).groupdict()  # type: ignore[union-attr]
    np, loc = fields["np"], fields["loc"] or ""
    if _VERBISH & set(np.lower().split()):
        return None
    direct = [
        f"How many {np} are there{loc}?",
        f"How many {np} can you see{loc}?",
        f"How many {np} are visible{loc}?",
        f"What is the number of {np}{loc}?",
        f"What is the count of {np}{loc}?",
        f"How many {np} does the image show{loc}?",
        f"How many {np} are shown{loc}?",
    ]
    embedded = [
        f"how many {np} there are{loc}",
        f"the number of {np}{loc}",
        f"how many {np} you can see{loc}",
    ]
    return direct, embedded


def _exist_forms(body: str) -> tuple[list[str], list[str]] | None:
    match = re.fullmatch(r"(?P<be>is|are) there (?P<rest>.+)", body, re.I)
    if not match:
        return None
    be = match["be"].lower()
    parts = _SPLIT_LOCATION.fullmatch(match["rest"])
    np, loc = parts["np"], parts["loc"] or ""  # type: ignore[index]
    direct = [
        f"Does the image show {np}{loc}?",
        f"Can you see {np}{loc}?",
        f"Do you see {np}{loc}?",
        f"Would you say there {be} {np}{loc}?",
    ]
    if len(np.split()) <= 3:  # "are any almonds present", but not "are any roughly as many … present"
        bare = np.split()[0].lower() not in _DETERMINERS
        any_ = "any " if be == "are" and bare else ""
        direct.append(f"{be.title()} {any_}{np} present{loc}?")
    embedded = [
        f"whether there {be} {np}{loc}",
        f"whether the image shows {np}{loc}",
        f"whether you can see {np}{loc}",
    ]
    return direct, embedded


def _choice_forms(body: str, protected: list[str]) -> tuple[list[str], list[str]] | None:
    for phrase in (p for p in protected if "/" in p):
        options = [re.escape(o.strip()) for o in phrase.split("/")]
        choice = r"\s*/\s*".join(options)
        match = re.fullmatch(rf"(?P<be>is|are) (?P<subj>.+?) (?P<choice>{choice})", body, re.I)
        if match:
            be, subj, choices = match["be"].lower(), match["subj"], match["choice"]
            direct = [
                f"Would you say {subj} {be} {choices}?",
                f"Which of these describes {subj}: {choices}?",
                f"Which option fits {subj}: {choices}?",
            ]
            return direct, [f"whether {subj} {be} {choices}"]
    return None


def _do_forms(body: str) -> tuple[list[str], list[str]] | None:
    match = re.fullmatch(r"do (?P<clause>.+)", body, re.I)
    if not match:
        return None
    clause = match["clause"]
    direct = [
        f"Is it true that {clause}?",
        f"Would you say that {clause}?",
        f"Can you confirm whether {clause}?",
    ]
    return direct, [f"whether {clause}"]


def _what_forms(body: str) -> tuple[list[str], list[str]] | None:
    match = re.fullmatch(r"what (?P<be>is|are) (?P<rest>.+)", body, re.I)
    if not match:
        return None
    be, rest = match["be"].lower(), match["rest"]
    return [f"What would you say {be} {rest}?", f"What do you think {be} {rest}?"], []


def _frames_for(question: str) -> list[str]:
    counting = re.search(r"\b(how many|number of|count|distribution)\b", question, re.I)
    return _DIRECT_FRAMES + (_COUNT_FRAMES if counting else [])


def _frame(frame: str, question: str) -> str:
    return frame.format(Q=_upper_first(question), q=_lower_first(question))


def _place_context(parts: _Parts, directs: list[str], framed: list[str]) -> list[str]:
    """Every framed question with the context before it, and the context moved or folded in."""

    def tail(question: str) -> str:
        return f"{question} {parts.trailer}".strip()

    if not parts.context:
        return [tail(q) for q in framed]
    out = [f"{parts.context} {tail(q)}" for q in framed]
    out += [f"{tail(q)} Note: {parts.context}" for q in framed]
    if re.fullmatch(r"[^.?!]+\.", parts.context):
        clause = _lower_first(parts.context[:-1])
        out += [f"Given that {clause}, {tail(_lower_first(q))}" for q in directs]
        out += [f"Assume that {clause}. {tail(q)}" for q in framed]
    return out


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    if text[:2] == "I " or (len(text) > 1 and text[1].isupper()):
        return text
    return text[:1].lower() + text[1:]

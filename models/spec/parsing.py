"""From free model output to a typed answer, and back to the canonical answer text.

Models answer in prose ("Yes, the positions … correspond.", "There are 2 washers in the
picture.", "<answer> Different </answer>"); the aggregator needs typed values. Parsing reads the
``<answer>`` content when there is one (every ``<answer>`` block must agree), else the output
without its ``<think>`` reasoning (:func:`models.envelope.split_envelope` reads the envelope), and
returns an explicit *unparseable* result with the reason whenever the reading is not unambiguous:
two different numbers, a list of the wrong length, both yes and no cues, no choice named. A wrong
guess would be scored as the model's answer; an unparseable one is counted as such and handled by
the aggregator's documented policy.

``format_answer`` writes the canonical text used inside ``<answer>…</answer>`` in training data;
``parse_answer`` reads every such text back to the same value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from models.envelope import split_envelope
from models.spec.schema import SubquerySpec

# Hyphenated compounds ("5-clamp", "off-centre") stay one token: "two 5-clamp connectors" is two.
_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+|\d+(?:\.\d+)?(?![a-z0-9])|[a-z0-9]+(?:'[a-z]+)?|[^\s\w]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_GROUP = re.compile(r"[\[(]([^\[\]()]*)[\])]")

# fmt: off
#: The project's one table of number words: cardinals (``three`` = 3) and ordinals (``first`` = 1).
NUMBER_WORDS: dict[str, int] = {
    word: i for i, word in enumerate((
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen", "twenty",
    ))
}
ORDINAL_WORDS: dict[str, int] = {
    word: i + 1 for i, word in enumerate((
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    ))
}
# In an answer a count may also be a word that is no number ("none", "a single nut").
_COUNT_WORDS = NUMBER_WORDS | {"none": 0, "nothing": 0, "single": 1}
_STOPWORDS = frozenset((
    "how", "many", "much", "is", "are", "there", "the", "a", "an", "in", "on", "of", "to", "do",
    "does", "what", "which", "this", "that", "these", "those", "image", "picture", "photo",
    "uploaded", "each", "and", "or", "with", "it", "its", "be", "can", "where", "represents",
    "number", "i", "any", "all",
))
_YES_FIRST = frozenset(("yes", "yeah", "yep", "true", "correct", "affirmative"))
_NO_FIRST = frozenset(("no", "nope", "false", "incorrect"))
_NEGATORS = frozenset(("not", "no", "never", "without", "nor", "neither", "cannot"))
_POSITIVE = frozenset((
    "yes", "true", "same", "match", "matches", "matching", "matched", "correspond", "corresponds",
    "corresponding", "consistent", "identical", "present", "correct", "correctly", "centred",
    "centered", "aligned", "complete", "intact", "enough", "visible", "ok", "okay", "equal", "fine",
    "proper", "properly", "normal", "straight",
))
_NEGATIVE = frozenset((
    "false", "different", "differ", "differs", "mismatch", "mismatched", "mismatches", "absent",
    "missing", "incorrect", "incorrectly", "wrong", "inconsistent", "misaligned", "misplaced",
    "incomplete", "broken", "cut", "none", "lacks", "lacking", "off", "off-centre", "off-center",
    "swapped", "empty", "shifted", "tilted", "too",
))
# fmt: on
_PUNCTUATION_STOP = frozenset(",.;:!?")
_WINDOW = 3


@dataclass(frozen=True)
class ParsedAnswer:
    """A typed answer, or (``value`` None, ``reason`` set) an answer that could not be read."""

    value: Any
    reason: str | None
    text: str

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "parseable": self.ok, "reason": self.reason, "text": self.text}


def format_answer(subquery: SubquerySpec, value: Any) -> str:
    """Canonical answer text (``2``, ``Yes``, ``Just right``, ``[1, 1, 1, 1, 1]``)."""
    value = subquery.check_value(value)
    if subquery.answer_type == "boolean":
        return "Yes" if value else "No"
    if subquery.answer_type == "choice":
        return value[:1].upper() + value[1:]
    if subquery.answer_type == "int_list":
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def parse_answer(subquery: SubquerySpec, output: str) -> ParsedAnswer:
    """Read one model output as an answer to ``subquery``."""
    if not isinstance(output, str):
        return ParsedAnswer(None, f"expected text, got {type(output).__name__}", "")
    envelope = split_envelope(output)
    if envelope.reason is not None:
        return ParsedAnswer(None, envelope.reason, output.strip())
    parsed = [_parse_segment(subquery, s) for s in envelope.answers]
    text = " | ".join(p.text for p in parsed)
    bad = [p for p in parsed if not p.ok]
    if bad:
        return ParsedAnswer(None, bad[0].reason, text)
    values = {repr(p.value) for p in parsed}
    if len(values) > 1:
        return ParsedAnswer(None, f"several <answer> blocks disagree: {sorted(values)}", text)
    return ParsedAnswer(parsed[0].value, None, text)


def _parse_segment(subquery: SubquerySpec, text: str) -> ParsedAnswer:
    if not text.strip():
        return ParsedAnswer(None, "empty answer", text)
    reader = {
        "integer": _parse_integer,
        "boolean": _parse_boolean,
        "choice": _parse_choice,
        "int_list": _parse_int_list,
    }[subquery.answer_type]
    value, reason = reader(subquery, text)
    return ParsedAnswer(value if reason is None else None, reason, text)


def tokens(text: str) -> list[str]:
    """Lower-case word, number and punctuation tokens (``doesn't`` stays one token)."""
    return _TOKEN.findall(text.lower().replace("’", "'"))


def stem(word: str) -> str:
    """A crude singular (``washers``, ``washer's`` → ``washer``), enough to match object names in prose."""
    word = word.removesuffix("'s")
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("xes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Stemmed words of ``text`` that carry meaning (no stop words, numbers or punctuation)."""
    return {stem(t) for t in tokens(text) if t[0].isalpha() and t not in _STOPWORDS and t not in _COUNT_WORDS}


def _is_stop(token: str) -> bool:
    return token in _PUNCTUATION_STOP


# --- integers --------------------------------------------------------------------------------


def _number_mentions(toks: list[str]) -> list[tuple[int, float]]:
    """(position, value) of every number: digits, number words, and ``no <noun>`` as 0."""
    mentions = []
    for i, tok in enumerate(toks):
        if _NUMBER.fullmatch(tok):
            mentions.append((i, float(tok)))
        elif tok in _COUNT_WORDS:
            mentions.append((i, float(_COUNT_WORDS[tok])))
        elif tok == "no" and i + 1 < len(toks) and toks[i + 1][0].isalpha():
            mentions.append((i, 0.0))
    return mentions


def _parse_integer(subquery: SubquerySpec, text: str) -> tuple[Any, str | None]:
    toks = tokens(text)
    mentions = _number_mentions(toks)
    if not mentions:
        return None, "no number in the answer"
    question = content_words(subquery.text)
    scored = []
    for i, value in mentions:
        window = []
        for tok in toks[i + 1 : i + 1 + _WINDOW]:
            if _is_stop(tok) or _NUMBER.fullmatch(tok):
                break
            window.append(stem(tok))
        scored.append((sum(w in question for w in window), value))
    best = max(score for score, _ in scored)
    values = sorted({value for score, value in scored if score == best})
    if len(values) > 1:
        return None, f"several different numbers ({', '.join(f'{v:g}' for v in values)})"
    if not values[0].is_integer():
        return None, f"{values[0]:g} is not a whole number"
    return int(values[0]), None


# --- yes / no --------------------------------------------------------------------------------


def _is_negator(token: str) -> bool:
    return token in _NEGATORS or token.endswith("n't")


def _negated_cue(toks: list[str], i: int) -> int | None:
    """Position of the cue word that the negator at ``i`` applies to, if one follows closely."""
    for j in range(i + 1, min(i + 1 + _WINDOW, len(toks))):
        if _is_stop(toks[j]):
            return None
        if toks[j] in _POSITIVE or toks[j] in _NEGATIVE:
            return j
    return None


def _polarity_votes(toks: list[str]) -> tuple[int, int]:
    """(positive, negative) cue counts; a negator flips the cue word that follows it closely.

    A negator without a cue ("there is no icon") is a negative cue itself.
    """
    positive = negative = 0
    consumed: set[int] = set()
    for i, tok in enumerate(toks):
        if i in consumed:
            continue
        if _is_negator(tok):
            j = _negated_cue(toks, i)
            if j is None:
                negative += 1
                continue
            consumed.add(j)
            if toks[j] in _NEGATIVE:
                positive += 1
            else:
                negative += 1
        elif tok in _POSITIVE:
            positive += 1
        elif tok in _NEGATIVE:
            negative += 1
    return positive, negative


def _parse_boolean(subquery: SubquerySpec, text: str) -> tuple[Any, str | None]:
    toks = tokens(text)
    words = [t for t in toks if t[0].isalnum()]
    if not words:
        return None, "no words in the answer"
    if words[0] in _YES_FIRST | _NO_FIRST:
        opposite = _NO_FIRST if words[0] in _YES_FIRST else _YES_FIRST
        if any(w in opposite for w in words[1 : 1 + _WINDOW]):
            return None, f"both yes and no ({' '.join(words[: 1 + _WINDOW])})"
        return words[0] in _YES_FIRST, None
    positive, negative = _polarity_votes(toks)
    if positive and negative:
        return None, "both yes and no cues"
    if positive or negative:
        return bool(positive), None
    if len(content_words(text) & content_words(subquery.text)) >= 2:
        return True, None
    return None, "no yes/no cue"


# --- choices ---------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("'", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _parse_choice(subquery: SubquerySpec, text: str) -> tuple[Any, str | None]:
    norm = _normalise(text)
    spans: list[tuple[int, int, str]] = []
    for choice in subquery.choices or []:
        for phrase in [choice, *subquery.synonyms.get(choice, [])]:
            pattern = r"(?<![a-z0-9])" + re.escape(_normalise(phrase)) + r"(?![a-z0-9])"
            spans += [(m.start(), m.end(), choice) for m in re.finditer(pattern, norm)]
    taken: list[tuple[int, int, str]] = []
    for start, end, choice in sorted(spans, key=lambda s: s[0] - s[1]):
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, choice))
    found = {choice for start, _, choice in taken if not _negated(norm[:start])}
    if len(found) == 1:
        return found.pop(), None
    if not found:
        return None, f"none of the choices {subquery.choices} named"
    return None, f"several choices named ({', '.join(sorted(found))})"


def _negated(before: str) -> bool:
    """Whether one of the two words before a phrase negates it ("not too much")."""
    return any(w in {"not", "isnt", "arent", "wasnt", "never", "neither", "nor"} for w in before.split()[-2:])


# --- lists of integers -----------------------------------------------------------------------


def _integer_token(token: str) -> int | None:
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    return _COUNT_WORDS.get(token)


def _parse_int_list(subquery: SubquerySpec, text: str) -> tuple[Any, str | None]:
    length = subquery.length or 0
    lists = []
    for group in _GROUP.findall(text):
        items = [t for t in re.split(r"[,;\s]+", group.strip()) if t]
        values = [_integer_token(t) for t in items]
        if items and all(v is not None for v in values):
            lists.append(values)
    if not lists:
        numbers = [_integer_token(t) for t in tokens(text)]
        lists = [[n for n in numbers if n is not None]]
    fitting = {tuple(values) for values in lists if len(values) == length}
    if len(fitting) == 1:
        return list(fitting.pop()), None
    if len(fitting) > 1:
        return None, f"several different lists of {length} numbers"
    sizes = sorted({len(values) for values in lists})
    return None, f"expected a list of {length} integers, found {' or '.join(map(str, sizes))} numbers"


def answer_matches(subquery: SubquerySpec, output: str, true_value: Any) -> bool:
    """Whether a model output answers ``subquery`` with ``true_value`` (the ``1[ŷ = y]`` of training).

    An unparseable output is wrong: for the difficulty score it is as bad as a wrong answer.
    """
    parsed = parse_answer(subquery, output)
    return parsed.ok and parsed.value == subquery.check_value(true_value)

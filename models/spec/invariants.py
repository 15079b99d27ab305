"""What a paraphrase of a subquery must preserve, and the one check that it does.

A paraphrase may change the wording, never what the answer depends on: the numbers ("three rows
and five columns", "first row"), the objects and their qualifiers ("long screws"), the answer
format (``[n1, n2, n3, n4, n5]``) and the choices ("just right/too much/too little").
:func:`paraphrase_invariants` lists them as phrases; :func:`missing_invariants` is the check that
every paraphrase passes, whichever source wrote it (an LLM, the offline rules, a test).

The check compares on a normal form (:func:`normalise`): case, quotes, whitespace, whitespace
around brackets and punctuation, and number words (``three`` = ``3``, ``first`` = ``1st``, from
:data:`models.spec.parsing.NUMBER_WORDS` and ``ORDINAL_WORDS``) do not matter. An invariant with
``/`` is a choice list: its options must appear in the same order, but may be re-punctuated as
``a, b or c``, ``a / b / c`` or ``a | b | c``.

Singular and plural: an invariant may *gain* a plural ending (``washer`` is kept by ``washers``,
``battery`` by ``batteries``): specs name objects in the singular and questions count them in the
plural. It may not *lose* one: "How many long screw are in the bag?" does not keep ``long
screws``. The LLM is asked to keep these phrases word for word; a candidate that changed one is no
longer the question's own wording (here it is not even grammatical) and is dropped; dropping costs
one candidate of many, keeping a wrong one costs a training sample.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from models.spec.parsing import NUMBER_WORDS, ORDINAL_WORDS, stem, tokens
from models.spec.schema import SubquerySpec

_TEMPLATE = re.compile(r"\[[^\[\]]*\]")
#: A number in normal form (digits, with an ordinal suffix for ordinals), not part of a word.
NUMBER = re.compile(r"(?<![a-z0-9])\d+(?:st|nd|rd|th)?(?![a-z0-9])")
_ORDINAL_FORMS = {word: f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n, 'th')}" for word, n in ORDINAL_WORDS.items()}
_NUMBER_FORMS = {word: str(n) for word, n in NUMBER_WORDS.items()} | _ORDINAL_FORMS
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_NUMBER_FORMS) + r")\b")
_PUNCT_SPACE = re.compile(r"\s*([\[\](){},;:/|])\s*")
_CHOICE_SEPARATOR = r"(?:\s*[/|,;]\s*(?:or\s+)?|\s+or\s+)"
_TYPOGRAPHY = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def paraphrase_invariants(subquery: SubquerySpec) -> list[str]:
    """Phrases a paraphrase of ``subquery`` must contain (see :func:`missing_invariants`).

    In order: the spec's ``keywords`` for the subquery, the names of its objects that the
    question mentions, the numbers and ordinals of the question, the answer-format template of a
    list answer and the choices of a choice answer.
    """
    found: list[str] = list(subquery.keywords)
    question = [stem(t) for t in tokens(subquery.text)]
    found += [name for name in subquery.objects if _contains(question, [stem(t) for t in tokens(name)])]
    found += [t for t in tokens(subquery.text) if NUMBER.fullmatch(normalise(t))]
    if subquery.answer_type == "int_list":
        found += _TEMPLATE.findall(subquery.text)
    if subquery.answer_type == "choice":
        found += list(subquery.choices or [])
    unique: list[str] = []
    for phrase in found:
        if phrase.lower() not in (u.lower() for u in unique):
            unique.append(phrase)
    return unique


def normalise(text: str) -> str:
    """The form in which paraphrases are compared (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY).casefold()
    text = re.sub(r"[\"'`]", " ", text)
    text = _WORD_NUMBER.sub(lambda m: _NUMBER_FORMS[m[1]], text)
    text = _PUNCT_SPACE.sub(r"\1", text)
    return " ".join(text.split())


def missing_invariants(text: str, invariants: Iterable[str]) -> list[str]:
    """The ``invariants`` that ``text`` (a candidate paraphrase) does not keep, in order."""
    norm = normalise(text)
    return [phrase for phrase in invariants if not (normalise(phrase) and _pattern(phrase).search(norm))]


def numbers(text: str) -> set[str]:
    """The numbers ``text`` mentions, in normal form (``three`` and ``3`` are both ``3``)."""
    return set(NUMBER.findall(normalise(text)))


@functools.lru_cache(maxsize=1024)
def _pattern(invariant: str) -> re.Pattern[str]:
    norm = normalise(invariant)
    options = [o.strip() for o in norm.split("/")]
    if len(options) > 1 and all(options):
        body = _CHOICE_SEPARATOR.join(re.escape(o) for o in options)
    else:
        body = re.escape(norm)
    start = r"(?<![a-z0-9])" if norm[:1].isalnum() else ""
    if re.search(r"[^aeiou]y$", norm):  # battery → batteries
        body, end = body[:-1], r"(?:y|ies)(?![a-z0-9])"
    elif norm[-1:].isalpha():  # washer → washers, box → boxes
        end = r"(?:e?s)?(?![a-z0-9])"
    else:
        end = r"(?![a-z0-9])" if norm[-1:].isalnum() else ""
    return re.compile(start + body + end)


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))

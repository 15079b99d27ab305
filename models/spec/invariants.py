"""What a paraphrase of a subquery must preserve, so that its true answer stays the same.

A paraphrase may change the wording, never what the answer depends on: the numbers ("three rows
and five columns", "first row"), the objects and their qualifiers ("long screws"), the answer
format (``[n1, n2, n3, n4, n5]``) and the choices ("just right/too much/too little").
:func:`paraphrase_invariants` lists them as phrases; :func:`missing_invariants` checks a candidate
paraphrase, accepting digits for number words and plural for singular.
"""

from __future__ import annotations

import re

from models.spec.parsing import NUMBER_WORDS, ORDINAL_WORDS, stem, tokens
from models.spec.schema import SubquerySpec

_TEMPLATE = re.compile(r"\[[^\[\]]*\]")
_ORDINAL_SUFFIX = re.compile(r"^(\d+)(st|nd|rd|th)$")


def paraphrase_invariants(subquery: SubquerySpec) -> list[str]:
    """Phrases a paraphrase of ``subquery`` must contain (case-insensitive; see :func:`missing_invariants`).

    In order: the spec's ``keywords`` for the subquery, the names of its objects that the
    question mentions, the numbers and ordinals of the question, the answer-format template of a
    list answer and the choices of a choice answer.
    """
    found: list[str] = list(subquery.keywords)
    question = [stem(t) for t in tokens(subquery.text)]
    found += [name for name in subquery.objects if _contains(question, [stem(t) for t in tokens(name)])]
    found += [t for t in tokens(subquery.text) if _number_value(t) is not None]
    if subquery.answer_type == "int_list":
        found += _TEMPLATE.findall(subquery.text)
    if subquery.answer_type == "choice":
        found += list(subquery.choices or [])
    unique: list[str] = []
    for phrase in found:
        if phrase.lower() not in (u.lower() for u in unique):
            unique.append(phrase)
    return unique


def missing_invariants(subquery: SubquerySpec, text: str) -> list[str]:
    """The invariants of ``subquery`` that ``text`` (a candidate paraphrase) does not contain."""
    words = [stem(t) for t in tokens(text)]
    numbers = {_number_value(part) for t in tokens(text) for part in t.split("-")} - {None}
    missing = []
    for phrase in paraphrase_invariants(subquery):
        value = _number_value(phrase.lower())
        if value is not None:
            if value not in numbers:
                missing.append(phrase)
        elif not _contains(words, [stem(t) for t in tokens(phrase)]):
            missing.append(phrase)
    return missing


def _number_value(token: str) -> tuple[str, int] | None:
    """("n", 3) for ``3`` / ``three``, ("o", 1) for ``first`` / ``1st``; None for other tokens."""
    if token.isdigit():
        return ("n", int(token))
    if token in NUMBER_WORDS and token not in {"none", "nothing", "single"}:
        return ("n", NUMBER_WORDS[token])
    if token in ORDINAL_WORDS:
        return ("o", ORDINAL_WORDS[token])
    match = _ORDINAL_SUFFIX.match(token)
    return ("o", int(match.group(1))) if match else None


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))

"""The answer envelope ``<think>…</think><answer>…</answer>``: written and read here only.

The paper's targets put the reasoning in ``<think>`` and the answer in ``<answer>`` (the
"answer only" ablation keeps the ``<answer>`` block alone). Training data writes the envelope,
the answer checker and the difficulty score read the answer out of the model's output, the
prediction table stores both parts, and the parser turns the answer into a typed value. They all
go through this module, so the part a checker scores is the part the parser reads and the table
shows.

Reading rules (:func:`split_envelope`), lenient because a model's output is not always well formed:

* tags are case-insensitive;
* ``think`` is the content of the first ``<think>`` block, to the end of the text when it is
  never closed;
* the answer blocks are the ``<answer>`` blocks outside closed ``<think>`` blocks (reasoning that
  quotes an answer tag is not the answer); an unclosed ``<answer>`` runs to the end of the text;
* ``answers`` are the texts a parser should read: the answer blocks' contents with stray tags
  removed, or, without any answer block, the text after the last ``</think>`` (before an unclosed
  ``<think>``); ``reason`` says why there is nothing to read (only unclosed reasoning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.S | re.I)
_CLOSED_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.S | re.I)
_TAG = re.compile(r"</?(?:answer|think)>", re.I)


def format_target(think: str, answer: str) -> str:
    """The assistant text the model is trained to produce: ``<think>…</think><answer>…</answer>``."""
    return f"{THINK_OPEN}{think}{THINK_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def format_answer_only(answer: str) -> str:
    """The target without reasoning (the "answer only" ablation): ``<answer>…</answer>``."""
    return f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


@dataclass(frozen=True)
class Envelope:
    """One output read as an envelope (see the module docstring for the rules)."""

    think: str | None
    """Content of the first ``<think>`` block, ``None`` without one."""
    answer: str | None
    """Content of the first answer block, verbatim, ``None`` without one."""
    answer_span: tuple[int, int] | None
    """Where :attr:`answer` sits in the text (``text[start:end]``), ``None`` without an answer block."""
    answers: tuple[str, ...]
    """The texts a parser reads: every answer block without tags, else the text outside the reasoning."""
    reason: str | None
    """Why there is no answer text at all; ``None`` when :attr:`answers` holds one."""


def split_envelope(text: str) -> Envelope:
    """Read ``text`` (a model output or a target) as an envelope."""
    think = _THINK.search(text)
    # Closed reasoning is blanked (same length, so positions stay those of ``text``).
    outside = _CLOSED_THINK.sub(lambda m: " " * len(m.group()), text)
    spans = [m.span(1) for m in _ANSWER.finditer(outside)]
    first = spans[0] if spans else None
    answer = text[first[0] : first[1]] if first else None
    if spans:
        answers = tuple(_clean(text[start:end]) for start, end in spans)
        return Envelope(think and think.group(1), answer, first, answers, None)
    lower = outside.lower()
    start, end = 0, len(text)
    if THINK_CLOSE in lower:
        start = lower.rindex(THINK_CLOSE) + len(THINK_CLOSE)
    elif THINK_OPEN in lower:
        end = lower.index(THINK_OPEN)
        if not outside[:end].strip():
            reason = f"only reasoning: {THINK_OPEN} is never closed and there is no {ANSWER_OPEN}"
            return Envelope(think and think.group(1), None, None, (), reason)
    return Envelope(think and think.group(1), None, None, (_clean(text[start:end]),), None)


def _clean(part: str) -> str:
    """A part of the output without closed reasoning blocks and stray tags, stripped."""
    return _TAG.sub(" ", _CLOSED_THINK.sub(" ", part)).strip()

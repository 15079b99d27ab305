"""The fine-grained CoT data set (the paper's D_cot ∪ D_aug): one sample per (image, subquery).

Every training image and every augmented image gets one sample per subquery of its scenario:

* the **question** is the subquery's text or one of its paraphrases, drawn per sample from a
  generator seeded by (seed, sample id), so the choice is stable whatever else changes;
* the **answer** is the true one: for a training image ``inverse(spec, labels, grounded objects)``,
  for an augmented image the answers recorded when it was edited; ``answer`` holds its canonical
  text (:func:`models.spec.format_answer`), which :func:`models.spec.parse_answer` reads back;
* the **think** is a chain from :mod:`models.instruct.reasoning` that cites the grounded boxes
  in pixels of the image (``reasoning="boxes"``), the same chain without coordinates
  (``"no_boxes"``), or nothing (``"answer_only"``: the target is ``<answer>…</answer>`` alone, no
  think tags, as the paper's "without reasoning" ablation);
* the **target** is the assistant text ``<think>…</think><answer>…</answer>``;
* the **in-context example** is the paper's Fig. 3 format, used for training and evaluation: a
  normal training image of the same scenario (never the sample's own image nor its parent) with
  its target for the same subquery, drawn per sample like the question.

Grounding that contradicts an image's labels (a normal pushpin box where 14 pins are found) makes
the image's samples *flagged*, with the contradictions as the reason. The answers the inverse
gives then come from the labels alone, and for location-dependent subqueries (which cell is
empty) those are only the spec's canonical choice. Policy ``drop`` (the default) leaves flagged
samples out, so no unverified answer is trained on; ``keep_label_answer`` keeps them with the
label's answer, and a reasoning that cites only evidence that agrees with it: boxes for the
subqueries whose measured answer equals the kept one, for the others a chain that names no count
and no position. Flag counts are reported either way, and per class (:func:`removed_by_class`):
on real images one grounding failure mode can thin a whole class, which the ``cot_dataset`` asset's
blocking ``class_share_removed`` check stops.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models.atomic import write_text_atomic
from models.envelope import format_answer_only, format_target
from models.instruct.reasoning import think as reasoning
from models.objects import ImageObject, objects_from_json
from models.spec import NORMAL, ScenarioSpec, format_answer, inverse, parse_answer
from models.vlm.prompt import sharegpt_messages

COT_VERSION = 3
"""Bump when a CoT row or its JSONL export (here or the reasoning of `models.instruct.reasoning`) changes for the
same inputs and config (the cot_dataset asset's code version). 3: the export writes the trainer's Fig. 3 prompt
(`models.vlm.prompt`) and image paths relative to a media root."""
REASONING_MODES = ("boxes", "no_boxes", "answer_only")
POLICIES = ("drop", "keep_label_answer")

COT_COLUMNS = [
    "sample_id", "image_id", "image_path", "scenario", "subquery_id", "question", "question_id", "think",
    "answer", "target", "reasoning_type", "image_origin", "aug_kind", "parent_image_id", "labels", "answer_value",
    "flagged", "flag_reason", "example_image_id", "example_image_path", "example_target",
]  # fmt: skip
COT_SCHEMA = pa.schema([
    *((name, pa.string()) for name in ("sample_id", "image_id", "image_path", "scenario", "subquery_id", "question")),
    ("question_id", pa.int64()),
    *((name, pa.string()) for name in ("think", "answer", "target", "reasoning_type", "image_origin", "aug_kind",
                                       "parent_image_id")),
    ("labels", pa.list_(pa.string())), ("answer_value", pa.string()), ("flagged", pa.bool_()),
    *((name, pa.string()) for name in ("flag_reason", "example_image_id", "example_image_path", "example_target")),
])  # fmt: skip


@dataclass(frozen=True)
class CotConfig:
    """The ablation switch, the flagged-row policy and the seed of the per-sample draws."""

    reasoning: str = field(default="boxes", metadata={
        "help": "boxes (CoT citing boxes), no_boxes (CoT without coordinates) or answer_only (target is "
                "<answer>…</answer>)."})
    policy: str = field(default="drop", metadata={
        "help": "drop flagged rows, or keep_label_answer (keep them with the label's answer; reasoning cites no "
                "contradicted evidence)."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-sample question and example draws."})

    def __post_init__(self) -> None:
        if self.reasoning not in REASONING_MODES:
            raise ValueError(f"reasoning must be one of {REASONING_MODES}, got {self.reasoning!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")


@dataclass(frozen=True)
class ImageRecord:
    """One image of the data set with its true answers and what grounding says about them."""

    image_id: str
    image_path: str
    labels: tuple[str, ...]
    objects: list[ImageObject]
    answers: dict[str, Any]
    contradictions: tuple[str, ...]
    measured: dict[str, Any] = field(default_factory=dict)
    origin: str = "original"  # or "augmented"
    parent_image_id: str | None = None
    aug_kind: str | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.contradictions)


def original_records(
    spec: ScenarioSpec, train: pd.DataFrame, objects: Mapping[str, list[ImageObject]]
) -> list[ImageRecord]:
    """Training images (``image_id, image_path, labels``) with answers from the inverse of ``h``."""
    out = []
    for row in train.sort_values("image_id").itertuples(index=False):
        found = objects.get(row.image_id, [])
        truth = inverse(spec, row.labels, found)
        out.append(ImageRecord(row.image_id, str(row.image_path), tuple(sorted(row.labels)), found, truth.answers,
                               truth.contradictions, truth.measured))
    return out


def augmented_records(spec: ScenarioSpec, augmented: pd.DataFrame) -> list[ImageRecord]:
    """Augmented images with their recorded answers; grounding is checked against their labels too
    (a noise or style copy of a contradicted image is contradicted as well)."""
    out = []
    for row in augmented.sort_values("aug_id").itertuples(index=False):
        found = objects_from_json(row.objects)
        truth = inverse(spec, row.labels, found)
        out.append(ImageRecord(row.aug_id, str(row.image_path), tuple(sorted(row.labels)), found,
                               json.loads(row.answers), truth.contradictions, truth.measured, "augmented",
                               row.parent_image_id, row.kind))
    return out


# --- one sample ---------------------------------------------------------------------------------------


def sample_rng(seed: int, sample_id: str, stream: int) -> np.random.Generator:
    """The generator of one sample's draws (stream 0: question, 1: in-context example)."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(sample_id.encode()), stream]))


def assistant_text(think: str, answer: str, mode: str) -> str:
    """The target: ``<think>…</think><answer>…</answer>``, or ``<answer>…</answer>`` for answer_only."""
    return format_answer_only(answer) if mode == "answer_only" else format_target(think, answer)


def think_for(spec: ScenarioSpec, record: ImageRecord, subquery_id: str, mode: str) -> str:
    """The reasoning of one sample (empty for answer_only); untrusted evidence is not cited."""
    if mode == "answer_only":
        return ""
    value = record.answers[subquery_id]
    trusted = not record.flagged or record.measured.get(subquery_id, _UNSET) == value
    return reasoning(spec, spec.subquery(subquery_id), value, record.objects, boxes=mode == "boxes",
                     trusted=trusted)


_UNSET = object()


def sample_rows(
    spec: ScenarioSpec, record: ImageRecord, questions: Mapping[str, Sequence[str]], config: CotConfig
) -> list[dict[str, Any]]:
    """The rows of one image, one per subquery (before in-context examples are chosen)."""
    rows = []
    for sub in spec.subqueries:
        sample_id = f"{record.image_id}#{sub.id}"
        options = list(questions.get(sub.id) or [sub.text])
        qid = int(sample_rng(config.seed, sample_id, 0).integers(len(options)))
        value = record.answers[sub.id]
        answer = format_answer(sub, value)
        think = think_for(spec, record, sub.id, config.reasoning)
        rows.append({
            "sample_id": sample_id, "image_id": record.image_id, "image_path": record.image_path,
            "scenario": spec.scenario, "subquery_id": sub.id, "question": options[qid], "question_id": qid,
            "think": think, "answer": answer, "target": assistant_text(think, answer, config.reasoning),
            "reasoning_type": sub.reasoning_type, "image_origin": record.origin, "aug_kind": record.aug_kind,
            "parent_image_id": record.parent_image_id, "labels": list(record.labels),
            "answer_value": json.dumps(value), "flagged": record.flagged,
            "flag_reason": "; ".join(record.contradictions),
        })  # fmt: skip
    return rows


# --- the data set --------------------------------------------------------------------------------------


REMOVED_COLUMNS = ["class", "images", "flagged", "removed", "removed_share"]


@dataclass
class CotBuild:
    """The ``cot_dataset`` table (after the policy) and what was flagged before it applied."""

    table: pd.DataFrame
    images: int
    flagged_images: list[tuple[str, str]]
    rows_before_policy: int
    flagged_rows: int
    removed: pd.DataFrame  # per class: REMOVED_COLUMNS

    @property
    def flagged_rate(self) -> float:
        """Share of samples whose grounding contradicts their labels (before dropping any)."""
        return self.flagged_rows / self.rows_before_policy if self.rows_before_policy else 0.0


def questions_by_subquery(paraphrases: pd.DataFrame) -> dict[str, list[str]]:
    """Subquery id → its texts in ``paraphrase_id`` order (0 is the original), from ``subquery_paraphrases``."""
    ordered = paraphrases.sort_values(["subquery_id", "paraphrase_id"])
    return {sid: group["text"].tolist() for sid, group in ordered.groupby("subquery_id")}


def build_cot(
    spec: ScenarioSpec,
    records: Iterable[ImageRecord],
    questions: Mapping[str, Sequence[str]],
    config: CotConfig,
) -> CotBuild:
    """Every sample of ``records``, the policy applied, in-context examples chosen."""
    records = list(records)
    rows = [row for record in records for row in sample_rows(spec, record, questions, config)]
    table = pd.DataFrame(rows, columns=COT_COLUMNS[:-3])
    flagged_rows = int(table["flagged"].sum()) if len(table) else 0
    before = len(table)
    if config.policy == "drop" and len(table):
        table = table[~table["flagged"]].reset_index(drop=True)
    table = with_examples(table, config.seed)
    flagged = [(r.image_id, "; ".join(r.contradictions)) for r in records if r.flagged]
    return CotBuild(table, len(records), flagged, before, flagged_rows, removed_by_class(records, config.policy))


def removed_by_class(records: Sequence[ImageRecord], policy: str) -> pd.DataFrame:
    """Per class (``normal`` included), over original and augmented images: how many images carry it, how
    many are flagged, and how many of them the policy removed (``drop``: every flagged one; otherwise none)."""
    counts: dict[str, list[int]] = {}
    for record in records:
        for label in record.labels:
            entry = counts.setdefault(label, [0, 0])
            entry[0] += 1
            entry[1] += record.flagged
    rows = [(label, images, flagged, flagged if policy == "drop" else 0) for label, (images, flagged)
            in sorted(counts.items())]
    frame = pd.DataFrame(rows, columns=REMOVED_COLUMNS[:-1])
    frame["removed_share"] = (frame["removed"] / frame["images"]).astype(float) if len(frame) else []
    return frame


def with_examples(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Add the in-context example of every sample: an unflagged normal training image's sample for the
    same subquery, other than the sample's image and its parent, drawn by the sample's generator."""
    table = table.copy()
    if table.empty:
        for column in ("example_image_id", "example_image_path", "example_target"):
            table[column] = pd.Series(dtype=object)
        return table[COT_COLUMNS]
    normal = table[(table["image_origin"] == "original") & ~table["flagged"]
                   & table["labels"].map(lambda labels: list(labels) == [NORMAL])]
    by_subquery = {sid: group.sort_values("image_id") for sid, group in normal.groupby("subquery_id")}
    picked = [_example(row, by_subquery.get(row.subquery_id), seed) for row in table.itertuples(index=False)]
    table["example_image_id"] = [p[0] for p in picked]
    table["example_image_path"] = [p[1] for p in picked]
    table["example_target"] = [p[2] for p in picked]
    return table[COT_COLUMNS]


def _example(row: Any, candidates: pd.DataFrame | None, seed: int) -> tuple[str | None, str | None, str | None]:
    if candidates is None:
        return None, None, None
    allowed = candidates[~candidates["image_id"].isin([row.image_id, row.parent_image_id])]
    if allowed.empty:
        return None, None, None
    pick = allowed.iloc[int(sample_rng(seed, row.sample_id, 1).integers(len(allowed)))]
    return pick["image_id"], pick["image_path"], pick["target"]


# --- checks ------------------------------------------------------------------------------------------


def unparseable_answers(spec: ScenarioSpec, table: pd.DataFrame) -> list[str]:
    """Samples whose ``answer`` or ``target`` does not parse back to ``answer_value``."""
    bad = []
    for row in table.itertuples(index=False):
        sub = spec.subquery(row.subquery_id)
        want = json.loads(row.answer_value)
        for text in (row.answer, row.target):
            parsed = parse_answer(sub, text)
            if not parsed.ok or parsed.value != want:
                bad.append(f"{row.sample_id}: {text!r} reads as {parsed.value!r} ({parsed.reason}), not {want!r}")
                break
    return bad


def answer_agreement(table: pd.DataFrame, truth: Mapping[str, Mapping[str, Any]]) -> pd.Series:
    """Per sample: does its answer equal ``truth[image_id][subquery_id]``? (missing truth: False)."""
    return pd.Series(
        [json.loads(r.answer_value) == truth.get(r.image_id, {}).get(r.subquery_id, _UNSET)
         for r in table.itertuples(index=False)],
        index=table.index, dtype=bool,
    )  # fmt: skip


# --- export ------------------------------------------------------------------------------------------


def sharegpt_record(row: Any, media_dir: Path) -> dict[str, Any]:
    """One sample in LLaMA-Factory's sharegpt (OpenAI messages) multimodal format: the trainer's Fig. 3
    messages (:func:`models.vlm.prompt.sharegpt_messages`) and the two images, example first, as paths
    relative to ``media_dir`` (LLaMA-Factory's ``media_dir`` setting)."""
    return {
        "messages": sharegpt_messages(row.question, row.example_target, row.target),
        "images": [media_path(p, media_dir) for p in (row.example_image_path, row.image_path)],
    }


def media_path(image_path: str, media_dir: Path) -> str:
    """``image_path`` relative to ``media_dir``, in POSIX form; an image outside it is an error naming both."""
    resolved, root = Path(image_path).resolve(), Path(media_dir).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"image {resolved} is outside the JSONL's media folder {root}: choose a media folder "
                         "that holds every image (the cot_dataset setting jsonl_media_dir), or leave it unset")
    return resolved.relative_to(root).as_posix()


def common_media_dir(table: pd.DataFrame) -> Path:
    """The deepest folder that holds every image of ``table`` (samples and their examples): the default root
    of the export's relative image paths."""
    paths = [str(Path(p).resolve()) for column in ("image_path", "example_image_path")
             for p in table[column].dropna()]
    if not paths:
        return Path.cwd()
    common = Path(os.path.commonpath(paths))
    return common.parent if str(common) in paths else common  # one image only: its folder


def write_jsonl(path: Path, table: pd.DataFrame, media_dir: Path | None = None) -> JsonlExport:
    """Write every sample that has an in-context example as one JSON line (atomically). The trainer cannot
    take a sample without one (Fig. 3 always shows an example), so the export leaves those out too."""
    usable = table[table["example_target"].notna() & table["example_image_path"].notna()]
    media_dir = Path(media_dir).resolve() if media_dir is not None else common_media_dir(usable)
    lines = [json.dumps(sharegpt_record(row, media_dir), ensure_ascii=False) for row in usable.itertuples(index=False)]
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return JsonlExport(len(lines), len(table) - len(usable), media_dir)


@dataclass(frozen=True)
class JsonlExport:
    """What :func:`write_jsonl` wrote: lines, samples left out (no in-context example), the media folder."""

    lines: int
    without_example: int
    media_dir: Path


def llamafactory_dataset_info(name: str, file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry that makes LLaMA-Factory read the JSONL file."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant", "system_tag": "system"},
        }
    }  # fmt: skip

"""Does the method learn? Learning curves and Table II / Table III rows of a from-scratch Qwen2.5-VL on generated data.

Everything runs through the project's own code, nothing is a hard-coded figure:

1. data: a generated LOCO data set of the chosen size (``models.synth``), the LOCO FC re-split (``models.split``),
   grounding with the weight-free classical backend (``models.grounding``), cut-paste / noise / style
   augmentation (``models.instruct.augment``), offline paraphrases and the CoT data of each Table III
   configuration (``models.instruct.cot``);
2. model: a Qwen2.5-VL-architecture model with random weights (``models.vlm.tiny``; 1-4 M parameters by
   default), trained with the project's loop (``models.vlm.train``, full fine-tuning by default: see
   ``--method``);
3. evaluation: the held-out generated test images asked in the Fig. 3 format, parsed, ``h`` applied
   (``models.evaluation.predict``), binary and macro F1 (``models.evaluation.metrics``).

Rows (``ROWS``; each is produced by really running its method):

=========================  ==========================================================================
``always_normal``          every subquery answered with its normal answer, through parsing and ``h``
``flag_everything``        every test image given every anomaly class of its scenario
``icl``                    the untrained model in context (Table III's "decomposition only")
``sft_answers``            trained on answers only, original images, uniform sampling
``sft_reasoning``          + reasoning without boxes
``sft_reasoning_boxes``    + reasoning citing the grounded boxes
``sft_augmentation``       + augmented images (cut-paste, noise, style)
``finetuned``              + difficulty-aware resampling (Eq. 4-5): the full method
``grounded``               training-free: every subquery answered from the grounding through its measure
=========================  ==========================================================================

While a row trains, the held-out set is evaluated at samples seen 2^k · ``--first-eval`` (and at the end):
the curves give the accuracy on the subqueries whose true answer is not the normal one (what a model
that always answers "normal" gets 0 on), the accuracy on every subquery, the parse rate, and binary and
macro F1, with the always-normal and flag-everything rows drawn in.

    python -m benchmarks.learning --budget-minutes 5                  # two CPU cores, every row
    python -m benchmarks.learning --size smallest --budget-minutes 1  # what the test runs
    python -m benchmarks.learning --device cuda --size large --budget-minutes 20 --workers 8 \\
        --scenarios pushpins screw_bag --out benchmarks/results/gpu    # a GPU

The budget covers everything after the imports: data first, then the trained rows share what is left,
each stopping (whatever its epoch) when its share is spent. Figures from a shared CPU are noisy; a
row's ``samples_seen`` and ``train_seconds`` say how far it got. Outputs under ``--out``:
``learning.json`` (rows, curves, sizes, timings, the command), ``curves.png``, ``predictions.parquet``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from assets.ablation import ABLATIONS, TABLE_III_ROWS
from models.devices import resolve_device
from models.envelope import format_answer_only
from models.evaluation import (
    GROUNDED,
    build_questions,
    compute_metrics,
    grounded_answers,
    local_answerer,
    predict,
    select_examples,
)
from models.evaluation.predict import Question
from models.grounding import ground_images, queries_from_spec
from models.grounding.base import GroundingConfig, build_backend
from models.instruct.augment import AugmentConfig, augment_split
from models.instruct.cot import CotConfig, augmented_records, build_cot, original_records
from models.instruct.paraphrase import paraphrase_subquery
from models.loco import scan_loco_scenario
from models.objects import objects_from_frame
from models.spec import ScenarioSpec, answer_matches, format_answer, get_spec, inverse, paraphrase_invariants
from models.split import SplitConfig, loco_fc_split, normal_training_ids
from models.storage import scenario_dir
from models.synth import GeneratorConfig, annotations_path, ensure_generated, loco_root
from models.vlm import LoadedVLM, TinyQwenConfig, TrainConfig, VLMConfig, build_tiny_qwen25vl, train_lora
from models.vlm.fine_tuning import spec_answer_checker, training_samples
from models.vlm.inference import generation_room
from models.vlm.model import load_tokenizer

logger = logging.getLogger("benchmarks.learning")

BENCHMARK_VERSION = 1
"""Recorded in learning.json; bump when a row or curve is computed differently."""


# -- sizes -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Size:
    """A data set and model size: generated images per folder and class, and the model's dimensions."""

    data: GeneratorConfig
    model: TinyQwenConfig
    max_samples: int | None = None  # samples each trained row may see at most (None: the budget decides)
    first_eval: int = 64  # samples seen at the first curve point
    eval_images: int | None = None  # held-out images of the curve points (None: all; the final rows use all)
    max_new_tokens: int | None = None  # a cap on the generation limit (None: room for the longest target)
    test_images: int | None = None  # held-out images of the rows (None: every test image of the split)


def _model(hidden: int, layers: int, heads: int = 4, vision_hidden: int = 64, vision_depth: int = 2,
           vocab: int = 1024) -> TinyQwenConfig:
    half = hidden // heads // 2  # mrope_section sums to head_dim / 2, split like the real [16, 24, 24]
    section = (half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2)
    return TinyQwenConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), mrope_section=section,
                          vision_depth=vision_depth, vision_hidden_size=vision_hidden,
                          vision_intermediate_size=2 * vision_hidden, vision_num_heads=2)


SIZES = {
    # the test: a few images, the built-in model's width, a handful of steps
    "smallest": Size(GeneratorConfig(scale=0.1, train_good=3, validation_good=0, test_good=1, per_logical_class=3,
                                     per_multi_combo=0, structural=0),
                     _model(64, 1, vision_hidden=32, vision_depth=1, vocab=512), max_samples=16, first_eval=8,
                     eval_images=2, max_new_tokens=24),
    # two CPU cores in five minutes
    "small": Size(GeneratorConfig(scale=0.15, train_good=12, validation_good=0, test_good=6, per_logical_class=6,
                                  per_multi_combo=1, structural=0), _model(128, 4), first_eval=32, eval_images=12),
    # two CPU cores in half an hour
    "medium": Size(GeneratorConfig(scale=0.2, train_good=40, validation_good=0, test_good=10, per_logical_class=15,
                                   per_multi_combo=1, structural=0), _model(128, 4), first_eval=64, eval_images=12,
                   test_images=40),
    # the built-in model (models.vlm.tiny's defaults) on the small data: what its training preset is chosen on
    "builtin": Size(GeneratorConfig(scale=0.15, train_good=12, validation_good=0, test_good=6, per_logical_class=6,
                                    per_multi_combo=1, structural=0), TinyQwenConfig(), first_eval=32, eval_images=12),
    # a GPU for a few minutes
    "large": Size(GeneratorConfig(scale=0.25, train_good=400, validation_good=0, test_good=40, per_logical_class=150,
                                  per_multi_combo=8, structural=0), _model(256, 6, vision_hidden=128, vision_depth=4),
                  first_eval=256, eval_images=80, test_images=200),
}


# -- rows ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainedRow:
    """A trained row: which CoT targets, whether augmented images join, whether Eq. 5 steers sampling."""

    name: str
    label: str  # its Table III row
    reasoning: str  # CotConfig.reasoning
    augmentation: bool = False
    resampling: bool = False


TRAINED_ROWS = (
    # Table III's middle rows as the ablation stage defines them (assets.ablation.ABLATIONS) ...
    *(TrainedRow(name, a.table_iii_row, a.reasoning, resampling=a.resampling) for name, a in ABLATIONS.items()),
    # ... then augmentation alone, and the main chain (its last row)
    TrainedRow("sft_augmentation", "+ augmentation", "boxes", augmentation=True),
    TrainedRow("finetuned", TABLE_III_ROWS[-1][0], "boxes", augmentation=True, resampling=True),
)
LABELS = {"always_normal": "always normal (baseline)", "flag_everything": "flag everything (baseline)",
          GROUNDED: "grounded (training-free)", "icl": "decomposition only (in context)",
          **{r.name: r.label for r in TRAINED_ROWS}}


@dataclass
class ScenarioData:
    """One scenario's data after the data stages: what every row trains on and is evaluated with."""

    spec: ScenarioSpec
    split: pd.DataFrame
    records: list  # ImageRecord of the original training images
    augmented: list  # ImageRecord of the augmented images
    questions: dict[str, list[str]]
    test_questions: list[Question]  # every held-out image
    curve_questions: list[Question]  # the held-out images of the curve points
    truth: dict[str, list[str]]  # image id → true labels
    true_answers: dict[str, dict[str, Any]]  # image id → subquery → true value (from the generator's objects)
    grounding: pd.DataFrame  # the grounding table of every split image (the grounded row reads the test images')
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def test(self) -> pd.DataFrame:
        """The held-out images the rows are evaluated on."""
        asked = {q.image_id for q in self.test_questions}
        return self.split[self.split["image_id"].isin(asked)]

    def cot(self, row: TrainedRow, seed: int) -> pd.DataFrame:
        records = self.records + (self.augmented if row.augmentation else [])
        return build_cot(self.spec, records, self.questions, CotConfig(reasoning=row.reasoning, seed=seed)).table


def held_out_order(test: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The test split in the order its images are used: one image of each label set first (so a cut keeps every
    class while it can), then the rest shuffled."""
    first = test.groupby(test["labels"].map(tuple), group_keys=False).head(1).sample(frac=1.0, random_state=seed)
    rest = test[~test["image_id"].isin(first["image_id"])].sample(frac=1.0, random_state=seed)
    return pd.concat([first, rest], ignore_index=True)


def prepare_scenario(scenario: str, size: Size, work: Path, *, augment: bool, paraphrases: int,
                     seed: int) -> ScenarioData:
    """Generate, split, ground, augment: the project's data stages, as the assets run them."""
    spec = get_spec(scenario, scenario_dir())
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    generated = work / "loco_data"
    ensure_generated(scenario, generated, replace(size.data, seed=seed))
    split = loco_fc_split(scan_loco_scenario(loco_root(generated), scenario), SplitConfig(seed=seed))
    seconds["generate_and_split"] = time.perf_counter() - began
    began = time.perf_counter()
    backend = build_backend(GroundingConfig(backend="classical"))
    items = list(zip(split["image_id"], split["image_path"], strict=True))
    run = ground_images(backend, items, queries_from_spec(spec), progress=False, spec=spec,
                        normal_ids=normal_training_ids(split))
    objects = objects_from_frame(run.objects)
    seconds["grounding"] = time.perf_counter() - began
    train, test = split[split["split"] == "train"], split[split["split"] == "test"]
    records = original_records(spec, train, objects)
    augmented = []
    if augment:
        began = time.perf_counter()
        out_dir = work / "augmented" / scenario
        shutil.rmtree(out_dir, ignore_errors=True)
        table = augment_split(spec, train, objects, out_dir, AugmentConfig(seed=seed)).table
        augmented = augmented_records(spec, table)
        seconds["augmentation"] = time.perf_counter() - began
    questions = {}
    for sub in spec.subqueries:
        found = paraphrase_subquery(sub.text, paraphrase_invariants(sub), 1, max(paraphrases, 1), seed=seed)
        questions[sub.id] = [sub.text, *[p.text for p in found][:paraphrases]]
    examples = select_examples(build_cot(spec, records, questions, CotConfig(reasoning="boxes", seed=seed)).table,
                               spec, train["image_id"])
    truth_objects = objects_from_frame(pd.read_parquet(annotations_path(generated, scenario)))
    true_answers = {i: inverse(spec, labels, truth_objects.get(i, [])).answers
                    for i, labels in zip(test["image_id"], test["labels"], strict=True)}
    held_out = held_out_order(test, seed)
    test = held_out.head(size.test_images or len(held_out))
    curve_test = held_out.head(min(size.eval_images or len(test), len(test)))
    return ScenarioData(
        spec=spec, split=split, records=records, augmented=augmented, questions=questions,
        test_questions=build_questions(test, spec, examples),
        curve_questions=build_questions(curve_test, spec, examples),
        truth={i: list(labels) for i, labels in zip(test["image_id"], test["labels"], strict=True)},
        true_answers=true_answers, grounding=run.objects, seconds=seconds)


# -- scoring ---------------------------------------------------------------------------------------------
def score(predictions: pd.DataFrame, data: dict[str, ScenarioData]) -> dict[str, float]:
    """Binary and macro F1 (average over scenarios, %), and answer accuracies on the images predicted."""
    classes = {s: d.spec.class_names for s, d in data.items()}
    table = compute_metrics(predictions, classes, list(data)).table_ii.iloc[0]
    correct, abnormal = [], []
    per_subquery: dict[str, dict[str, list[bool]]] = {}
    for row in predictions.itertuples(index=False):
        spec = data[row.scenario].spec
        sub = spec.subquery(row.subquery_id)
        true = data[row.scenario].true_answers[row.image_id][row.subquery_id]
        ok = answer_matches(sub, row.raw_output, true)
        correct.append(ok)
        kind = "normal"
        if sub.check_value(true) != sub.check_value(sub.normal):
            abnormal.append(ok)
            kind = "abnormal"
        per_subquery.setdefault(f"{row.scenario}/{row.subquery_id}", {"normal": [], "abnormal": []})[kind].append(ok)
    return {
        "binary_f1": float(table["average/binary_f1"]),
        "macro_f1": float(table["average/macro_f1"]),
        "accuracy": float(np.mean(correct)) if correct else float("nan"),
        "abnormal_answer_accuracy": float(np.mean(abnormal)) if abnormal else float("nan"),
        "abnormal_answers": len(abnormal),
        "parseable": float(predictions["parseable"].mean()),
        "images": int(predictions["image_id"].nunique()),
        # per subquery: accuracy where the true answer is the normal one and where it is not, and how many of each
        "per_subquery": {key: {f"{kind}_accuracy": float(np.mean(oks)) if oks else None for kind, oks in found.items()}
                         | {kind: len(oks) for kind, oks in found.items()} for key, found in per_subquery.items()},
    }


def normal_answerer(spec: ScenarioSpec) -> Callable[[Sequence[Question]], list[str]]:
    """Replies every subquery with its normal answer (in the answer envelope the parser reads)."""
    def reply(question: Question) -> str:
        sub = spec.subquery(question.subquery_id)
        return format_answer_only(format_answer(sub, sub.normal))

    return lambda questions: [reply(q) for q in questions]


def flag_everything(predictions: pd.DataFrame, data: dict[str, ScenarioData]) -> pd.DataFrame:
    """The always-normal table with every image given every anomaly class of its scenario."""
    every = {s: sorted(d.spec.class_names) for s, d in data.items()}
    return predictions.assign(method="flag_everything", predicted_labels=[every[s] for s in predictions["scenario"]])


# -- the run ---------------------------------------------------------------------------------------------
class BudgetSpent(Exception):
    """Raised from the step callback when a row's share of the budget is spent."""


@dataclass
class Settings:
    size: Size
    method: str
    device: str
    workers: int
    pixel_cache_images: int
    batch_size: int
    learning_rate: float
    seed: int
    eval_batch_size: int


class Benchmark:
    """Runs every row and keeps the curves; ``deadline`` is the budget's end (``time.monotonic``)."""

    def __init__(self, data: dict[str, ScenarioData], model_dir: Path, settings: Settings, deadline: float,
                 work: Path) -> None:
        self.data, self.model_dir, self.settings, self.deadline, self.work = data, model_dir, settings, deadline, work
        self.vlm_config = VLMConfig(device=settings.device)
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: list[dict[str, Any]] = []
        self.predictions: list[pd.DataFrame] = []
        self.eval_seconds = 0.0  # the last measured cost of one curve evaluation

    def answer_checker(self, row: dict[str, Any], generated: str) -> bool:
        """Eq. 4's ``1[ŷ = y]`` through the sample's scenario parser."""
        return spec_answer_checker(self.data[row["scenario"]].spec)(row, generated)

    def ask(self, vlm: LoadedVLM, questions: dict[str, list[Question]], method: str,
            max_new_tokens: int) -> pd.DataFrame:
        model = vlm.model
        was_training = model.training
        model.eval()
        frames = []
        try:
            with torch.no_grad():
                for scenario, asked in questions.items():
                    answerer = local_answerer(vlm, batch_size=self.settings.eval_batch_size,
                                              max_new_tokens=max_new_tokens)
                    frames.append(predict(self.data[scenario].spec, asked, answerer, method=method,
                                          model=self.model_dir.name, true_labels=self.data[scenario].truth))
        finally:
            model.train(was_training)
        return pd.concat(frames, ignore_index=True)

    def record(self, name: str, predictions: pd.DataFrame, **extra: Any) -> None:
        scores = score(predictions, self.data)
        if name == "flag_everything":  # labels only: it gives no answers
            scores.update(accuracy=float("nan"), abnormal_answer_accuracy=float("nan"), parseable=float("nan"),
                          per_subquery={})
        self.rows[name] = {"label": LABELS.get(name, name), **scores, **extra}
        self.predictions.append(predictions.assign(method=name))
        logger.info("%s: %s", name, {k: round(v, 3) if isinstance(v, float) else v for k, v in self.rows[name].items()})

    # -- rows without training
    def baselines(self) -> None:
        frames = [predict(d.spec, d.test_questions, normal_answerer(d.spec), method="always_normal", model="none",
                          true_labels=d.truth) for d in self.data.values()]
        normal = pd.concat(frames, ignore_index=True)
        self.record("always_normal", normal)
        self.record("flag_everything", flag_everything(normal, self.data))

    def grounded(self) -> None:
        """The training-free grounded method (`models.evaluation.grounded_answers`) on the held-out images."""
        began = time.perf_counter()
        frames = [grounded_answers(d.spec, d.grounding, d.test, true_labels=d.truth) for d in self.data.values()]
        self.record(GROUNDED, pd.concat(frames, ignore_index=True),
                    eval_seconds=round(time.perf_counter() - began, 1))

    def in_context(self, max_new_tokens: int) -> None:
        """The untrained model in context, on the curve's held-out images: it writes to the generation limit on
        every question, so the whole test set would cost as much as a trained row's whole share."""
        vlm = LoadedVLM.from_pretrained(self.model_dir, self.vlm_config)
        began = time.perf_counter()
        predictions = self.ask(vlm, {s: d.curve_questions for s, d in self.data.items()}, "icl", max_new_tokens)
        self.record("icl", predictions, eval_seconds=round(time.perf_counter() - began, 1))

    # -- trained rows
    def train_row(self, row: TrainedRow, share: float) -> None:
        """Train ``row`` until ``share`` seconds are spent (or ``max_samples``), evaluating on the way."""
        settings = self.settings
        samples = pd.concat([training_samples(d.cot(row, settings.seed)) for d in self.data.values()],
                            ignore_index=True)
        max_new_tokens = min(generation_room(samples["target"], load_tokenizer(self.model_dir)),
                             settings.size.max_new_tokens or 10**6)
        config = TrainConfig(
            method=settings.method, seed=settings.seed, num_epochs=10_000, per_device_batch_size=settings.batch_size,
            gradient_accumulation_steps=1, learning_rate=settings.learning_rate, lr_schedule="constant",
            warmup_steps=10, max_grad_norm=1.0, lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                              "up_proj", "down_proj"),
            lora_dropout=0.0, resampling=row.resampling, samples_per_epoch=max(len(samples), 8 * settings.batch_size),
            score_max_samples=min(len(samples), 4 * settings.batch_size), score_batch_size=settings.eval_batch_size,
            max_new_tokens=max_new_tokens, num_workers=settings.workers,
            pixel_cache_images=settings.pixel_cache_images, log_every_steps=1)
        began = time.perf_counter()
        cpu_began = time.process_time()
        stop_at = min(self.deadline, time.monotonic() + share)
        next_eval = settings.size.first_eval
        state: dict[str, Any] = {"model": None, "steps": 0, "eval_cpu": 0.0}
        processor = LoadedVLM.from_pretrained(self.model_dir, self.vlm_config).processor
        curve_questions = {s: d.curve_questions for s, d in self.data.items()}
        losses: list[float] = []

        def on_step(step: int, model: torch.nn.Module) -> None:
            nonlocal next_eval
            state["model"], state["steps"] = model, step
            seen = step * settings.batch_size
            if seen >= next_eval and time.monotonic() + 2 * self.eval_seconds < stop_at:
                t0, cpu0 = time.perf_counter(), time.process_time()
                vlm = LoadedVLM(model, processor, self.vlm_config, self.model_dir)
                point = score(self.ask(vlm, curve_questions, row.name, max_new_tokens), self.data)
                self.eval_seconds = time.perf_counter() - t0
                state["eval_seconds"] = state.get("eval_seconds", 0.0) + self.eval_seconds
                state["eval_cpu"] += time.process_time() - cpu0
                self.curves.append({"row": row.name, "samples_seen": seen,
                                    "train_seconds": round(time.perf_counter() - began - state["eval_seconds"], 1),
                                    "train_cpu_seconds": round(time.process_time() - cpu_began - state["eval_cpu"], 1),
                                    "loss": losses[-1] if losses else None, **point})
                logger.info("%s after %d samples: %s", row.name, seen, point)
                next_eval *= 2
            limit = settings.size.max_samples
            if time.monotonic() + self.eval_seconds * 1.5 >= stop_at or (limit is not None and seen >= limit):
                raise BudgetSpent

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "step":
                losses.append(float(event["loss"]))

        with contextlib.suppress(BudgetSpent):
            train_lora(self.model_dir, samples, config, self.work / "runs" / row.name, model_config=self.vlm_config,
                       resume=False, progress_callback=on_event, step_callback=on_step,
                       answer_checker=self.answer_checker)
        train_seconds = time.perf_counter() - began - state.get("eval_seconds", 0.0)
        cpu_seconds = time.process_time() - cpu_began - state["eval_cpu"]
        model = state["model"]
        vlm = LoadedVLM(model, processor, self.vlm_config, self.model_dir)
        t0 = time.perf_counter()
        predictions = self.ask(vlm, {s: d.test_questions for s, d in self.data.items()}, row.name, max_new_tokens)
        seen = state["steps"] * settings.batch_size
        self.curves.append({"row": row.name, "samples_seen": seen, "train_seconds": round(train_seconds, 1),
                            "train_cpu_seconds": round(cpu_seconds, 1), "loss": losses[-1] if losses else None,
                            **score(predictions[predictions["image_id"].isin(
                                {q.image_id for qs in curve_questions.values() for q in qs})], self.data)})
        self.record(row.name, predictions, samples_seen=seen, training_samples=len(samples),
                    distinct_images=int(samples["image_path"].nunique()), train_seconds=round(train_seconds, 1),
                    train_cpu_seconds=round(cpu_seconds, 1), final_loss=losses[-1] if losses else None,
                    eval_seconds=round(time.perf_counter() - t0, 1), max_new_tokens=max_new_tokens)


ROWS: list[str] = ["always_normal", "flag_everything", GROUNDED, "icl", *(r.name for r in TRAINED_ROWS)]
"""Every row of the output: the two baselines, the training-free ``grounded`` method, then Table III's rows."""


def run_rows(bench: Benchmark, rows: Sequence[TrainedRow], icl_tokens: int, weights: dict[str, float]) -> None:
    """The method runners in order: baselines, in context, then each trained row with its share of what is left of
    the budget (``weights``, default 1; recomputed before each row, so a row that stops early leaves its time to
    the next)."""
    bench.baselines()
    bench.grounded()
    bench.in_context(icl_tokens)
    for k, row in enumerate(rows):
        left = bench.deadline - time.monotonic()
        pending = [weights.get(r.name, 1.0) for r in rows[k:]]
        share = max(left, 0.0) * pending[0] / sum(pending)
        logger.info("training %s for at most %.0f s", row.name, share)
        bench.train_row(row, share)


# -- outputs ---------------------------------------------------------------------------------------------
def plot_curves(curves: pd.DataFrame, rows: dict[str, dict[str, Any]], path: Path) -> Path:
    """Accuracy on the subqueries whose answer is not normal, binary F1 and macro F1 against samples seen."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = [("abnormal_answer_accuracy", "accuracy, subqueries with a non-normal answer"),
               ("accuracy", "accuracy, every subquery"), ("binary_f1", "binary F1 (%)"), ("macro_f1", "macro F1 (%)")]
    fig = Figure(figsize=(20, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics))
    seen = curves["samples_seen"][curves["samples_seen"] > 0] if len(curves) else pd.Series(dtype=float)
    for ax, (metric, title) in zip(axes, metrics, strict=True):
        for name, group in curves.groupby("row", sort=False):
            group = group.sort_values("samples_seen")
            ax.plot(group["samples_seen"], group[metric], marker="o", label=LABELS.get(name, name))
        for name, style in (("always_normal", "--"), ("flag_everything", ":"), ("icl", "-.")):
            if name in rows and metric in rows[name]:
                ax.axhline(rows[name][metric], linestyle=style, color="grey", label=LABELS[name])
        if len(seen):
            ax.set_xscale("log")
            ax.set_xlim(seen.min() / 1.5, seen.max() * 1.5)
        ax.set_xlabel("training samples seen")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def table_text(rows: dict[str, dict[str, Any]]) -> str:
    head = f"{'row':<22} {'label':<34} {'binary F1':>9} {'macro F1':>8} {'abn.acc':>7} {'acc':>6} {'parse':>6} " \
           f"{'samples':>8} {'train s':>8}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:<22} {r['label']:<34} {r['binary_f1']:>9.2f} {r['macro_f1']:>8.2f} "
                     f"{r['abnormal_answer_accuracy']:>7.3f} {r['accuracy']:>6.3f} {r['parseable']:>6.2f} "
                     f"{r.get('samples_seen', ''):>8} {r.get('train_seconds', ''):>8}")
    return "\n".join(lines)


def learned_subqueries(rows: dict[str, dict[str, Any]]) -> str:
    """Per trained row, the subqueries answered right at least once where the true answer is not the normal one
    (which an always-normal model never is)."""
    lines = []
    for name, row in rows.items():
        if "samples_seen" not in row:
            continue
        found = [f"{key} {v['abnormal_accuracy']:.2f} of {v['abnormal']}" for key, v in row["per_subquery"].items()
                 if v.get("abnormal_accuracy")]
        lines.append(f"{name}: {', '.join(found) if found else 'none beyond the normal answer'}")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- CLI -------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", "--scenario", nargs="+", default=["pushpins"], help="generated scenarios")
    parser.add_argument("--size", choices=list(SIZES), default="small", help="data set and model size preset")
    parser.add_argument("--budget-minutes", type=float, default=5.0, help="wall-clock budget after the imports")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--method", choices=["full", "lora"], default="full",
                        help="full fine-tuning (every weight; a random model has nothing for LoRA to adapt) or lora")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers encoding training samples")
    parser.add_argument("--pixel-cache-images", type=int, default=4096,
                        help="images whose preprocessed pixels are kept (0: preprocess every time); the cache lives "
                             "where samples are encoded: for the run with --workers 0, for an epoch in a worker")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--rows", nargs="+", choices=[r.name for r in TRAINED_ROWS],
                        default=[r.name for r in TRAINED_ROWS], help="trained rows to run")
    parser.add_argument("--focus", nargs="*", default=[], choices=[r.name for r in TRAINED_ROWS],
                        help="trained rows that get --focus-weight times the time of the others")
    parser.add_argument("--focus-weight", type=float, default=3.0)
    parser.add_argument("--no-augmentation", action="store_true", help="skip augmentation and the rows needing it")
    parser.add_argument("--paraphrases", type=int, default=4, help="paraphrases per subquery besides the original")
    for name in ("train-good", "test-good", "per-logical-class", "per-multi-combo"):
        parser.add_argument(f"--{name}", type=int, help="override the size's generated images")
    parser.add_argument("--scale", type=float, help="override the size's image scale (1: LOCO's size)")
    parser.add_argument("--hidden-size", type=int, help="override the model's text width (4 heads)")
    parser.add_argument("--layers", type=int, help="override the model's text layers")
    parser.add_argument("--max-samples", type=int, help="samples each trained row may see at most")
    parser.add_argument("--eval-images", type=int, help="held-out images per curve point")
    parser.add_argument("--test-images", type=int, help="held-out images per row (the curve's come first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"), help="output folder")
    return parser.parse_args(argv)


def size_from(args: argparse.Namespace) -> Size:
    size = SIZES[args.size]
    data = {k.replace("-", "_"): getattr(args, k.replace("-", "_")) for k in
            ("train-good", "test-good", "per-logical-class", "per-multi-combo", "scale")}
    data = {k: v for k, v in data.items() if v is not None}
    model = size.model
    if args.hidden_size or args.layers:
        model = _model(args.hidden_size or model.hidden_size, args.layers or model.num_hidden_layers,
                       vision_hidden=model.vision_hidden_size, vision_depth=model.vision_depth, vocab=model.vocab_size)
    return replace(size, data=replace(size.data, **data), model=model,
                   max_samples=args.max_samples if args.max_samples is not None else size.max_samples,
                   eval_images=args.eval_images if args.eval_images is not None else size.eval_images,
                   test_images=args.test_images if args.test_images is not None else size.test_images)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "models.grounding", "models.instruct"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    deadline = started + 60 * args.budget_minutes
    try:
        size = size_from(args)
        device = resolve_device(args.device)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"benchmarks.learning: {exc}", file=sys.stderr)
        return 2
    out = args.out
    work = out / "work"
    out.mkdir(parents=True, exist_ok=True)
    augment = not args.no_augmentation
    rows = [r for r in TRAINED_ROWS if r.name in args.rows and (augment or not r.augmentation)]
    data = {s: prepare_scenario(s, size, work, augment=augment, paraphrases=args.paraphrases, seed=args.seed)
            for s in args.scenarios}
    model_dir = build_tiny_qwen25vl(work / "model", seed=args.seed, config=size.model)
    n_parameters = sum(p.numel() for p in LoadedVLM.from_pretrained(model_dir).model.parameters())
    settings = Settings(size=size, method=args.method, device=str(device), workers=args.workers,
                        pixel_cache_images=args.pixel_cache_images, batch_size=args.batch_size,
                        learning_rate=args.learning_rate, seed=args.seed, eval_batch_size=args.eval_batch_size)
    bench = Benchmark(data, model_dir, settings, deadline, work)
    tokenizer = load_tokenizer(model_dir)
    longest = max(generation_room(d.cot(TRAINED_ROWS[2], args.seed)["target"], tokenizer) for d in data.values())
    icl_tokens = min(longest, size.max_new_tokens or 10**6)
    run_rows(bench, rows, icl_tokens, {name: args.focus_weight for name in args.focus})

    curves = pd.DataFrame(bench.curves)
    curves_png = plot_curves(curves, bench.rows, out / "curves.png")
    predictions_path = out / "predictions.parquet"
    pd.concat(bench.predictions, ignore_index=True).to_parquet(predictions_path, index=False)
    summary = {
        "benchmark_version": BENCHMARK_VERSION,
        "command": "python -m benchmarks.learning " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": str(device), "cpu": cpu_model(), "threads": torch.get_num_threads(),
        "scenarios": args.scenarios, "size": args.size, "method": args.method,
        "generator": asdict(size.data), "model": asdict(size.model), "parameters": n_parameters,
        "images": {s: {"train": int((d.split["split"] == "train").sum()), "test": len(d.test),
                       "augmented": len(d.augmented), "curve_test": len({q.image_id for q in d.curve_questions})}
                   for s, d in data.items()},
        "data_seconds": {s: {k: round(v, 1) for k, v in d.seconds.items()} for s, d in data.items()},
        "budget_minutes": args.budget_minutes, "wall_seconds": round(time.monotonic() - started, 1),
        "rows": bench.rows, "curves": bench.curves,
        "files": {"curves_png": str(curves_png), "predictions": str(predictions_path)},
    }
    json_path = out / "learning.json"
    json_path.write_text(json.dumps(summary, indent=2, default=float))
    print(f"\nlearning benchmark: {', '.join(args.scenarios)}, size {args.size}, {n_parameters:,} parameters, "
          f"{args.method} fine-tuning on {device} ({cpu_model()}), {summary['wall_seconds']:.0f} s")
    print(f"images: {json.dumps(summary['images'])}")
    print(table_text(bench.rows))
    print("\nsubqueries with a non-normal true answer answered right (accuracy of n):")
    print(learned_subqueries(bench.rows))
    print(f"\ncurves: {curves_png}\njson:   {json_path}\npredictions: {predictions_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

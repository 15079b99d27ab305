"""Building blocks for the evaluation tests: small LOCO trees, cot-like tables, scripted answerers, adapters."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from models.envelope import format_target
from models.evaluation.predict import Question
from models.loco import scan_loco_scenario
from models.spec import ScenarioSpec, format_answer
from models.split import SplitConfig, loco_fc_split
from tests.loco_tree import LOGICAL_CLASSES, TreeSpec, build_tree

SIZE = (64, 48)


def small_tree(root: Path, scenario: str, *, singles_per_class: int = 1, train_good: int = 2,
               test_good: int = 1) -> Path:
    """A LOCO tree with ``singles_per_class`` anomalies of the first two classes, noise images ~64×48.

    Noise rather than flat grey so that images differ (the feature cache is keyed by path, and the
    models must see different pixels to give different answers).
    """
    classes = LOGICAL_CLASSES[scenario]
    spec = TreeSpec(scenario, classes, train_good=train_good, validation_good=0, test_good=test_good,
                    single={c: singles_per_class for c in classes[:2]}, structural=0, size=SIZE)
    build_tree(root, spec)
    rng = np.random.default_rng(zlib.crc32(scenario.encode()))
    for path in sorted((root / scenario).glob("*/*/*.png")):
        if "ground_truth" not in path.parts:
            Image.fromarray(rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)).save(path)
    return root


def split_frame(root: Path, scenario: str, train_ratio: float = 0.5) -> pd.DataFrame:
    """What ``loco_fc_split`` would store for the tree."""
    return loco_fc_split(scan_loco_scenario(root, scenario), SplitConfig(train_ratio=train_ratio))


def cot_table(spec: ScenarioSpec, split: pd.DataFrame) -> pd.DataFrame:
    """A cot_dataset-shaped table: one original row per (training image, subquery), normal answers for normal
    images (anomalous training images get the normal answers too: only normal rows are read here)."""
    rows = []
    for image in split[split["split"] == "train"].sort_values("image_id").itertuples(index=False):
        for sub in spec.subqueries:
            answer = format_answer(sub, sub.normal)
            think = f"Looking at the image ({image.image_id}), the answer is {answer}."
            rows.append({
                "sample_id": f"{image.image_id}#{sub.id}", "image_id": image.image_id,
                "image_path": image.image_path, "scenario": spec.scenario, "subquery_id": sub.id,
                "question": sub.text, "think": think, "answer": answer, "target": format_target(think, answer),
                "reasoning_type": sub.reasoning_type, "image_origin": "original", "labels": list(image.labels),
                "answer_value": None, "flagged": False, "flag_reason": None,
            })
    return pd.DataFrame(rows)


class ScriptedModel:
    """Answers fixed per (image, subquery); unscripted questions get the normal answer. Records what it was asked."""

    def __init__(self, spec: ScenarioSpec, script: Mapping[str, Mapping[str, str]]) -> None:
        self.spec = spec
        self.script = script
        self.asked: list[Question] = []

    def __call__(self, questions: Sequence[Question]) -> list[str]:
        self.asked += questions
        replies = []
        for q in questions:
            normal = format_answer(self.spec.subquery(q.subquery_id), self.spec.subquery(q.subquery_id).normal)
            answer = self.script.get(q.image_id, {}).get(q.subquery_id, normal)
            replies.append(answer if answer.startswith("!") else format_target("scripted", answer))
        return [r.removeprefix("!") for r in replies]


def random_adapter(model_dir: Path, target: Path, seed: int = 0) -> Path:
    """A LoRA adapter with random (non-zero) weights in the adapter directory layout: without any training the
    "fine-tuned" model then answers differently from the base model, and differently per image and question
    (the base tiny model answers newlines to everything, which would make equality tests vacuous)."""
    import torch
    from peft import LoraConfig

    from models.vlm.model import LoadedVLM
    from models.vlm.train import lora_target_regex

    torch.manual_seed(seed)
    vlm = LoadedVLM.from_pretrained(model_dir)
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    vlm.add_lora(LoraConfig(r=4, lora_alpha=16, init_lora_weights=False, task_type="CAUSAL_LM",
                            target_modules=lora_target_regex(targets, ())))
    vlm.model.save_pretrained(target)
    return target

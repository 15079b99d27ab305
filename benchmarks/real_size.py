"""Real-size check: Qwen2.5-VL-3B's widths and vocabulary at a native LOCO size, through the project's paths.

Builds a checkpoint with Qwen2.5-VL-3B's published widths (text hidden 2048, intermediate 11008, 16/2
heads, vocabulary 151,936; vision hidden 1280, intermediate 3420, 16 heads, out 2048) and only
``--num-layers`` text and vision layers, random weights, written with ``save_pretrained`` and with a
processor config that declares no ``max_pixels`` (the case that used to shrink 1600×1280 to 1120×896).
Then, each phase in its own process so that its peak RSS is its own:

* ``train``: ``LoadedVLM.from_pretrained`` (the project's loading path), one optimizer step of the
  project's trainer (LoRA r16 on q/k/v/o, gradient checkpointing: the ``lora_r16_attention`` preset's
  settings) on one Fig. 3 sample whose two images have breakfast_box's native size;
* ``classify``: ``python -m pipelines.classify --method icl`` (the project's prediction path, the base
  model in context) on one breakfast_box-sized image, with an example from a ``loco_fc_split`` table.

It prints the pixel bounds in force, visual tokens per image, prompt and sample tokens, wall and CPU
seconds and peak RSS per phase. A random model never emits the end token, so classify generates
``--max-new-tokens`` tokens for every subquery.

    OMP_NUM_THREADS=1 python -m benchmarks.real_size                  # 2 layers, 1600x1280
    OMP_NUM_THREADS=1 python -m benchmarks.real_size --num-layers 1 --image-size 1700x1000

Takes several minutes and about 6 GB of memory on two CPU cores; not a CI test. Measured with
``--num-layers 1`` (446 M parameters) on a shared 2-core AMD EPYC, OMP_NUM_THREADS=1: both images
1596×1288 (grid 92×114, 2,622 visual tokens each, though the processor config declares no max_pixels),
a training sample of 5,541 tokens: one step 142 CPU s, peak RSS 4.85 GB; classify, 8 subqueries of
5,402 prompt tokens, 4 new tokens each: 293 CPU s, peak RSS 5.87 GB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from benchmarks.finetune import qwen25_vl_3b_config
from models.envelope import format_target
from models.spec import load_specs
from models.storage import STORAGE_VARIABLE, VLM_CHECKPOINT_VARIABLE, StorageLayout
from models.vlm.distributed import DistContext
from models.vlm.encoding import PixelBudget, PromptEncoder, PromptRequest, collate_for_loss, request_from_row
from models.vlm.model import NATIVE_MAX_PIXELS, LoadedVLM, VLMConfig
from models.vlm.presets import LORA_R16_ATTENTION
from models.vlm.prompt import exact_answer_match
from models.vlm.tiny import TinyQwenConfig, build_processor, train_tokenizer
from models.vlm.train import Trainer
from pipelines.classify import classify as run_classify
from pipelines.classify import parse_args as classify_args

SCENARIO = "breakfast_box"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-layers", type=int, default=2, help="text and vision layers (the real 3B: 36/32)")
    parser.add_argument("--image-size", default="1600x1280", help="WxH of both images (breakfast_box: 1600x1280)")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="classify's generation limit")
    parser.add_argument("--work-dir", type=Path, help="keep the checkpoint and images here (default: a temp dir)")
    parser.add_argument("--phase", choices=["all", "build", "train", "classify"], default="all")
    return parser.parse_args(argv)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build(args: argparse.Namespace, work: Path) -> None:
    """The checkpoint (random weights, 3B widths) and two images of the asked size."""
    checkpoint = work / "checkpoint"
    tokenizer = train_tokenizer(seed=0)
    processor = build_processor(tokenizer, TinyQwenConfig(min_pixels=56 * 56, max_pixels=NATIVE_MAX_PIXELS))
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(qwen25_vl_3b_config(tokenizer, args.num_layers))
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    path = checkpoint / "processor_config.json"
    config = json.loads(path.read_text())
    config["image_processor"].pop("size")  # a config that declares no max_pixels
    path.write_text(json.dumps(config, indent=2))
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    rng = np.random.default_rng(0)
    for name in ("example", "test"):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(work / f"{name}.png")
    print(json.dumps({"phase": "build", "parameters": sum(p.numel() for p in model.parameters()),
                      "peak_rss_gb": round(peak_rss_gb(), 2)}))


def train(args: argparse.Namespace, work: Path) -> None:
    """One optimizer step of the project's trainer at native size."""
    began = time.perf_counter()
    vlm = LoadedVLM.from_pretrained(work / "checkpoint", VLMConfig(device="cpu"))
    load_seconds = time.perf_counter() - began
    boxes = ",".join(f"[{100 + 90 * i},{200 + 40 * i},{180 + 90 * i},{260 + 40 * i}]" for i in range(3))
    sample = {
        "sample_id": 0, "subquery_id": "count", "question": "How many nectarines and tangerines are on the left?",
        "target": format_target(f"There are 2 tangerines and 1 nectarine at {boxes}.", "[1, 2]"),
        "image_path": str(work / "test.png"), "example_image_path": str(work / "example.png"),
        "example_target": format_target(f"There are 2 tangerines and 1 nectarine at {boxes}.", "[1, 2]"),
    }
    config = dataclasses.replace(LORA_R16_ATTENTION, gradient_accumulation_steps=1, num_epochs=1, warmup_steps=0)
    trainer = Trainer(vlm, pd.DataFrame([sample]), config, work / "run", exact_answer_match, DistContext(),
                      None, None)
    example = trainer.encoder.encode_example(request_from_row(sample), sample["target"])
    batch = collate_for_loss([example], trainer.encoder.pad_token_id)
    rss_before = peak_rss_gb()
    trainer.model.train()
    began, cpu_began = time.perf_counter(), time.process_time()
    trainer.optimizer_step([batch])
    budget = PixelBudget.of(vlm.processor)
    print(json.dumps({
        "phase": "train", "min_pixels": budget.min_pixels, "max_pixels": budget.max_pixels,
        "image_grid_thw": example.prompt.image_grid_thw.tolist(),
        "visual_tokens_per_image": budget.visual_tokens(*Image.open(work / "test.png").size),
        "sample_tokens": example.num_tokens, "target_tokens": int(example.target_ids.numel()),
        "load_seconds": round(load_seconds, 1),
        "step_seconds": round(time.perf_counter() - began, 1),
        "step_cpu_seconds": round(time.process_time() - cpu_began, 1),
        "peak_rss_gb_before_step": round(rss_before, 2), "peak_rss_gb": round(peak_rss_gb(), 2),
    }))


def classify(args: argparse.Namespace, work: Path) -> None:
    """``python -m pipelines.classify --method icl`` on the test image, in this process."""
    storage = work / "store"
    split = StorageLayout(storage).table("loco_fc_split", SCENARIO)
    split.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": [f"{SCENARIO}/train/good/000"], "image_path": [str(work / "example.png")],
                  "split": ["train"], "labels": [["normal"]]}).to_parquet(split)
    os.environ.update({STORAGE_VARIABLE: str(storage), VLM_CHECKPOINT_VARIABLE: str(work / "checkpoint")})
    spec = load_specs(None)[SCENARIO]
    vlm = LoadedVLM.from_pretrained(work / "checkpoint", VLMConfig(device="cpu"))
    encoder = PromptEncoder(vlm.processor)
    prompt = encoder.encode_prompt(PromptRequest(spec.subqueries[0].text, work / "example.png",
                                                 format_target("x", "1"), work / "test.png"))
    del vlm, encoder
    began, cpu_began = time.perf_counter(), time.process_time()
    results = run_classify(classify_args([str(work / "test.png"), "--scenario", SCENARIO, "--method", "icl",
                                          "--max-new-tokens", str(args.max_new_tokens)]))
    print(json.dumps({
        "phase": "classify", "subqueries": len(spec.subqueries), "prompt_tokens_first_subquery":
        int(prompt.input_ids.numel()), "image_grid_thw": prompt.image_grid_thw.tolist(),
        "max_new_tokens": args.max_new_tokens, "images_classified": len(results),
        "predicted_labels": results[0]["labels"] if results else None,
        "seconds": round(time.perf_counter() - began, 1), "cpu_seconds": round(time.process_time() - cpu_began, 1),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }, default=str))


PHASES = {"build": build, "train": train, "classify": classify}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase != "all":
        PHASES[args.phase](args, args.work_dir)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        forwarded = ["--num-layers", str(args.num_layers), "--image-size", args.image_size,
                     "--max-new-tokens", str(args.max_new_tokens), "--work-dir", str(work)]
        for phase in PHASES:
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "benchmarks.real_size", "--phase", phase, *forwarded], check=True)
            print(f"{phase}: {time.perf_counter() - began:.0f} s wall (process)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""LAC inference speed: one subquery at a time against batched generation with shared image features.

Every test image is asked all subqueries of a scenario in the Fig. 3 format (one shared example
image). Three ways of answering the same questions are timed:

* ``one_at_a_time``: ``generate(batch_size=1)``, one prompt per call, every image encoded per prompt;
* ``batched``: ``generate(batch_size=B)``, prompts grouped by test image, images still encoded per prompt;
* ``shared_features``: what ``lac_predictions`` runs (``models.evaluation.local_answerer``): batched,
  and each distinct image goes through the vision tower once (``generate_with_image_cache``).

It prints seconds, questions per second, the speed-up over one-at-a-time, vision-tower calls, and
whether the three give identical answers (they do in fp32; bf16 on GPU may differ in the last bits
of near-tied logits between batch shapes).

    python -m benchmarks.inference                                  # tiny model on CPU
    python -m benchmarks.inference --model-size 3b --image-size 800x550   # Qwen2.5-VL-3B-sized, GPU
    python -m benchmarks.inference --model-dir /models/Qwen2.5-VL-7B-Instruct --image-size 1600x1100

Random weights generate until ``--max-new-tokens`` in every mode, so the modes do equal work.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.finetune import random_3b
from models.envelope import format_target
from models.evaluation import ICLExample, Question, local_answerer
from models.spec import format_answer, get_spec
from models.vlm import LoadedVLM, VLMConfig, build_tiny_qwen25vl, generate
from models.vlm.inference import ImageFeatureCache, generate_with_image_cache

logger = logging.getLogger("benchmarks.inference")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-size", choices=["tiny", "3b"], default="tiny")
    parser.add_argument("--model-dir", type=Path, help="benchmark this local checkpoint instead")
    parser.add_argument("--num-layers", type=int, help="cut the 3b-sized model to this many layers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2", "eager"])
    parser.add_argument("--scenario", default="juice_bottle", help="whose subqueries are asked")
    parser.add_argument("--images", type=int, default=4, help="test images")
    parser.add_argument("--image-size", default="112x84", help="WxH of the synthetic images")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="timed repetitions per mode (best is kept)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def load_model(args: argparse.Namespace, work: Path) -> LoadedVLM:
    config = VLMConfig(dtype=args.dtype, device=args.device, attn_implementation=args.attn)
    if args.model_dir is not None:
        return LoadedVLM.from_pretrained(args.model_dir, config)
    if args.model_size == "3b":
        return random_3b(args, work)
    return LoadedVLM.from_pretrained(build_tiny_qwen25vl(work / "tiny"), config)


def synthetic_questions(args: argparse.Namespace, work: Path) -> list[Question]:
    """Noise images of the requested size; every subquery of ``--scenario`` asked about each."""
    spec = get_spec(args.scenario)
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(args.images + 1):
        path = work / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    questions = []
    for i, path in enumerate(paths[1:]):
        for sub in spec.subqueries:
            answer = format_answer(sub, sub.normal)
            example = ICLExample("example", paths[0], format_target(f"The image shows {answer}.", answer))
            questions.append(Question(f"test_{i}", path, sub.id, sub.text, example))
    return questions


def synchronize(vlm: LoadedVLM) -> None:
    if vlm.device.type == "cuda":
        torch.cuda.synchronize(vlm.device)


def timed(vlm: LoadedVLM, answer, questions: list[Question], repeats: int) -> tuple[float, list[str]]:
    """Best wall time over ``repeats`` (after one untimed warm-up on the first image's questions)."""
    answer(questions[:2])
    best, texts = float("inf"), []
    for _ in range(repeats):
        synchronize(vlm)
        began = time.perf_counter()
        texts = answer(questions)
        synchronize(vlm)
        best = min(best, time.perf_counter() - began)
    return best, texts


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        vlm = load_model(args, work)
        questions = synthetic_questions(args, work)

        def one_at_a_time(qs):
            return [generate(vlm, [q.request()], max_new_tokens=args.max_new_tokens, batch_size=1)[0] for q in qs]

        def batched(qs):
            return generate(vlm, [q.request() for q in qs], max_new_tokens=args.max_new_tokens,
                            batch_size=args.batch_size)

        modes = {"one_at_a_time": one_at_a_time, "batched": batched,
                 "shared_features": local_answerer(vlm, batch_size=args.batch_size,
                                                   max_new_tokens=args.max_new_tokens)}
        results = {name: timed(vlm, fn, questions, args.repeats) for name, fn in modes.items()}
        cache = ImageFeatureCache(vlm)  # counts vision-tower calls of one shared-features pass
        generate_with_image_cache(vlm, [q.request() for q in questions], max_new_tokens=1,
                                  batch_size=args.batch_size, cache=cache)
    base_seconds = results["one_at_a_time"][0]
    reference = results["one_at_a_time"][1]
    report = {
        "model": str(args.model_dir or args.model_size),
        "device": str(vlm.device),
        "dtype": str(next(vlm.model.parameters()).dtype),
        "scenario": args.scenario,
        "images": args.images,
        "questions": len(questions),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "vision_tower_calls": {"one_at_a_time": 2 * len(questions), "batched": 2 * len(questions),
                               "shared_features": cache.computed},
    }
    for name, (seconds, texts) in results.items():
        report[name] = {"seconds": round(seconds, 4), "questions_per_s": round(len(questions) / seconds, 3),
                        "speed_up": round(base_seconds / seconds, 2), "identical_answers": texts == reference}
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    if args.json:
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fine-tuning throughput: samples/s, tokens/s, peak memory and (on GPU) model FLOPs utilisation.

It times the real training step of ``models.vlm.train`` (LoRA, token-normalised loss with
``lm_head`` applied only at target positions, AdamW, clipping) on synthetic Fig. 3 samples whose
images have a chosen size. Encoding (image resize, tokenising) is timed separately, since
DataLoader workers can hide it.

    python -m benchmarks.finetune                    # tiny model on CPU (what CI can run)
    python -m benchmarks.finetune --model-size 3b    # Qwen2.5-VL-3B-sized, random weights, GPU
    python -m benchmarks.finetune --model-dir /models/Qwen2.5-VL-3B-Instruct --image-size 1600x1100

(from the repository root; ``python benchmarks/finetune.py`` works once the project is installed).
The tiny model's processor caps images at 224×224 pixels; the 3B-sized one accepts LOCO's native
size, as does a real checkpoint.

Where the gradient path goes (issue 13 item 4): ``--input-grad-hooks every-embedding`` puts back what
transformers' gradient checkpointing does on its own (a requires-grad hook on every sub-model's input
embeddings, the vision tower's ``patch_embed`` included, so autograd runs backward through the frozen
vision tower); the default ``language`` is the project's (``LoadedVLM.enable_gradient_checkpointing``).
Compare them at a native LOCO size on two cores, one process each (peak RSS is per process)::

    OMP_NUM_THREADS=1 python -m benchmarks.finetune --model-size 3b --num-layers 2 --image-size 1600x1280 \
        --batch-size 1 --steps 1 --warmup 0 --gradient-checkpointing --input-grad-hooks every-embedding
    OMP_NUM_THREADS=1 python -m benchmarks.finetune --model-size 3b --num-layers 2 --image-size 1600x1280 \
        --batch-size 1 --steps 1 --warmup 0 --gradient-checkpointing --input-grad-hooks language

``cpu_seconds_per_step`` (process CPU time) is the figure to compare on a shared machine, and
``extra_rss_gb`` (peak RSS during the steps minus RSS before them) the memory a step adds.
Measured on a shared 2-core AMD EPYC (OMP_NUM_THREADS=1, ``--num-layers 1 --image-size 800x1600``,
juice_bottle's native size, 3,826 tokens a sample): every-embedding 168.4 CPU s and +2.35 GB a step,
language 89.5 CPU s and +2.01 GB (1.9× the CPU time, 1.17× the extra memory). With ``--num-layers 2
--image-size 1600x1280`` the every-embedding step had not finished after 470 CPU s (6.4 GB peak RSS).

Model FLOPs utilisation uses the usual ``6 · N · tokens / time / peak`` (N: all parameters; tokens:
everything entering the language model, image tokens included). With a frozen base and LoRA the
backward pass skips weight gradients, so the work really done is nearer ``4 · N · tokens``
(``8 · N`` with gradient checkpointing); both figures are printed.

The 3B-sized model is never downloaded: its config is written out below (the published
``Qwen2.5-VL-3B-Instruct`` config.json), parameters are counted on the meta device, and the
weights are materialised directly on the GPU (``to_empty`` from meta would leave the rotary
embeddings' non-persistent ``inv_freq`` buffers uninitialised).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from models.devices import resolve_device, resolve_dtype
from models.envelope import format_target
from models.vlm.distributed import DistContext
from models.vlm.encoding import collate_for_loss, request_from_row
from models.vlm.model import NATIVE_MAX_PIXELS, LoadedVLM, VLMConfig
from models.vlm.prompt import exact_answer_match
from models.vlm.tiny import TinyQwenConfig, build_processor, build_tiny_qwen25vl, train_tokenizer
from models.vlm.train import TrainConfig, Trainer

logger = logging.getLogger("benchmarks.finetune")

QWEN25_VL_3B_TEXT = {
    "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
    "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                              "mrope_section": [16, 24, 24]},
}
QWEN25_VL_3B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-size", choices=["tiny", "3b"], default="tiny")
    parser.add_argument("--model-dir", type=Path, help="benchmark this local checkpoint instead")
    parser.add_argument("--num-layers", type=int, help="cut the 3b-sized model to this many text and "
                        "vision layers (a smoke test of the 3b path on small machines)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2", "eager"])
    parser.add_argument("--image-size", default="112x112",
                        help="WxH of the synthetic images (LOCO: 1600x1100)")
    parser.add_argument("--target-words", type=int, default=40, help="length of the synthetic reasoning")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--input-grad-hooks", choices=["language", "every-embedding"], default="language",
                        help="with --gradient-checkpointing: hook only the language model's input embeddings "
                             "(the project's) or every sub-model's, the vision tower's too (transformers')")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="peak dense TFLOP/s of the accelerator (H100/H200 SXM bf16: 989)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


@contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def qwen25_vl_3b_config(tokenizer, num_layers: int | None) -> Qwen2_5_VLConfig:
    """The published 3B config, with special ids taken from ``tokenizer`` (ids < 1024 are valid)."""
    text, vision = dict(QWEN25_VL_3B_TEXT), dict(QWEN25_VL_3B_VISION)
    if num_layers is not None:
        text["num_hidden_layers"] = num_layers
        vision["depth"] = num_layers
        vision["fullatt_block_indexes"] = [num_layers - 1]
    token = tokenizer.convert_tokens_to_ids
    text.update(bos_token_id=token("<|endoftext|>"), eos_token_id=token("<|im_end|>"),
                pad_token_id=token("<|endoftext|>"))
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=True,
        image_token_id=token("<|image_pad|>"), video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"), vision_end_token_id=token("<|vision_end|>"))


def random_3b(args: argparse.Namespace, work: Path) -> LoadedVLM:
    """A Qwen2.5-VL-3B-sized model with random weights, built on the target device."""
    tokenizer = train_tokenizer(seed=0)
    processor = build_processor(tokenizer, TinyQwenConfig(min_pixels=56 * 56, max_pixels=NATIVE_MAX_PIXELS))
    config = qwen25_vl_3b_config(tokenizer, args.num_layers)
    config._attn_implementation = args.attn
    with torch.device("meta"):
        counted = sum(p.numel() for p in Qwen2_5_VLForConditionalGeneration(config).parameters())
    logger.info("3b-sized model: %.3f B parameters (counted on the meta device)", counted / 1e9)
    device = resolve_device(args.device)
    with torch.device(device), default_dtype(resolve_dtype(args.dtype, device)):
        model = Qwen2_5_VLForConditionalGeneration(config)
    vlm_config = VLMConfig(dtype=args.dtype, device=args.device, attn_implementation=args.attn)
    return LoadedVLM(model.eval(), processor, vlm_config, work)


def load_model(args: argparse.Namespace, work: Path) -> LoadedVLM:
    config = VLMConfig(dtype=args.dtype, device=args.device, attn_implementation=args.attn)
    if args.model_dir is not None:
        return LoadedVLM.from_pretrained(args.model_dir, config)
    if args.model_size == "3b":
        return random_3b(args, work)
    return LoadedVLM.from_pretrained(build_tiny_qwen25vl(work / "tiny"), config)


def synthetic_samples(args: argparse.Namespace, work: Path, n: int) -> pd.DataFrame:
    """``n`` Fig. 3 samples with noise images of the requested size and box-citing reasoning."""
    rng = np.random.default_rng(0)
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    for i in range(n + 1):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(work / f"img_{i}.png")
    corners = rng.integers(0, 1000, (args.target_words // 2, 2))
    boxes = " ".join(f"[{x},{y},{x + 40},{y + 30}]" for x, y in corners)
    return pd.DataFrame({
        "sample_id": range(n),
        "subquery_id": [f"q{i % 4}" for i in range(n)],
        "question": "How many nuts are in the picture?",
        "target": format_target(f"There are 2 nuts at {boxes}.", "2"),
        "image_path": [str(work / f"img_{i + 1}.png") for i in range(n)],
        "example_image_path": str(work / "img_0.png"),
        "example_target": format_target("There are 2 nuts.", "2"),
    })


def peak_memory_gb(device: torch.device) -> tuple[str, float]:
    if device.type == "cuda":
        return "cuda max_memory_allocated", torch.cuda.max_memory_allocated(device) / 2**30
    return "process peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def prepare(args: argparse.Namespace, work: Path) -> tuple[Trainer, list[dict], float]:
    """The real trainer on synthetic samples, one optimizer step's batches, and encode time/sample."""
    vlm = load_model(args, work)
    samples = synthetic_samples(args, work, args.batch_size * args.grad_accum)
    config = TrainConfig(per_device_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
                         lora_r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                         gradient_checkpointing=args.gradient_checkpointing, log_every_steps=10**9)
    trainer = Trainer(vlm, samples, config, work / "out", exact_answer_match, DistContext(), None, None)
    if args.gradient_checkpointing and args.input_grad_hooks == "every-embedding":
        trainer.vlm.base_model.enable_input_require_grads()  # transformers' hooks, patch_embed's included
    began = time.perf_counter()
    examples = [trainer.encoder.encode_example(request_from_row(r), r["target"])
                for r in samples.to_dict("records")]
    encode_seconds = (time.perf_counter() - began) / len(examples)
    batches = [collate_for_loss(examples[i:i + args.batch_size], trainer.encoder.pad_token_id)
               for i in range(0, len(examples), args.batch_size)]
    return trainer, batches, encode_seconds


def current_rss_gb() -> float:
    """Resident memory of this process now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**30


def time_steps(trainer: Trainer, batches: list[dict], steps: int, warmup: int) -> tuple[float, float, float]:
    """Wall and CPU seconds per optimizer step after ``warmup`` untimed steps (peak memory counted from
    there), and the RSS before the first step (the CPU baseline of ``extra_rss_gb``)."""
    device = trainer.device
    trainer.model.train()
    rss_before = current_rss_gb()
    for _ in range(warmup):
        trainer.optimizer_step(batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    began, cpu_began = time.perf_counter(), time.process_time()
    for _ in tqdm(range(steps), desc="timed steps", leave=False):
        trainer.optimizer_step(batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - began) / steps, (time.process_time() - cpu_began) / steps, rss_before


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer, batches, encode_seconds = prepare(args, Path(tmp))
        step_seconds, cpu_seconds, rss_before = time_steps(trainer, batches, args.steps, args.warmup)
        device = trainer.device
        memory_kind, memory = peak_memory_gb(device)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        samples_per_step = args.batch_size * args.grad_accum
        tokens_per_step = sum(int(b["attention_mask"].sum()) for b in batches)
        result = {
            "model": str(args.model_dir or args.model_size),
            "layers_override": args.num_layers,
            "device": str(device),
            "dtype": str(next(trainer.model.parameters()).dtype),
            "parameters": n_params,
            "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "image_size": args.image_size,
            "tokens_per_sample": tokens_per_step / samples_per_step,
            "samples_per_step": samples_per_step,
            "seconds_per_step": step_seconds,
            "cpu_seconds_per_step": cpu_seconds,
            "samples_per_s": samples_per_step / step_seconds,
            "tokens_per_s": tokens_per_step / step_seconds,
            "encode_seconds_per_sample": encode_seconds,
            "peak_memory_gb": memory,
            "peak_memory_kind": memory_kind,
            "extra_rss_gb": memory - rss_before if device.type == "cpu" else None,
            "gradient_checkpointing": args.gradient_checkpointing,
            "input_grad_hooks": args.input_grad_hooks,
        }
    if device.type == "cuda":
        work_factor = 8 if args.gradient_checkpointing else 4
        peak = args.peak_tflops * 1e12
        result["mfu_6N"] = 6 * n_params * result["tokens_per_s"] / peak
        result[f"mfu_lora_{work_factor}N"] = work_factor * n_params * result["tokens_per_s"] / peak
        result["peak_tflops"] = args.peak_tflops
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    result = run(args)
    for key, value in result.items():
        print(f"{key:>26}: {value:.4g}" if isinstance(value, float) else f"{key:>26}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

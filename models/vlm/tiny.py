"""A tiny Qwen2.5-VL built from a config, with a locally trained tokenizer and random weights.

Why: the chain and the tests must run on a 2-core CPU with no network and no downloaded weights,
yet exercise exactly the code a real Qwen2.5-VL-3B/7B checkpoint goes through. The builder writes
a directory in the same layout ``save_pretrained`` gives a downloaded checkpoint (``config.json``,
``model.safetensors``, ``tokenizer.json``, processor and chat template), so ``from_pretrained``
cannot tell them apart. Its answers are meaningless until fine-tuned: it is for running the chain.

Choices that matter (checked on this machine, see the shared notes):

* byte-level BPE with Qwen2's pre-tokenizer, trained on text shaped like the project's prompts and
  answers so that sequences stay short; the Qwen special tokens occupy the same relative order as in
  the real vocabulary (``<|endoftext|>`` first, then ``<|im_start|>``, ``<|im_end|>``, …);
* ``mrope_section`` must sum to ``head_dim / 2`` (the real model uses ``[16, 24, 24]``);
* embeddings are re-initialised with a large standard deviation (0.2): with the default 0.02 a
  LoRA on a random tiny model cannot fit anything.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from models.atomic import default_modes
from models.envelope import format_target
from models.vlm.prompt import CASE_HEADER, CASE_OUTPUT, INSTRUCTION, SYSTEM_PROMPT, TEST_HEADER, TEST_OUTPUT

logger = logging.getLogger(__name__)

BUILD_MARKER = "tiny-build.json"  # written last: seed and config of a whole build
_TMP_INFIX = ".tmp-"

# Order as in Qwen2.5-VL's vocabulary (ids 151643…151656 there).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template Qwen2.5-VL-*-Instruct ships (chat_template.json on the hub).
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_QUESTIONS = (
    "The box can be divided into three rows and five columns. What is the distribution of yellow "
    "pushpins in the first row [n1, n2, n3, n4, n5]? (where ni represents the number of yellow "
    "pushpins in the i-th cell)",
    "Are all separators between the compartments of the box complete? Answer yes or no.",
    "How many washers are there in the bag?",
    "How many nuts are in the picture?",
    "How many long screws are there? How many short screws are there?",
    "Is the screw length right, too long or too short?",
    "Is the juice in the bottle just right/too much/too little?",
    "Is the fruit label centred on the upper body of the bottle?",
    "Does the fruit icon match the colour of the juice?",
    "Are the labels in the right order, the fruit label above the text label?",
    "How many nectarines and how many tangerines are in the left compartment?",
    "Is the fruit on the left and the cereals on the right?",
    "Are there banana chips and almonds on the cereals? Is the ratio of toppings about 1 : 1?",
    "Is the amount of cereals just right, too much or too little?",
    "How many connectors are there, and how many clamps does each connector have?",
    "Does the cable colour match the connector type (yellow 2, blue 3, red 5)?",
    "Is the cable intact and long enough? Do the positions of the cable connections correspond?",
)
_OBJECTS = ("pushpin", "screw", "nut", "washer", "bottle", "label", "fruit icon", "juice", "nectarine",
            "tangerine", "cereals", "banana chip", "almond", "connector", "cable", "compartment")
_CHOICES = ("yes", "no", "just right", "too much", "too little", "right", "too long", "too short",
            "Same", "Different", "orange", "banana", "cherry", "yellow", "blue", "red")


@dataclass(frozen=True)
class TinyQwenConfig:
    """Dimensions of the tiny model and its tokenizer (defaults: about 0.25 M parameters)."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    mrope_section: tuple[int, int, int] = (2, 3, 3)
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_num_heads: int = 2
    embedding_std: float = 0.2
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224


def _box(rng: random.Random) -> str:
    x0, y0 = rng.randint(0, 1500), rng.randint(0, 1000)
    return f"[{x0},{y0},{x0 + rng.randint(10, 300)},{y0 + rng.randint(10, 300)}]"


def _answer_text(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return "[" + ",".join(str(rng.randint(0, 3)) for _ in range(5)) + "]"
    if kind == 1:
        return str(rng.randint(0, 20))
    return rng.choice(_CHOICES)


def _reasoning_text(rng: random.Random) -> str:
    obj = rng.choice(_OBJECTS)
    boxes = ",".join(_box(rng) for _ in range(rng.randint(1, 4)))
    return (
        f"Observe carefully, there are {rng.randint(0, 16)} {obj}s in the picture. "
        f"The positions of each {obj} are respectively {boxes}. "
        f"The {obj} at ({rng.randint(0, 1600)}, {rng.randint(0, 1100)}) is on the "
        f"{rng.choice(('left', 'right', 'top', 'bottom'))}."
    )


def tokenizer_corpus(seed: int = 0, n_samples: int = 400) -> Iterator[str]:
    """Text shaped like the chat the model sees: Fig. 3 frame, subqueries, reasoning with boxes."""
    rng = random.Random(seed)
    frame = (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{{q}}\n{CASE_HEADER}"
        f"{CASE_OUTPUT}{{t}}\n{INSTRUCTION}\n{TEST_HEADER}{TEST_OUTPUT}<|im_end|>\n"
        "<|im_start|>assistant\n{t}<|im_end|>\nYou are a helpful assistant."
    )
    for i in range(n_samples):
        target = format_target(_reasoning_text(rng), _answer_text(rng))
        yield frame.format(q=_QUESTIONS[i % len(_QUESTIONS)], t=target)


def train_tokenizer(seed: int = 0, vocab_size: int = 1024) -> Qwen2Tokenizer:
    """Byte-level BPE with Qwen2's pre-tokenizer and the Qwen special tokens, trained locally."""
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        show_progress=False,
    )
    backend.train_from_iterator(tokenizer_corpus(seed), trainer)
    bpe = json.loads(backend.to_str())["model"]
    return Qwen2Tokenizer(
        vocab=bpe["vocab"],
        merges=[tuple(pair) for pair in bpe["merges"]],  # "a b" strings are rejected by v5
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS[3:]),
        model_max_length=32768,
    )


def build_processor(tokenizer: Qwen2Tokenizer, config: TinyQwenConfig) -> Qwen2_5_VLProcessor:
    """Image + video processors and tokenizer wired as in a Qwen2.5-VL checkpoint."""
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels}
    )
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN25_VL_CHAT_TEMPLATE,
    )


def build_model_config(tokenizer: Qwen2Tokenizer, config: TinyQwenConfig) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config with tiny dimensions whose special ids are the tokenizer's."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    head_dim = config.hidden_size // config.num_attention_heads
    if 2 * sum(config.mrope_section) != head_dim:
        raise ValueError(f"mrope_section {config.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "max_position_embeddings": 32768,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": list(config.mrope_section),
        },
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {
        "depth": config.vision_depth,
        "hidden_size": config.vision_hidden_size,
        "intermediate_size": config.vision_intermediate_size,
        "num_heads": config.vision_num_heads,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "spatial_merge_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [config.vision_depth - 1],
        "out_hidden_size": config.hidden_size,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def _model_card(config: TinyQwenConfig, seed: int, n_parameters: int) -> str:
    return (
        "# Tiny Qwen2.5-VL (random weights)\n\n"
        "Built by `models.vlm.tiny.build_tiny_qwen25vl` from a config with a locally trained tokenizer.\n"
        "Its weights are random: results obtained with it only show that the chain runs; they say "
        "nothing about the method.\n\n"
        f"- parameters: {n_parameters}\n- seed: {seed}\n- config: `{json.dumps(asdict(config))}`\n"
    )


def create_tiny_qwen25vl(seed: int = 0, config: TinyQwenConfig | None = None
                         ) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor]:
    """The tiny model (eval mode) and its processor in memory; the same seed gives the same ones."""
    config = config or TinyQwenConfig()
    tokenizer = train_tokenizer(seed, config.vocab_size)
    processor = build_processor(tokenizer, config)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(build_model_config(tokenizer, config))
    with torch.no_grad():  # tied: this also sets lm_head
        model.get_input_embeddings().weight.normal_(0.0, config.embedding_std)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    return model.eval(), processor


def build_tiny_qwen25vl(out_dir: str | Path, seed: int = 0, config: TinyQwenConfig | None = None) -> Path:
    """Build a tiny Qwen2.5-VL and ``save_pretrained`` it (safetensors) with its processor.

    The result loads with ``AutoModelForImageTextToText`` / ``AutoProcessor.from_pretrained(out_dir)``
    exactly like a downloaded checkpoint. It is written into a temporary sibling folder, completed by
    :data:`BUILD_MARKER`, and renamed into place, so ``out_dir`` is either whole or untouched by a
    build that dies half-way (an existing ``out_dir`` is replaced only by a whole new one).
    """
    config = config or TinyQwenConfig()
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{_TMP_INFIX}"))
    try:
        model, processor = create_tiny_qwen25vl(seed, config)
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        n_parameters = sum(p.numel() for p in model.parameters())
        (tmp / "README.md").write_text(_model_card(config, seed, n_parameters))
        (tmp / BUILD_MARKER).write_text(json.dumps(_build_record(seed, config), sort_keys=True))
        default_modes(tmp)  # mkdtemp makes 0700, safetensors 0600: another user or pod must read the model
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("built tiny Qwen2.5-VL (%d parameters, vocab %d) in %s", n_parameters, len(processor.tokenizer), out)
    return out


def is_complete_build(directory: str | Path, seed: int = 0, config: TinyQwenConfig | None = None) -> bool:
    """Whether ``directory`` holds a whole tiny model built with this ``seed`` and ``config``.

    A folder built before :data:`BUILD_MARKER` existed counts as whole when its model card, which
    that builder wrote last, is there (so it is neither rebuilt nor locked, e.g. on read-only storage).
    """
    directory = Path(directory)
    marker = directory / BUILD_MARKER
    if not marker.exists():
        return (directory / "README.md").is_file() and (directory / "config.json").is_file()
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return record == _build_record(seed, config or TinyQwenConfig())


def ensure_tiny_qwen25vl(out_dir: str | Path, seed: int = 0, config: TinyQwenConfig | None = None) -> Path:
    """The tiny model at ``out_dir``, built on first use; safe for concurrent callers.

    A whole build (:func:`is_complete_build`) is served without taking any lock (a finished folder
    only ever appears by a rename). Otherwise one caller at a time, under ``<out_dir>.lock``, removes
    what killed builds left (a half-written ``out_dir`` from before builds were atomic, temporary
    folders) and builds.
    """
    out = Path(out_dir)
    if is_complete_build(out, seed, config):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.with_name(out.name + ".lock"))):
        if is_complete_build(out, seed, config):
            return out
        for debris in out.parent.glob(f".{glob.escape(out.name)}{_TMP_INFIX}*"):
            shutil.rmtree(debris, ignore_errors=True)
        if out.exists():
            logger.warning("%s is not a whole tiny model build (a build was interrupted): rebuilding it", out)
        return build_tiny_qwen25vl(out, seed, config)


def _build_record(seed: int, config: TinyQwenConfig) -> dict:
    return json.loads(json.dumps({"seed": seed, "config": asdict(config)}))


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; a ``target`` already there is first moved aside, then deleted."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{_TMP_INFIX}old-"))
    os.replace(target, old / target.name)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)

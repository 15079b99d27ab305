"""How many training targets keep their ``<answer>`` inside the generation limit (issue 13 item 5).

Generates the default data set for ``--scenario`` (or reuses ``--generated-dir``), builds the
``cot_dataset`` targets of every LOCO FC image from the generator's annotations, and counts, with a
tokenizer like Qwen's on this text (byte-level BPE with Qwen2's pre-tokenizer, so numbers split into
single digits, trained on the targets with a vocabulary large enough that every word is one token, as
in Qwen's 151,643-token vocabulary), how many targets end their ``</answer>`` within:

* the old limit, three characters a token: ``max(len(target)) // 3 + 16``;
* the limit now, :func:`models.vlm.inference.generation_room` with the same tokenizer.

    OMP_NUM_THREADS=1 python -m benchmarks.generation_limits --scenario pushpins

Measured on the default generated set: pushpins, 252 targets of 63 LOCO FC images, 2.25 characters a
token; before, a 153-token limit kept ``</answer>`` in 66 of 252 targets (26.2 %); now 223 tokens, 252
of 252.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from models.grounding.evaluate import loco_fc_images
from models.instruct.cot import CotConfig, build_cot, original_records
from models.objects import objects_from_frame
from models.spec import load_specs
from models.storage import scratch_dir
from models.synth import SCENARIOS, GeneratorConfig, ensure_generated
from models.synth.generate import annotations_path
from models.vlm.inference import generation_room


def qwen_like_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with Qwen2's pre-tokenizer (single digits), trained on ``texts``."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="pushpins", choices=SCENARIOS)
    parser.add_argument("--vocab-size", type=int, default=20000)
    parser.add_argument("--generated-dir", type=Path)
    args = parser.parse_args()
    config = GeneratorConfig()
    out = args.generated_dir or scratch_dir(f"attributes-{config.scale}-{config.seed}")
    ensure_generated(args.scenario, out, config)
    spec = load_specs(None)[args.scenario]
    images = loco_fc_images(out, args.scenario)
    annotations = pd.read_parquet(annotations_path(out, args.scenario))
    objects = objects_from_frame(annotations[annotations["image_id"].isin(images["image_id"])])
    frame = images[["image_id", "image_path", "labels"]].assign(labels=lambda d: d["labels"].map(list))
    targets = build_cot(spec, original_records(spec, frame, objects), {}, CotConfig()).table["target"].tolist()
    tokenizer = qwen_like_tokenizer(targets, args.vocab_size)
    ids = tokenizer(targets, add_special_tokens=False)["input_ids"]
    chars_per_token = sum(map(len, targets)) / sum(map(len, ids))
    # tokens up to and including the end of </answer>
    answer_ends = [len(tokenizer(t[: t.rindex("</answer>") + len("</answer>")], add_special_tokens=False)
                       ["input_ids"]) for t in targets]
    old = max(len(t) for t in targets) // 3 + 16
    new = generation_room(targets, tokenizer)
    print(f"{args.scenario}: {len(targets)} targets from {len(images)} LOCO FC images (generated, scale "
          f"{config.scale}); {chars_per_token:.2f} characters a token; longest target "
          f"{max(map(len, targets))} characters, {max(map(len, ids))} tokens")
    for name, limit in (("3 characters a token (before)", old), ("generation_room (now)", new)):
        inside = sum(end <= limit for end in answer_ends)
        print(f"{name}: limit {limit} tokens, </answer> inside for {inside} of {len(targets)} "
              f"({inside / len(targets):.1%})")


if __name__ == "__main__":
    main()

"""Training presets: LoRA r16 on the attention projections for real checkpoints, and one that makes the tiny
model learn.

Only Eq. 4's weights (α = 1, β = 0.2) and the form of Eq. 4 and Eq. 5 come from the paper, and they are
``TrainConfig``'s defaults in every preset. The paper gives no LoRA rank, learning rate, schedule, number
of epochs, batch size, LoRA targets or γ: every such value below is this project's choice, which is why
the real-checkpoint preset is named for what it is (``lora_r16_attention``) and not after the paper.

A real Qwen2.5-VL fine-tunes well with LoRA on the attention projections at lr 1e-4, and every sample is
scored after every epoch. The tiny built-in model has random weights and about 200k parameters: there is
nothing for a LoRA to adapt, so its preset trains every weight (``method="full"``), which learns fastest per
CPU-minute. Measured with ``python -m benchmarks.learning --size builtin --rows sft_answers
--no-augmentation --method lora|full`` (answers-only targets, pushpins, 2 shared cores of an AMD EPYC):
training loss 1.19 after 256 samples and 15.5 CPU seconds with LoRA (r16 on attention and MLP, lr 5e-3,
the former preset) against 0.50 after 256 samples and 17.6 CPU seconds with every weight (lr 2e-3, 10
warm-up steps); at about 20 CPU seconds, 0.98 against 0.34, and only the full run's answers began to parse
(25 % of the held-out replies against none). The preset exists to run the whole chain in minutes on two
CPU cores, so an epoch is capped at 256 drawn samples and the difficulty of each group is estimated from 128
scored samples (mean difficulty × group size) instead of every sample.
"""

from __future__ import annotations

from models.vlm.train import TrainConfig

LORA_R16_ATTENTION = TrainConfig(
    num_epochs=3,
    per_device_batch_size=1,
    gradient_accumulation_steps=8,
    learning_rate=1e-4,
    lr_schedule="cosine",
    warmup_steps=10,
    lora_r=16,
    lora_alpha=32,
    lora_dropout=0.05,
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"),
    gradient_checkpointing=True,
)

TINY = TrainConfig(
    method="full",
    num_epochs=2,
    per_device_batch_size=8,
    gradient_accumulation_steps=1,
    learning_rate=2e-3,
    lr_schedule="constant",
    warmup_steps=10,
    gradient_checkpointing=False,
    samples_per_epoch=256,
    score_max_samples=128,
    score_batch_size=64,
)

PRESETS = {"lora_r16_attention": LORA_R16_ATTENTION, "tiny": TINY}
RENAMED_PRESETS = {"paper": "lora_r16_attention"}


def preset_for(name: str, tiny_model: bool) -> TrainConfig:
    """``auto`` picks ``tiny`` for the built-in model and ``lora_r16_attention`` for a real checkpoint."""
    if name == "auto":
        name = "tiny" if tiny_model else "lora_r16_attention"
    if name in RENAMED_PRESETS:
        raise ValueError(f"training preset {name!r} is now called {RENAMED_PRESETS[name]!r}: its LoRA rank, "
                         "learning rate, epochs and γ are this project's choices, not the paper's; set "
                         f"preset: {RENAMED_PRESETS[name]}")
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose auto, {', '.join(PRESETS)}")
    return PRESETS[name]

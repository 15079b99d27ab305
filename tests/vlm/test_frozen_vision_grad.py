"""Gradient checkpointing with LoRA: autograd never runs through the frozen vision tower (#13 item 4)."""

import torch

from models.vlm.encoding import PromptEncoder, collate_for_loss, request_from_row
from models.vlm.model import LoadedVLM
from models.vlm.scoring import TargetTokenNLL
from models.vlm.train import TrainConfig, lora_config


def _graph_nodes(tensor: torch.Tensor) -> int:
    """Backward nodes reachable from ``tensor`` (what autograd would run from it)."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


def _tensors(output) -> list[torch.Tensor]:
    """The vision tower's output tensors (its pooled features come per image, as a tuple)."""
    pooled = output.pooler_output
    return [output.last_hidden_state, *(pooled if isinstance(pooled, tuple | list) else [pooled])]


def _step(tiny_model_dir, samples, config: TrainConfig):
    """One checkpointed forward/backward; returns the vision tower's outputs and the model."""
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    vlm.enable_gradient_checkpointing()
    model = vlm.add_lora(lora_config(config))
    model.train()
    visual_outputs = []
    vlm.base_model.model.visual.register_forward_hook(lambda m, i, out: visual_outputs.append(out))
    encoder = PromptEncoder(vlm.processor)
    rows = samples.to_dict("records")[:2]
    batch = collate_for_loss([encoder.encode_example(request_from_row(r), r["target"]) for r in rows],
                             encoder.pad_token_id)
    nll, _ = TargetTokenNLL(model)(**batch)
    nll.sum().backward()
    return visual_outputs, model


def test_no_backward_through_the_vision_tower_and_lora_still_trains(tiny_model_dir, samples):
    (visual,), model = _step(tiny_model_dir, samples, TrainConfig(lora_r=4, lora_dropout=0.0))
    outputs = _tensors(visual)
    assert not any(t.requires_grad for t in outputs)
    assert sum(_graph_nodes(t) for t in outputs) == 0
    assert model.get_base_model().is_activation_checkpointing
    lora = {n: p.grad for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(g is not None for g in lora.values())
    assert all(float(g.abs().sum()) > 0 for n, g in lora.items() if "lora_B" in n)
    assert all(p.grad is None for n, p in model.named_parameters() if ".visual." in n)


def test_vision_lora_still_gets_gradients_under_checkpointing(tiny_model_dir, samples):
    config = TrainConfig(lora_r=4, lora_dropout=0.0, lora_targets=(), vision_lora_targets=("qkv",))
    (visual,), model = _step(tiny_model_dir, samples, config)
    assert all(t.requires_grad for t in _tensors(visual))  # its own LoRA weights need the path, nothing else
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_" in n}
    assert grads and all(g is not None for g in grads.values())
    # lora_B starts at zero, so only its gradient is non-zero in the first step
    assert all(float(g.abs().sum()) > 0 for n, g in grads.items() if "lora_B" in n)

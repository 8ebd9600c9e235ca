"""Optimizer parameter groups with layer-wise lr decay: lr x decay^depth from the head down.

Fusion and head are depth 0. Each encoder states its layers via ``depth_groups()``
(closest to the head first), so its first group is depth 1. Pretrained backbones
start from ``lr``; parts trained from scratch from ``lr * head_lr_mult``. Biases and
norm weights (1-D tensors) get no weight decay.
"""
from __future__ import annotations

from torch import nn


def param_groups(net: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0,
                 head_lr_mult: float = 1.0) -> list[dict]:
    groups: list[dict] = []
    seen: set[int] = set()

    def add(params, group_lr: float, name: str, depth: int) -> None:
        params = [p for p in params if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        for plist, wd, suffix in ((decay, weight_decay, ""), (no_decay, 0.0, ".no_wd")):
            if plist:
                groups.append({"params": plist, "lr": group_lr, "weight_decay": wd,
                               "name": name + suffix, "depth": depth})

    for modality, encoder in net.encoders.items():
        base = lr if encoder.pretrained_backbone else lr * head_lr_mult
        for i, params in enumerate(encoder.depth_groups()):
            add(params, base * layer_decay ** (i + 1), f"{modality}.depth{i + 1}", i + 1)
        add(encoder.parameters(), base * layer_decay, f"{modality}.rest", 1)  # anything not grouped
    add(net.parameters(), lr * head_lr_mult, "fusion_head", 0)
    return groups

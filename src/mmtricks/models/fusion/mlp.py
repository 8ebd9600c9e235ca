"""LF-MLP late fusion (SPEC section 3, the default): per-token linear adapters, concatenation, MLP."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..registry import FUSIONS
from .base import FusionOutput, LateFusion, shapes


@FUSIONS.register("mlp")
class MLPFusion(LateFusion):
    """Adapter per modality to ``adapter_dim``, concatenate every token, MLP to ``hidden``
    (LayerNorm, leaky ReLU, dropout)."""

    config_keys = ("adapter_dim", "hidden", "dropout")

    def __init__(self, encoders: Mapping[str, nn.Module], adapter_dim: int = 128, hidden: int = 128,
                 dropout: float = 0.1, **_: object):
        super().__init__()
        inputs = shapes(encoders)
        self.order = sorted(inputs)
        self.adapters = nn.ModuleDict({m: nn.Linear(inputs[m][1], adapter_dim) for m in self.order})
        width = adapter_dim * sum(inputs[m][0] for m in self.order)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(), nn.Dropout(dropout),
        )
        self.out_dim = hidden

    def combine(self, tokens: dict[str, torch.Tensor]) -> FusionOutput:
        adapted = {m: self.adapters[m](tokens[m]) for m in self.order}  # (B, n_m, A) each
        features = self.mlp(torch.cat([a.flatten(1) for a in adapted.values()], dim=1))  # (B, hidden)
        return FusionOutput(features, {m: a.mean(1) for m, a in adapted.items()})

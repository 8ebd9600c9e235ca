"""LF-MLP late fusion (SPEC section 3): per-token linear adapters, concatenation, MLP."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import FUSIONS


@FUSIONS.register("mlp")
class MLPFusion(nn.Module):
    """Adapter per modality to ``adapter_dim``, concatenate every token, MLP to ``hidden``.

    Args:
        inputs: modality -> (n_tokens, token_dim) of each encoder's output.
    """

    def __init__(self, inputs: dict[str, tuple[int, int]], adapter_dim: int = 128, hidden: int = 128,
                 dropout: float = 0.1, **_: object):
        super().__init__()
        self.order = sorted(inputs)
        self.adapters = nn.ModuleDict({m: nn.Linear(inputs[m][1], adapter_dim) for m in self.order})
        width = adapter_dim * sum(inputs[m][0] for m in self.order)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(), nn.Dropout(dropout),
        )
        self.out_dim = hidden

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.adapters[m](tokens[m]).flatten(1) for m in self.order]  # (B, n_m * A) each
        return self.mlp(torch.cat(parts, dim=1))  # (B, hidden)

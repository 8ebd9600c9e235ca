"""LF-Transformer late fusion (SPEC section 3): one token per encoder output plus a learnable CLS
token through a small pre-norm transformer (3 blocks, 8 heads); the head reads the CLS token."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..registry import FUSIONS
from .base import FusionOutput, LateFusion, pre_norm_transformer, shapes


@FUSIONS.register("transformer")
class TransformerFusion(LateFusion):
    """Pooled tokens adapted to ``adapter_dim`` (plus a learned modality embedding each), a CLS
    token in front, ``n_blocks`` pre-norm blocks of ``n_heads`` heads; output: the CLS token."""

    config_keys = ("adapter_dim", "dropout", "n_blocks", "n_heads")

    def __init__(self, encoders: Mapping[str, nn.Module], adapter_dim: int = 128, dropout: float = 0.1,
                 n_blocks: int = 3, n_heads: int = 8, **_: object):
        super().__init__()
        inputs = shapes(encoders)
        self.order = sorted(inputs)
        self.adapters = nn.ModuleDict({m: nn.Linear(inputs[m][1], adapter_dim) for m in self.order})
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.zeros(adapter_dim)) for m in self.order})
        self.cls = nn.Parameter(torch.randn(1, 1, adapter_dim) * adapter_dim ** -0.5)
        self.blocks = pre_norm_transformer(adapter_dim, n_blocks, n_heads, dropout)
        self.out_dim = adapter_dim

    def combine(self, tokens: dict[str, torch.Tensor]) -> FusionOutput:
        adapted = {m: self.adapters[m](tokens[m]) + self.modality_embed[m] for m in self.order}
        first = next(iter(adapted.values()))
        x = torch.cat([self.cls.expand(len(first), -1, -1).to(first.dtype), *adapted.values()], dim=1)
        return FusionOutput(self.blocks(x)[:, 0], {m: a.mean(1) for m, a in adapted.items()})

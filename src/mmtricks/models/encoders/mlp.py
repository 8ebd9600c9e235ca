"""Plain MLP over scaled numbers and category embeddings (no sequence: its pooled token stands in)."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import ENCODERS
from .base import Encoder


@ENCODERS.register("mlp")
class TabularMLP(Encoder):
    modality = "tabular"

    def __init__(self, n_num: int, cardinalities: list[int], mlp_hidden: int = 128,
                 ffn_dropout: float = 0.1, **_: object):
        super().__init__()
        self._spec = dict(n_num=n_num, cardinalities=list(cardinalities), mlp_hidden=mlp_hidden,
                          ffn_dropout=ffn_dropout)
        emb_dim = 16
        self.embeds = nn.ModuleList(nn.Embedding(c, emb_dim) for c in cardinalities)
        width = n_num * 2 + emb_dim * len(cardinalities)  # numbers and their missing flags
        self.net = nn.Sequential(
            nn.Linear(width, mlp_hidden), nn.LayerNorm(mlp_hidden), nn.GELU(), nn.Dropout(ffn_dropout),
            nn.Linear(mlp_hidden, mlp_hidden), nn.LayerNorm(mlp_hidden), nn.GELU(),
        )
        self.out_dim = mlp_hidden

    def pooled(self, batch: dict) -> torch.Tensor:
        parts = [batch["num"], batch["num_missing"].float()]
        parts += [emb(batch["cat"][:, j]) for j, emb in enumerate(self.embeds)]
        return self.net(torch.cat(parts, dim=1)).unsqueeze(1)  # (B, 1, hidden)

    def mix_points(self) -> list[nn.Module]:
        return [self.net]

    def spec(self) -> dict:
        return dict(self._spec)

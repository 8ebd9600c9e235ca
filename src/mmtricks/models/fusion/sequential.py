"""LF-SF sequential fusion (SPEC section 3): the encoders run one after another, each carrying a state.

A learnable state token starts the chain. Each encoder in ``order`` gets the current state
in front of its token sequence; its output at that position is the next state, so every
encoder sees a summary of those before it. Transformer encoders (``accepts_prefix``: text,
FT-Transformer) take the state before their own layers; encoders without that (a CNN, the
tabular MLP) give their sequence to one pre-norm block of this fusion together with the
state. The last state goes to the head.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..registry import FUSIONS
from .base import Fusion, FusionOutput, batch_rows, pre_norm_transformer

DEFAULT_ORDER = ("tabular", "text", "image")


@FUSIONS.register("sequential")
class SequentialFusion(Fusion):
    """See the module doc. ``order``: modalities in the order they run (the encoders present;
    any not named run last, alphabetically)."""

    config_keys = ("adapter_dim", "dropout", "n_heads", "order")

    def __init__(self, encoders: Mapping[str, nn.Module], adapter_dim: int = 128, dropout: float = 0.1,
                 n_heads: int = 8, order: Sequence[str] = DEFAULT_ORDER, **_: object):
        super().__init__()
        order = [order] if isinstance(order, str) else list(order)
        self.order = [m for m in order if m in encoders] + sorted(m for m in encoders if m not in order)
        self.state = nn.Parameter(torch.randn(1, 1, adapter_dim) * adapter_dim ** -0.5)
        prefixed = {m for m in self.order if getattr(encoders[m], "accepts_prefix", False)}
        self.prefixed = sorted(prefixed)
        # state -> an encoder's token width, and its output at the state's place -> the next state
        self.into = nn.ModuleDict({m: nn.Linear(adapter_dim, encoders[m].seq_dim) for m in self.prefixed})
        self.out = nn.ModuleDict({m: nn.Linear(encoders[m].seq_dim, adapter_dim) for m in self.prefixed})
        mixed = [m for m in self.order if m not in prefixed]
        self.mixers = nn.ModuleDict({m: pre_norm_transformer(adapter_dim, 1, n_heads, dropout) for m in mixed})
        self.tokens_in = nn.ModuleDict({m: nn.Linear(encoders[m].seq_dim, adapter_dim) for m in mixed})
        self.norm = nn.LayerNorm(adapter_dim)
        self.out_dim = adapter_dim

    def forward(self, encoders: nn.ModuleDict, batch: dict) -> FusionOutput:
        state = self.state.expand(batch_rows(batch), -1, -1)  # (B, 1, A)
        modality = {}
        for m in self.order:
            if m in self.into:
                out = encoders[m].encode(batch, sequence=True, prefix=self.into[m](state))
                state = self.out[m](out.sequence[:, :1])
            else:
                out = encoders[m].encode(batch, sequence=True)
                x = torch.cat([state, self.tokens_in[m](out.sequence)], dim=1)
                pad = torch.cat([torch.zeros_like(out.mask[:, :1]), ~out.mask], dim=1)
                state = self.mixers[m](x, src_key_padding_mask=pad)[:, :1]
            modality[m] = state[:, 0]
        return FusionOutput(self.norm(state[:, 0]), modality)

"""What every fusion provides: the encoders and a batch in, one fused vector per row out.

A fusion owns the order in which encoders run. Late fusions (:class:`LateFusion`) let each
encoder pool its own input and combine the pooled tokens; the others call the encoders
themselves: sequential fusion chains their sequences through a state token, early fusion
takes only their embedding layers, the LLM fusion all their tokens. The constructor gets
the encoders to read their shapes from (``out_dim``, ``n_tokens``, ``seq_dim``,
``embed_dim``, ``accepts_prefix``) and must not keep them: they belong to the network.

Every fusion returns :class:`FusionOutput`; its per-modality features (one vector per
modality and row, after that modality's adapter) let a loss work with any fusion
(cross-modal alignment).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import torch
from torch import nn


@dataclass
class FusionOutput:
    """features: (B, out_dim) for the head; modality: modality -> (B, width) per-modality features."""

    features: torch.Tensor
    modality: dict[str, torch.Tensor] = field(default_factory=dict)


def shapes(encoders: Mapping[str, nn.Module]) -> dict[str, tuple[int, int]]:
    """modality -> (pooled tokens per row, token width) of each encoder."""
    return {m: (int(getattr(enc, "n_tokens", 1)), int(enc.out_dim)) for m, enc in encoders.items()}


class Fusion(nn.Module):
    """Base class; ``out_dim`` is the width of :attr:`FusionOutput.features`.

    ``config_keys``: the ``fusion.*`` config keys its constructor takes (the network passes
    only those, and saves them in its spec).
    """

    out_dim: int
    config_keys: tuple = ("adapter_dim", "dropout")
    runs_encoder_layers: bool = True  # False: only the encoders' embedding layers run (early fusion)

    def spec(self) -> Optional[dict]:
        """Constructor kwargs to save beyond the config's (e.g. a pretrained part's architecture)."""
        return None

    def forward(self, encoders: nn.ModuleDict, batch: dict) -> FusionOutput:
        raise NotImplementedError


class LateFusion(Fusion):
    """Each encoder pools its own input; :meth:`combine` fuses the pooled tokens."""

    def forward(self, encoders: nn.ModuleDict, batch: dict) -> FusionOutput:
        return self.combine({m: enc(batch) for m, enc in encoders.items()})  # modality -> (B, T, D)

    def combine(self, tokens: dict[str, torch.Tensor]) -> FusionOutput:
        raise NotImplementedError


class TokenAdapters(nn.Module):
    """One linear map per modality to a common width (the LF adapters), over any token layout."""

    def __init__(self, widths: Mapping[str, int], dim: int):
        super().__init__()
        self.order = sorted(widths)
        self.adapters = nn.ModuleDict({m: nn.Linear(widths[m], dim) for m in self.order})

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.adapters[m](tokens[m]) for m in self.order}


def fit_heads(dim: int, wanted: int) -> int:
    """``wanted`` attention heads, or the largest count below it that divides ``dim``."""
    return next(h for h in range(max(1, min(wanted, dim)), 0, -1) if dim % h == 0)


def pre_norm_transformer(dim: int, n_blocks: int, n_heads: int, dropout: float) -> nn.TransformerEncoder:
    """A small pre-norm transformer (GELU, feed-forward 2x the width), batch first; ``n_heads`` is
    lowered to a divisor of ``dim`` where it is not one."""
    layer = nn.TransformerEncoderLayer(dim, fit_heads(dim, n_heads), dim_feedforward=2 * dim, dropout=dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, n_blocks, norm=nn.LayerNorm(dim), enable_nested_tensor=False)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens: (B, L, D), (B, L) -> (B, D)."""
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)


def batch_rows(batch: dict) -> int:
    """Rows in a batch (the first tensor's length)."""
    return len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))

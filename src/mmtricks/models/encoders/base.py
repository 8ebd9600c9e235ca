"""What every encoder provides: pooled tokens, and on request a token sequence or embedding-layer tokens.

The contract (``tests/test_fusions.py`` loops over every registered encoder):

* ``forward(batch)`` -> pooled tokens ``(B, n_tokens, out_dim)``: one per image column, one
  for all text columns, one for the tabular columns. Late fusions use only these.
* ``encode(batch, sequence=True, prefix=None)`` -> :class:`EncoderOutput` with the same
  pooled tokens plus the token sequence ``(B, L, seq_dim)`` and its mask (text tokens,
  image feature-map cells, tabular feature tokens; an encoder without a sequence gives its
  pooled token as a sequence of one). ``prefix`` ``(B, P, seq_dim)``: tokens put in front
  of the sequence before the encoder's own layers (sequential fusion's state token), only
  where ``accepts_prefix`` is True; their outputs are the first P positions of the sequence.
* ``embed(batch)`` -> :class:`EncoderOutput` with only the embedding layer's tokens
  ``(B, L, embed_dim)`` (early fusion): word embeddings, the first stage of an image
  backbone pooled to a small grid, the tabular feature tokenizer; ``pooled`` is None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass
class EncoderOutput:
    """One encoder's output for one batch.

    Attributes:
        pooled: (B, n_tokens, out_dim), or None from :meth:`Encoder.embed`.
        sequence: (B, L, width) tokens, or None when they were not asked for.
        mask: (B, L) bool, True for a real token (text padding is False).
    """

    pooled: Optional[torch.Tensor]
    sequence: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None


def full_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Every token real: a (B, L) True mask for (B, L, D) tokens."""
    return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def with_prefix(prefix: Optional[torch.Tensor], tokens: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``prefix`` (B, P, D) in front of ``tokens`` (B, L, D); the mask grows with True for it."""
    mask = full_mask(tokens) if mask is None else mask.bool()
    if prefix is None:
        return tokens, mask
    return torch.cat([prefix.to(tokens.dtype), tokens], dim=1), torch.cat([full_mask(prefix), mask], dim=1)


class Encoder(nn.Module):
    """Base class of modality encoders.

    Attributes:
        modality: 'tabular', 'text' or 'image'.
        out_dim: width of each pooled token.
        seq_dim: width of the sequence tokens (``out_dim`` unless an encoder says otherwise).
        embed_dim: width of the embedding-layer tokens of :meth:`embed`.
        n_tokens: pooled tokens per row.
        accepts_prefix: :meth:`encode` takes a ``prefix`` (transformer encoders).
        pretrained_backbone: True when the weights come from pretraining (its lr is
            ``optim.lr``; parts trained from scratch get ``lr * head_lr_mult``).
    """

    modality: str = ""
    pretrained_backbone: bool = False
    accepts_prefix: bool = False
    n_tokens: int = 1

    @property
    def seq_dim(self) -> int:
        return self.out_dim

    @property
    def embed_dim(self) -> int:
        return self.out_dim

    def forward(self, batch: dict) -> torch.Tensor:  # (B, n_tokens, out_dim)
        return self.encode(batch).pooled

    def encode(self, batch: dict, sequence: bool = False, prefix: Optional[torch.Tensor] = None) -> EncoderOutput:
        """Pooled tokens, and with ``sequence`` the token sequence (see the module doc).

        The default, for encoders without a sequence: the pooled tokens are the sequence.
        """
        if prefix is not None and not self.accepts_prefix:
            raise TypeError(f"encoder '{self.registry_name}' takes no prefix tokens (accepts_prefix is False)")
        pooled = self.pooled(batch)
        return EncoderOutput(pooled, pooled if sequence else None, full_mask(pooled) if sequence else None)

    def pooled(self, batch: dict) -> torch.Tensor:
        """(B, n_tokens, out_dim); encoders that override :meth:`encode` need not define it."""
        raise NotImplementedError

    def embed(self, batch: dict) -> EncoderOutput:
        """Embedding-layer tokens only; the default is the encoder's sequence (no layers to skip)."""
        out = self.encode(batch, sequence=True)
        return EncoderOutput(None, out.sequence, out.mask)

    def mix_points(self) -> list[nn.Module]:
        """Inner modules whose outputs feature-level tricks may change (manifold mixup's layers):
        the blocks of the longest ModuleList (transformer layers, CNN stages) by default."""
        return longest_blocks(self)

    def depth_groups(self) -> list[list[nn.Parameter]]:
        """Parameters by depth for layer-wise lr decay: [closest to the head, ..., input side].

        The default is one group (no layer structure known).
        """
        return [[p for p in self.parameters() if p.requires_grad]]

    def spec(self) -> dict:
        """JSON-able kwargs that rebuild this encoder (random init) for loading."""
        raise NotImplementedError


def longest_blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks of ``module``'s longest ModuleList or Sequential (its layers or stages), or []."""
    for kind in (nn.ModuleList, nn.Sequential):
        lists = [m for m in module.modules() if isinstance(m, kind) and len(m) > 1]
        if lists:
            return list(max(lists, key=len))
    return []

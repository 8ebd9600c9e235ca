"""FT-Transformer (Gorishniy et al. 2021): one token per feature plus CLS, transformer blocks."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import ENCODERS
from .base import Encoder, EncoderOutput, full_mask, with_prefix


class FeatureTokenizer(nn.Module):
    """Numbers: x_j * w_j + b_j. Categories: embedding of the level + b_j.

    With ``learnable_missing``, a missing number's token is a trainable vector m_j
    (per feature) instead of the token of the imputed mean. Index 0 of each category
    (missing or unseen) always has its own trainable embedding.
    """

    def __init__(self, n_num: int, cardinalities: list[int], dim: int, learnable_missing: bool = False):
        super().__init__()
        self.n_num = n_num
        self.num_missing_embed = nn.Parameter(torch.randn(n_num, dim) * dim ** -0.5) if learnable_missing else None
        self.num_weight = nn.Parameter(torch.empty(n_num, dim))
        self.num_bias = nn.Parameter(torch.empty(n_num, dim))
        self.cat_embed = nn.Embedding(max(1, sum(cardinalities)), dim)
        offsets = torch.tensor([0] + list(cardinalities[:-1]), dtype=torch.long).cumsum(0)
        self.register_buffer("cat_offsets", offsets if cardinalities else torch.zeros(0, dtype=torch.long),
                             persistent=False)
        self.cat_bias = nn.Parameter(torch.empty(len(cardinalities), dim))
        for p in (self.num_weight, self.num_bias, self.cat_bias):
            nn.init.normal_(p, std=dim ** -0.5)

    def forward(self, num: torch.Tensor, cat: torch.Tensor, num_missing: torch.Tensor) -> torch.Tensor:
        tokens = []
        if self.n_num:
            x = num.unsqueeze(-1) * self.num_weight + self.num_bias  # (B, n_num, D)
            if self.num_missing_embed is not None:
                x = torch.where(num_missing.unsqueeze(-1), self.num_missing_embed, x)
            tokens.append(x)
        if cat.shape[1]:
            tokens.append(self.cat_embed(cat + self.cat_offsets) + self.cat_bias)  # (B, n_cat, D)
        return torch.cat(tokens, dim=1)


@ENCODERS.register("ft_transformer")
class FTTransformer(Encoder):
    modality = "tabular"

    def __init__(self, n_num: int, cardinalities: list[int], token_dim: int = 192, n_blocks: int = 3,
                 n_heads: int = 8, attention_dropout: float = 0.2, ffn_dropout: float = 0.1,
                 learnable_missing: bool = False, **_: object):
        super().__init__()
        self._spec = dict(n_num=n_num, cardinalities=list(cardinalities), token_dim=token_dim,
                          n_blocks=n_blocks, n_heads=n_heads, attention_dropout=attention_dropout,
                          ffn_dropout=ffn_dropout, learnable_missing=learnable_missing)
        self.out_dim = token_dim
        self.tokenizer = FeatureTokenizer(n_num, list(cardinalities), token_dim, learnable_missing)
        self.cls = nn.Parameter(torch.randn(1, 1, token_dim) * token_dim ** -0.5)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                token_dim, n_heads, dim_feedforward=token_dim * 4 // 3 * 2, dropout=ffn_dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            for _ in range(n_blocks)
        )
        for block in self.blocks:
            block.self_attn.dropout = attention_dropout
        self.norm = nn.LayerNorm(token_dim)

    accepts_prefix = True

    def encode(self, batch: dict, sequence: bool = False, prefix: Optional[torch.Tensor] = None) -> EncoderOutput:
        """Pooled: the CLS token (B, 1, D). Sequence: every position after the blocks (prefix, CLS,
        one per feature), normalised."""
        x = self.tokenizer(batch["num"], batch["cat"], batch["num_missing"])  # (B, n_features, D)
        x, _ = with_prefix(prefix, torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1))
        for block in self.blocks:
            x = block(x)
        p = 0 if prefix is None else prefix.shape[1]
        if not sequence:
            return EncoderOutput(self.norm(x[:, p:p + 1]))
        x = self.norm(x)
        return EncoderOutput(x[:, p:p + 1], x, full_mask(x))

    def embed(self, batch: dict) -> EncoderOutput:
        """The feature tokenizer's tokens, one per feature (B, n_features, D)."""
        x = self.tokenizer(batch["num"], batch["cat"], batch["num_missing"])
        return EncoderOutput(None, x, full_mask(x))

    def mix_points(self) -> list[nn.Module]:
        return list(self.blocks)

    def depth_groups(self) -> list[list[nn.Parameter]]:
        # The final norm sits with the last block; the tokenizer and CLS are the input side.
        groups = [list(block.parameters()) for block in reversed(self.blocks)]
        groups[0] += list(self.norm.parameters())
        groups.append(list(self.tokenizer.parameters()) + [self.cls])
        return groups

    def spec(self) -> dict:
        return dict(self._spec)

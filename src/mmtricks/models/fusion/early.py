"""Early fusion (SPEC section 3): only the encoders' embedding layers make tokens; one shared
transformer reads them all.

Each encoder's :meth:`~mmtricks.models.encoders.base.Encoder.embed` tokens (word embeddings,
an image backbone's first stage pooled to a small grid, the tabular feature tokens) are
projected to a common width, given a modality embedding, and concatenated behind a CLS
token. The shared transformer is a fresh pre-norm transformer (``n_blocks`` blocks,
``n_heads`` heads, learned positions for up to ``max_tokens`` tokens) by default, or the
layers of a pretrained Hugging Face text model named by ``backbone`` (zoo name, hub id or
folder: its own position embeddings and width). The head reads the CLS token. The encoders'
layers above their embeddings are not used; their weights stay as loaded.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ...errors import ConfigError
from ..registry import FUSIONS, create_encoder
from .base import Fusion, FusionOutput, masked_mean, pre_norm_transformer


@FUSIONS.register("early")
class EarlyFusion(Fusion):
    """See the module doc; ``backbone_spec`` is how a saved model rebuilds a pretrained backbone."""

    config_keys = ("adapter_dim", "dropout", "n_blocks", "n_heads", "backbone", "max_tokens")
    runs_encoder_layers = False

    def __init__(self, encoders: Mapping[str, nn.Module], adapter_dim: int = 128, dropout: float = 0.1,
                 n_blocks: int = 3, n_heads: int = 8, backbone: Optional[str] = None, max_tokens: int = 1024,
                 backbone_spec: Optional[dict] = None, **_: object):
        super().__init__()
        self.order = sorted(encoders)
        self.shared = None
        if backbone_spec is not None or backbone:
            kwargs = backbone_spec if backbone_spec is not None else dict(backbone=backbone, pretrained=True)
            self.shared = create_encoder("hf_text", **kwargs)  # its transformer only: fed embeddings
            width = self.shared.out_dim
            self.max_tokens = int(getattr(self.shared.model.config, "max_position_embeddings", max_tokens))
            self.position = None
        else:
            width = adapter_dim
            self.max_tokens = int(max_tokens)
            self.position = nn.Parameter(torch.zeros(1, self.max_tokens, width))
            self.blocks = pre_norm_transformer(width, n_blocks, n_heads, dropout)
        self.project = nn.ModuleDict({m: nn.Linear(encoders[m].embed_dim, width) for m in self.order})
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.zeros(width)) for m in self.order})
        self.cls = nn.Parameter(torch.randn(1, 1, width) * width ** -0.5)
        self.out_dim = width

    def spec(self) -> Optional[dict]:
        """Rebuild kwargs when a pretrained backbone is in use (its architecture, no weights)."""
        return None if self.shared is None else {"backbone_spec": self.shared.spec()}

    def forward(self, encoders: nn.ModuleDict, batch: dict) -> FusionOutput:
        parts, masks, spans = [], [], {}
        start = 1
        for m in self.order:
            out = encoders[m].embed(batch)
            parts.append(self.project[m](out.sequence) + self.modality_embed[m])
            masks.append(out.mask)
            spans[m] = (start, start + out.sequence.shape[1])
            start = spans[m][1]
        first = parts[0]
        x = torch.cat([self.cls.expand(len(first), -1, -1).to(first.dtype), *parts], dim=1)
        mask = torch.cat([torch.ones_like(masks[0][:, :1]), *masks], dim=1)
        if x.shape[1] > self.max_tokens:
            raise ConfigError(f"early fusion got {x.shape[1]} tokens a row, more than its {self.max_tokens} "
                              "positions; lower data.text_max_length or data.image_size, or raise "
                              "fusion.max_tokens (not with fusion.backbone, whose positions are fixed).")
        if self.shared is None:
            y = self.blocks(x + self.position[:, :x.shape[1]], src_key_padding_mask=~mask)
        else:
            y = self.shared.model(inputs_embeds=x, attention_mask=mask.long()).last_hidden_state
        modality = {m: masked_mean(y[:, a:b], mask[:, a:b]) for m, (a, b) in spans.items()}
        return FusionOutput(y[:, 0], modality)

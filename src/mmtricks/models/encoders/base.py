"""What every encoder provides."""
from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Base class of modality encoders.

    Attributes:
        modality: 'tabular', 'text' or 'image'.
        out_dim: width of each output token.
        pretrained_backbone: True when the weights come from pretraining (its lr is
            ``optim.lr``; parts trained from scratch get ``lr * head_lr_mult``).
    """

    modality: str = ""
    pretrained_backbone: bool = False

    def forward(self, batch: dict) -> torch.Tensor:  # (B, n_tokens, out_dim)
        raise NotImplementedError

    def depth_groups(self) -> list[list[nn.Parameter]]:
        """Parameters by depth for layer-wise lr decay: [closest to the head, ..., input side].

        The default is one group (no layer structure known).
        """
        return [[p for p in self.parameters() if p.requires_grad]]

    def spec(self) -> dict:
        """JSON-able kwargs that rebuild this encoder (random init) for loading."""
        raise NotImplementedError

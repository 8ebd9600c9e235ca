"""timm image encoder: pooled features before the classifier, one token per image column."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import ENCODERS
from .base import Encoder


@ENCODERS.register("timm_image")
class TimmImageEncoder(Encoder):
    modality = "image"

    def __init__(self, backbone: str = "efficientnet-lite0", pretrained: bool = True,
                 arch: Optional[str] = None, n_tokens: int = 1, learnable_missing: bool = False, **_: object):
        super().__init__()
        from ...zoo import create_image_backbone

        self.backbone_name = backbone
        self.n_tokens = int(n_tokens)  # one token per image column
        if arch is not None:  # rebuilding a saved model: weights are loaded afterwards
            import timm

            from ...errors import BackboneError

            # only timm's own registered architectures (no hub or local-dir names), nothing fetched
            if not isinstance(arch, str) or ":" in arch or "." in arch or not timm.is_model(arch):
                raise BackboneError(f"Unknown timm architecture {arch!r} in a saved model.")
            self.model = timm.create_model(arch, pretrained=False, num_classes=0)
        else:
            self.model = create_image_backbone(backbone, pretrained=pretrained)
        self.arch = arch or self.model.pretrained_cfg.get("architecture") or backbone
        self.pretrained_backbone = bool(pretrained)
        self.out_dim = int(self.model.num_features)
        # A missing image: a trainable stand-in instead of the features of a zero tensor.
        self.missing_embed = nn.Parameter(torch.zeros(self.out_dim)) if learnable_missing else None

    def input_config(self) -> dict:
        """Preprocessing the backbone expects: size, mean, std, interpolation, crop_pct."""
        from ...zoo import image_data_config

        cfg = image_data_config(self.model)
        return dict(size=int(cfg["input_size"][-1]), mean=list(cfg["mean"]), std=list(cfg["std"]),
                    interpolation=str(cfg.get("interpolation", "bicubic")),
                    crop_pct=float(cfg.get("crop_pct", 1.0)))

    def forward(self, batch: dict) -> torch.Tensor:
        images = batch["image"]  # (B, n_columns, 3, H, W)
        b, n = images.shape[:2]
        missing = batch.get("image_missing")
        if self.training and missing is not None and bool(missing.all()):
            # No real image in the batch (e.g. modality dropout on a small batch): batch norm
            # would divide by a zero variance and the gradients explode. The stand-ins carry
            # no information, so take their inference-time features, without gradients.
            self.model.eval()
            with torch.no_grad():
                feats = self.model(images.flatten(0, 1)).view(b, n, -1)
            self.model.train()
        else:
            feats = self.model(images.flatten(0, 1)).view(b, n, -1)  # (B, n, D)
        if self.missing_embed is not None and "image_missing" in batch:
            feats = torch.where(batch["image_missing"].unsqueeze(-1), self.missing_embed.to(feats.dtype), feats)
        return feats

    def depth_groups(self) -> list[list[nn.Parameter]]:
        """timm's own layer grouping (stem .. head), reversed so the head side comes first."""
        from timm.models import group_parameters

        try:
            matcher = self.model.group_matcher(coarse=False)
        except (AttributeError, NotImplementedError):
            return super().depth_groups()
        by_group = group_parameters(self.model, matcher)
        params = dict(self.model.named_parameters())
        ordered = [by_group[k] for k in sorted(by_group)]
        groups = [[params[n] for n in names if n in params] for names in reversed(ordered)]
        if self.missing_embed is not None:
            groups[0].append(self.missing_embed)
        return groups

    def spec(self) -> dict:
        return dict(backbone=self.backbone_name, arch=self.arch, n_tokens=self.n_tokens,
                    learnable_missing=self.missing_embed is not None)

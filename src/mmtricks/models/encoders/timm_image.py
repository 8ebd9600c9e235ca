"""timm image encoder: pooled features before the classifier, one token per image column."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import ENCODERS
from .base import Encoder, EncoderOutput, full_mask


@ENCODERS.register("timm_image")
class TimmImageEncoder(Encoder):
    modality = "image"

    def __init__(self, backbone: str = "efficientnet-lite0", pretrained: bool = True,
                 arch: Optional[str] = None, n_tokens: int = 1, learnable_missing: bool = False, embed_grid: int = 7,
                 **_: object):
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
        self.embed_grid = int(embed_grid)  # embed(): the first stage pooled to this many cells a side

    def input_config(self) -> dict:
        """Preprocessing the backbone expects: size, mean, std, interpolation, crop_pct."""
        from ...zoo import image_data_config

        cfg = image_data_config(self.model)
        return dict(size=int(cfg["input_size"][-1]), mean=list(cfg["mean"]), std=list(cfg["std"]),
                    interpolation=str(cfg.get("interpolation", "bicubic")),
                    crop_pct=float(cfg.get("crop_pct", 1.0)))

    def _run(self, fn, images: torch.Tensor, missing: Optional[torch.Tensor]) -> torch.Tensor:
        if self.training and missing is not None and bool(missing.all()):
            # No real image in the batch (e.g. modality dropout on a small batch): batch norm
            # would divide by a zero variance and the gradients explode. The stand-ins carry
            # no information, so take their inference-time features, without gradients.
            self.model.eval()
            with torch.no_grad():
                out = fn(images)
            self.model.train()
            return out
        return fn(images)

    def _stand_in(self, tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """A missing image's tokens (B, n, ..., D) become the trainable stand-in, with learnable_missing."""
        if self.missing_embed is None or "image_missing" not in batch:
            return tokens
        missing = batch["image_missing"].view(*batch["image_missing"].shape, *([1] * (tokens.dim() - 2)))
        return torch.where(missing, self.missing_embed.to(tokens.dtype), tokens)

    @staticmethod
    def _as_tokens(fmap: torch.Tensor) -> torch.Tensor:
        """A CNN map (N, C, h, w) as (N, h*w, C); a transformer's (N, L, C) as it is."""
        return fmap.flatten(2).transpose(1, 2) if fmap.dim() == 4 else fmap

    def encode(self, batch: dict, sequence: bool = False, prefix: Optional[torch.Tensor] = None) -> EncoderOutput:
        """Pooled: the backbone's pooled features, one token per image column (B, n, D). Sequence:
        the last feature map's cells of every column in turn (B, n * h * w, D)."""
        if prefix is not None:
            return super().encode(batch, sequence, prefix)  # raises: a CNN takes no prefix
        images = batch["image"]  # (B, n_columns, 3, H, W)
        b, n = images.shape[:2]
        fmap = self._run(self.model.forward_features, images.flatten(0, 1), batch.get("image_missing"))
        pooled = self._stand_in(self.model.forward_head(fmap, pre_logits=True).view(b, n, -1), batch)
        if not sequence:
            return EncoderOutput(pooled)
        cells = self._as_tokens(fmap)
        cells = self._stand_in(cells.reshape(b, n, *cells.shape[1:]), batch).flatten(1, 2)
        return EncoderOutput(pooled, cells, full_mask(cells))

    @property
    def embed_dim(self) -> int:
        return int(self.model.feature_info[0]["num_chs"]) if hasattr(self.model, "feature_info") else self.out_dim

    def embed(self, batch: dict) -> EncoderOutput:
        """The first stage's feature map, average-pooled to ``embed_grid`` x ``embed_grid`` cells per
        image column: (B, n * grid * grid, embed_dim)."""
        images = batch["image"]
        b, n = images.shape[:2]

        def first_stage(x):
            (fmap,) = self.model.forward_intermediates(x, indices=[0], intermediates_only=True)
            return torch.nn.functional.adaptive_avg_pool2d(fmap, self.embed_grid)

        cells = self._as_tokens(self._run(first_stage, images.flatten(0, 1), batch.get("image_missing")))
        cells = cells.reshape(b, n * cells.shape[1], cells.shape[2])
        return EncoderOutput(None, cells, full_mask(cells))

    def mix_points(self) -> list[nn.Module]:
        """The backbone's stages (timm's ``blocks``), else its longest block list."""
        blocks = getattr(self.model, "blocks", None)
        return list(blocks) if isinstance(blocks, nn.Sequential) and len(blocks) else super().mix_points()

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
                    learnable_missing=self.missing_embed is not None, embed_grid=self.embed_grid)

"""CLIP text and image towers (Hugging Face ``CLIPModel`` checkpoints): LF-Aligned's encoders.

Both towers load from the same checkpoint (a hub name or a local folder holding a
``CLIPModel``: config.json with ``text_config`` and ``vision_config``, the weights, the
tokenizer files and preprocessor_config.json), each with its projection, so the pooled
tokens of text and image live in CLIP's shared, aligned space. Tokenisation is the
checkpoint's own tokenizer (at most its ``max_position_embeddings`` tokens); image
preprocessing follows its image processor config (resize, centre crop, mean/std).

Text: the columns are joined as ``<bos> col1 <eos> col2 <eos>``; CLIP's text transformer
is causal, so the pooled token is the last real token's state (the final ``<eos>``, which
sees every column), projected. Image: the vision transformer's pooled CLS state, projected,
one token per image column; sizes other than the checkpoint's interpolate its position
embeddings.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import ENCODERS
from .base import Encoder, EncoderOutput, full_mask
from .hf_text import TextTransformer, load_tokenizer, transformer_depth_groups

WHAT_TO_PROVIDE = (
    "Give text.backbone and image.backbone (the lf_aligned preset sets both) as a Hugging Face hub name "
    "reachable from this machine (e.g. openai/clip-vit-base-patch32) or a local folder with a CLIPModel "
    "checkpoint: config.json (with text_config and vision_config), model.safetensors, the tokenizer files "
    "(vocab.json, merges.txt or tokenizer.json) and preprocessor_config.json (CLIPModel.save_pretrained, "
    "CLIPTokenizer.save_pretrained and CLIPImageProcessor.save_pretrained write them)."
)


def check_checkpoint(backbone: str) -> None:
    """Raise BackboneError, naming what to provide, unless ``backbone``'s CLIP config can be read."""
    from transformers import AutoConfig

    from ...errors import BackboneError

    try:
        config = AutoConfig.from_pretrained(backbone)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"Could not read the CLIP checkpoint '{backbone}': {exc}. {WHAT_TO_PROVIDE}") from exc
    if not hasattr(config, "text_config") or not hasattr(config, "vision_config"):
        raise BackboneError(f"'{backbone}' is a {type(config).__name__}, not a CLIP checkpoint. {WHAT_TO_PROVIDE}")


def _tower(kind: str, backbone: str, pretrained: bool, hf_config: Optional[dict]):
    """The ``kind`` ('text' or 'vision') tower with its projection: from the checkpoint, or from
    ``hf_config`` (a saved model; random weights, loaded afterwards)."""
    import transformers
    from transformers import AutoConfig

    from ...errors import BackboneError

    cls = getattr(transformers, "CLIPTextModelWithProjection" if kind == "text" else "CLIPVisionModelWithProjection")
    if hf_config is not None:
        cfg = dict(hf_config)
        return cls(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    try:
        full = AutoConfig.from_pretrained(backbone)
        config = getattr(full, f"{kind}_config", full)
        if hasattr(full, "projection_dim"):  # the CLIPConfig's projection width holds for both towers
            config.projection_dim = full.projection_dim
        if not pretrained:
            return cls(config)
        return cls.from_pretrained(backbone, config=config)
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(f"Could not load the CLIP {kind} tower of '{backbone}': {exc}. {WHAT_TO_PROVIDE}") from exc


class CLIPTower:
    """Token widths of a CLIP tower: its sequence and embeddings are hidden_size wide, its pooled
    output projection_dim (``out_dim``)."""

    @property
    def seq_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.hidden_size)


@ENCODERS.register("clip_text")
class CLIPTextEncoder(CLIPTower, TextTransformer):

    def __init__(self, backbone: str = "openai/clip-vit-base-patch32", pretrained: bool = True,
                 hf_config: Optional[dict] = None, learnable_missing: bool = False, **_: object):
        super().__init__()
        self.backbone_name = backbone
        self.model = _tower("text", backbone, pretrained, hf_config)
        self.pretrained_backbone = bool(pretrained)
        self.out_dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.max_position_embeddings)
        self.missing_embed = nn.Parameter(torch.zeros(self.out_dim)) if learnable_missing else None

    def tokenizer(self):
        """The checkpoint's own tokenizer."""
        from ...errors import BackboneError

        try:
            return load_tokenizer(self.backbone_name)
        except BackboneError as exc:
            raise BackboneError(f"{exc} {WHAT_TO_PROVIDE}") from exc

    def encode(self, batch: dict, sequence: bool = False, prefix: Optional[torch.Tensor] = None) -> EncoderOutput:
        if prefix is not None:
            return super().encode(batch, sequence, prefix)  # raises: CLIP's causal text tower takes no prefix
        ids, mask = batch["text_ids"], batch["text_mask"]
        hidden = self.model.text_model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
        last = (mask.long().sum(1) - 1).clamp(min=0)  # the final <eos>: it has seen every column
        pooled = self.model.text_projection(hidden[torch.arange(len(ids), device=ids.device), last])
        return self._output(pooled, hidden, mask, batch, sequence)

    def spec(self) -> dict:
        return dict(backbone=self.backbone_name, hf_config=self.model.config.to_dict(),
                    learnable_missing=self.missing_embed is not None)


@ENCODERS.register("clip_image")
class CLIPImageEncoder(CLIPTower, Encoder):
    modality = "image"

    def __init__(self, backbone: str = "openai/clip-vit-base-patch32", pretrained: bool = True,
                 hf_config: Optional[dict] = None, n_tokens: int = 1, learnable_missing: bool = False,
                 processor: Optional[dict] = None, **_: object):
        super().__init__()
        self.backbone_name = backbone
        self.n_tokens = int(n_tokens)  # one token per image column
        self.model = _tower("vision", backbone, pretrained, hf_config)
        self.pretrained_backbone = bool(pretrained)
        self.out_dim = int(self.model.config.projection_dim)
        self.processor = dict(processor) if processor is not None else _processor_config(backbone,
                                                                                        self.model.config.image_size)
        self.missing_embed = nn.Parameter(torch.zeros(self.out_dim)) if learnable_missing else None

    def input_config(self) -> dict:
        """Preprocessing from the checkpoint's image processor: size, mean, std, interpolation, crop_pct."""
        return dict(self.processor)

    def _stand_in(self, tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        if self.missing_embed is None or "image_missing" not in batch:
            return tokens
        return torch.where(batch["image_missing"].unsqueeze(-1), self.missing_embed.to(tokens.dtype), tokens)

    def encode(self, batch: dict, sequence: bool = False, prefix: Optional[torch.Tensor] = None) -> EncoderOutput:
        if prefix is not None:
            return super().encode(batch, sequence, prefix)  # raises
        images = batch["image"]  # (B, n_columns, 3, H, W)
        b, n = images.shape[:2]
        out = self.model.vision_model(pixel_values=images.flatten(0, 1), interpolate_pos_encoding=True)
        pooled = self._stand_in(self.model.visual_projection(out.pooler_output).view(b, n, -1), batch)
        if not sequence:
            return EncoderOutput(pooled)
        cells = out.last_hidden_state.reshape(b, n * out.last_hidden_state.shape[1], -1)
        return EncoderOutput(pooled, cells, full_mask(cells))

    def embed(self, batch: dict) -> EncoderOutput:
        """The patch embeddings (no position embedding: the fusion adds its own), every column in turn."""
        images = batch["image"]
        b, n = images.shape[:2]
        patches = self.model.vision_model.embeddings.patch_embedding(images.flatten(0, 1))  # (N, H, g, g)
        cells = patches.flatten(2).transpose(1, 2)
        cells = cells.reshape(b, n * cells.shape[1], cells.shape[2])
        return EncoderOutput(None, cells, full_mask(cells))

    def depth_groups(self) -> list[list[nn.Parameter]]:
        return transformer_depth_groups(self.model, [self.missing_embed] if self.missing_embed is not None else [])

    def spec(self) -> dict:
        return dict(backbone=self.backbone_name, hf_config=self.model.config.to_dict(), n_tokens=self.n_tokens,
                    learnable_missing=self.missing_embed is not None, processor=self.processor)


def _processor_config(backbone: str, native: int) -> dict:
    """The checkpoint's CLIPImageProcessor settings as an ImageProcessor config; CLIP's own
    defaults (the processor class's) when the checkpoint has no preprocessor_config.json."""
    from transformers import CLIPImageProcessor

    try:
        proc = CLIPImageProcessor.from_pretrained(backbone)
    except (OSError, ValueError):
        proc = CLIPImageProcessor(size={"shortest_edge": native}, crop_size={"height": native, "width": native})

    def side(value, *keys):
        if isinstance(value, int):
            return value
        getter = value.get if isinstance(value, dict) else lambda k: getattr(value, k, None)
        return next(int(getter(k)) for k in keys if getter(k))

    crop = side(proc.crop_size, "height", "shortest_edge") if proc.do_center_crop else None
    short = side(proc.size, "shortest_edge", "height")
    interpolation = {2: "bilinear", 3: "bicubic", 0: "nearest"}.get(int(getattr(proc.resample, "value", proc.resample)),
                                                                     "bicubic")
    size = crop or short
    return dict(size=int(size), mean=[float(m) for m in proc.image_mean], std=[float(s) for s in proc.image_std],
                interpolation=interpolation, crop_pct=float(size) / float(short))

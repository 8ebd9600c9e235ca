"""Hugging Face transformer text encoder (zoo name, hub id or local folder), CLS or mean pooled."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import ENCODERS
from .base import Encoder, EncoderOutput, with_prefix

# Small random transformer for tests: the backbone's tokenizer, a tiny body.
TINY_OVERRIDES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    from ...errors import BackboneError

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise BackboneError(
            f"Could not load the tokenizer of text backbone '{path}': {exc}. "
            f"Offline, use 'minilm-l6' or a local folder."
        ) from exc


class TextTransformer(Encoder):
    """What Hugging Face text encoders share: the learnable stand-in for a row without text, the
    output with the attention mask, word embeddings as :meth:`embed`, depth groups by block."""

    modality = "text"

    def _output(self, pooled: torch.Tensor, hidden: torch.Tensor, mask: torch.Tensor, batch: dict,
                sequence: bool) -> EncoderOutput:
        if self.missing_embed is not None and "text_missing" in batch:
            pooled = torch.where(batch["text_missing"].unsqueeze(-1), self.missing_embed.to(pooled.dtype), pooled)
        if not sequence:
            return EncoderOutput(pooled.unsqueeze(1))
        return EncoderOutput(pooled.unsqueeze(1), hidden, mask.bool())

    def embed(self, batch: dict) -> EncoderOutput:
        """The word embeddings of the token ids (B, L, H), with the attention mask."""
        return EncoderOutput(None, self.model.get_input_embeddings()(batch["text_ids"]), batch["text_mask"].bool())

    def depth_groups(self) -> list[list[nn.Parameter]]:
        """Transformer blocks from the last to the first, then the embeddings."""
        return transformer_depth_groups(self.model, [self.missing_embed] if self.missing_embed is not None else [])


@ENCODERS.register("hf_text")
class HFTextEncoder(TextTransformer):

    def __init__(self, backbone: str = "minilm-l6", pretrained: bool = True, pooling: str = "mean",
                 tiny: bool = False, trust_remote_code: bool = False, hf_config: Optional[dict] = None,
                 learnable_missing: bool = False, **_: object):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        from ...errors import BackboneError
        from ...zoo import resolve_text_backbone

        self.pooling = pooling
        self.backbone_name = backbone
        self.trust_remote_code = trust_remote_code
        if hf_config is not None:  # rebuilding a saved model: architecture from JSON, weights loaded later
            cfg = dict(hf_config)
            if cfg.get("auto_map") and not trust_remote_code:
                raise BackboneError("This text model needs code from its hub repository (auto_map); "
                                    "set text.trust_remote_code=true only if you trust its source.")
            config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
            self.model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
            self.path = None
        else:
            self.path = resolve_text_backbone(backbone)
            try:
                if pretrained and not tiny:
                    self.model = AutoModel.from_pretrained(self.path, trust_remote_code=trust_remote_code)
                else:
                    config = AutoConfig.from_pretrained(self.path, trust_remote_code=trust_remote_code)
                    if tiny:
                        for key, value in TINY_OVERRIDES.items():
                            setattr(config, key, value)
                    self.model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
            except (OSError, ValueError) as exc:
                raise BackboneError(
                    f"Could not load text backbone '{backbone}': {exc}. "
                    f"Offline, use 'minilm-l6' or a local folder with config.json and weights."
                ) from exc
        self.pretrained_backbone = bool(pretrained and not tiny)
        self.out_dim = int(self.model.config.hidden_size)
        # A row without any text: a trainable stand-in instead of the encoding of an empty string.
        self.missing_embed = nn.Parameter(torch.zeros(self.out_dim)) if learnable_missing else None

    def tokenizer(self):
        """The backbone's own tokenizer (processors are built from it)."""
        return load_tokenizer(self.path, self.trust_remote_code)

    accepts_prefix = True

    def encode(self, batch: dict, sequence: bool = False, prefix: Optional[torch.Tensor] = None) -> EncoderOutput:
        """Pooled: the mean (or CLS) of the last hidden states (B, 1, H). Sequence: the last hidden
        states with the attention mask; a prefix goes in front of the word embeddings."""
        ids, mask = batch["text_ids"], batch["text_mask"]
        if prefix is None:
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
        else:
            embeds, mask = with_prefix(prefix, self.model.get_input_embeddings()(ids), mask)
            hidden = self.model(inputs_embeds=embeds, attention_mask=mask.long()).last_hidden_state
        p = 0 if prefix is None else prefix.shape[1]
        if self.pooling == "cls":
            pooled = hidden[:, p]
        else:
            m = mask[:, p:].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden[:, p:] * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self._output(pooled, hidden, mask, batch, sequence)

    def spec(self) -> dict:
        config = self.model.config.to_dict()
        return dict(backbone=self.backbone_name, pooling=self.pooling, hf_config=config,
                    trust_remote_code=self.trust_remote_code, learnable_missing=self.missing_embed is not None)


def transformer_depth_groups(model: nn.Module, head_side: list) -> list[list[nn.Parameter]]:
    """A Hugging Face transformer's parameters by depth for layer-wise lr decay: its longest
    ModuleList (the blocks) from the last block to the first, then the embeddings; anything
    else (pooler, final norm, projection) and ``head_side`` sit with the last block."""
    blocks = max((m for m in model.modules() if isinstance(m, nn.ModuleList)), key=len, default=None)
    block_of = {}
    if blocks is not None:
        for i, block in enumerate(blocks):
            for p in block.parameters():
                block_of[id(p)] = i
    n = len(blocks) if blocks is not None else 0
    groups: list[list[nn.Parameter]] = [[] for _ in range(n + 1)]
    head_side = list(head_side)
    for name, p in model.named_parameters():
        if id(p) in block_of:
            groups[n - 1 - block_of[id(p)]].append(p)
        elif "embed" in name:
            groups[n].append(p)
        else:
            head_side.append(p)  # pooler / final norm / projection: next to the head
    if groups and head_side:
        groups[0] = head_side + groups[0]
    return [g for g in groups if g]

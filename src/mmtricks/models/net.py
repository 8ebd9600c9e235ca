"""The multimodal network: encoders -> fusion -> head. Built from a schema and a config."""
from __future__ import annotations

from typing import Optional

from torch import nn

from .registry import create_encoder, create_fusion


class MultimodalNet(nn.Module):
    """``forward(batch)`` returns ``{'logits': (B, n_out), 'features': (B, H), 'tokens': {...}}``."""

    def __init__(self, encoders: dict[str, nn.Module], fusion_name: str, fusion_kwargs: dict, n_out: int):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        inputs = {m: (int(getattr(enc, "n_tokens", 1)), enc.out_dim) for m, enc in encoders.items()}
        self.fusion_name = fusion_name
        self.fusion_kwargs = dict(fusion_kwargs)
        self.fusion = create_fusion(fusion_name, inputs=inputs, **fusion_kwargs)
        self.head = nn.Linear(self.fusion.out_dim, n_out)
        self.n_out = n_out

    def forward(self, batch: dict) -> dict:
        tokens = {m: enc(batch) for m, enc in self.encoders.items()}  # modality -> (B, T, D)
        features = self.fusion(tokens)  # (B, H)
        return {"logits": self.head(features), "features": features, "tokens": tokens}

    def spec(self) -> dict:
        """JSON that rebuilds this network's architecture (weights come from safetensors)."""
        return {
            "encoders": {m: {"name": enc.registry_name, "kwargs": enc.spec()} for m, enc in self.encoders.items()},
            "fusion": {"name": self.fusion_name, "kwargs": self.fusion_kwargs},
            "n_out": self.n_out,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> "MultimodalNet":
        encoders = {}
        for modality, item in spec["encoders"].items():
            encoders[modality] = create_encoder(item["name"], **item["kwargs"])
        return cls(encoders, spec["fusion"]["name"], spec["fusion"]["kwargs"], int(spec["n_out"]))


def build_encoders_for(modalities: list[str], cfg, n_image_columns: int = 0) -> dict[str, nn.Module]:
    """Text and image encoders from the config (the tabular one needs fitted processors)."""
    encoders: dict[str, nn.Module] = {}
    if "text" in modalities:
        t = cfg.text
        encoders["text"] = create_encoder("hf_text", backbone=t.backbone, pretrained=t.pretrained,
                                          pooling=t.pooling, tiny=t.tiny, trust_remote_code=t.trust_remote_code,
                                          learnable_missing=t.learnable_missing)
    if "image" in modalities:
        encoders["image"] = create_encoder("timm_image", backbone=cfg.image.backbone,
                                           pretrained=cfg.image.pretrained, n_tokens=n_image_columns,
                                           learnable_missing=cfg.image.learnable_missing)
    return encoders


def build_tabular_encoder(cfg, n_num: int, cardinalities: list[int]) -> Optional[nn.Module]:
    if n_num == 0 and not cardinalities:
        return None
    t = cfg.tabular
    return create_encoder(t.encoder, n_num=n_num, cardinalities=cardinalities, token_dim=t.token_dim,
                          n_blocks=t.n_blocks, n_heads=t.n_heads, attention_dropout=t.attention_dropout,
                          ffn_dropout=t.ffn_dropout, mlp_hidden=t.mlp_hidden, learnable_missing=t.learnable_missing)

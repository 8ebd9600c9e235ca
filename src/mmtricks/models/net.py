"""The multimodal network: encoders -> fusion -> head. Built from a schema and a config."""
from __future__ import annotations

import contextlib
import functools
import sys
import threading
from typing import Iterator, Optional

import torch
from torch import nn

from .registry import create_encoder, create_fusion


class MultimodalNet(nn.Module):
    """``forward(batch)`` returns ``{'logits': (B, n_out), 'features': (B, H), 'modality': {m: (B, d)}}``.

    The fusion (``models/fusion/``, by name from its registry) runs the encoders in its own
    order; ``modality`` holds its per-modality features (alignment losses use them).
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion_name: str, fusion_kwargs: dict, n_out: int):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion_name = fusion_name
        self.fusion_kwargs = dict(fusion_kwargs)
        self.fusion = create_fusion(fusion_name, encoders=dict(encoders), **fusion_kwargs)
        self.head = nn.Linear(self.fusion.out_dim, n_out)
        self.n_out = n_out

    def forward(self, batch: dict) -> dict:
        fused = self.fusion(self.encoders, batch)
        return {"logits": self.head(fused.features), "features": fused.features, "modality": fused.modality}

    def spec(self) -> dict:
        """JSON that rebuilds this network's architecture (weights come from safetensors)."""
        return {
            "encoders": {m: {"name": enc.registry_name, "kwargs": enc.spec()} for m, enc in self.encoders.items()},
            "fusion": {"name": self.fusion_name, "kwargs": {**self.fusion_kwargs, **(self.fusion.spec() or {})}},
            "n_out": self.n_out,
        }

    @classmethod
    def from_spec(cls, spec: dict, init_weights: bool = True) -> "MultimodalNet":
        """Rebuild the architecture; ``init_weights=False`` skips the random initialisation.

        Without it every parameter holds whatever memory it was given: only for a caller that
        loads every weight next with ``strict=True`` (``persist.load_predictor`` does). Nothing
        pretrained is read either way: encoders rebuild from their spec, without the zoo.
        """
        uses_hf = any(item["name"] in HF_ENCODERS for item in spec["encoders"].values()) or any(
            spec["fusion"]["kwargs"].get(key) for key in ("backbone_spec", "llm_config"))
        with contextlib.nullcontext() if init_weights else skip_weight_init(transformers=uses_hf):
            encoders = {}
            for modality, item in spec["encoders"].items():
                encoders[modality] = create_encoder(item["name"], **item["kwargs"])
            return cls(encoders, spec["fusion"]["name"], spec["fusion"]["kwargs"], int(spec["n_out"]))


HF_ENCODERS = ("hf_text", "clip_text", "clip_image")  # encoders built on Hugging Face transformers
_SKIPPING = threading.local()  # .depth > 0 inside skip_weight_init, per thread


def _skipping() -> bool:
    return getattr(_SKIPPING, "depth", 0) > 0


def _guard(original):
    """``original`` unless this thread is inside skip_weight_init (then the tensor, untouched).

    The guard, not a plain no-op, is what goes in the patched places: a module imported
    while they are patched may keep a reference (``from torch.nn.init import normal_``,
    transformers' table of torch init functions); the guard keeps initialising after the block.
    """
    @functools.wraps(original)
    def guarded(*args, **kwargs):
        if _skipping():
            return args[0] if args else kwargs.get("tensor")
        return original(*args, **kwargs)

    guarded.__mmtricks_unguarded__ = original
    return guarded


def _guard_method(original):
    @functools.wraps(original)
    def guarded(self, *args, **kwargs):
        if _skipping():
            return None
        return original(self, *args, **kwargs)

    guarded.__mmtricks_unguarded__ = original
    return guarded


@contextlib.contextmanager
def skip_weight_init(transformers: bool = False) -> Iterator[None]:
    """Build modules without their random initialisation, when every weight is loaded next.

    Guards torch.nn.init's in-place initialisers (and the references to them that torch.nn,
    timm and mmtricks modules imported by name) so that they leave tensors untouched in this
    thread, and with ``transformers=True`` Hugging Face's ``PreTrainedModel`` weight
    initialisation too (weight tying still runs). Buffers computed in constructors (position
    ids...) are untouched. The original functions are back in place afterwards; other threads
    initialise as usual meanwhile.
    """
    if transformers:  # imported first: its table of torch init functions holds the originals
        from transformers.modeling_utils import PreTrainedModel
    init = torch.nn.init
    originals = {name: getattr(init, name) for name in dir(init)
                 if name.endswith("_") and not name.startswith("_") and callable(getattr(init, name))}
    originals = {n: getattr(f, "__mmtricks_unguarded__", f) for n, f in originals.items()}
    guards = {id(f): _guard(f) for f in originals.values()}
    patched: list[tuple[object, str, object]] = []
    try:
        for mod_name, module in list(sys.modules.items()):
            if module is None or not (mod_name == "torch.nn.init" or mod_name.startswith(
                    ("torch.nn.modules", "timm.", "mmtricks."))):
                continue
            for attr, value in list(vars(module).items()):
                if id(value) in guards and callable(value):
                    patched.append((module, attr, value))
                    setattr(module, attr, guards[id(value)])
        if transformers:
            # initialize_weights (transformers 5) / _initialize_weights (4.x) draw the random init;
            # init_weights itself also ties weights, which must still happen.
            for attr in ("initialize_weights", "_initialize_weights"):
                if attr in vars(PreTrainedModel):
                    value = vars(PreTrainedModel)[attr]
                    patched.append((PreTrainedModel, attr, value))
                    setattr(PreTrainedModel, attr, _guard_method(value))
        _SKIPPING.depth = getattr(_SKIPPING, "depth", 0) + 1
        try:
            yield
        finally:
            _SKIPPING.depth -= 1
    finally:
        for owner, attr, value in reversed(patched):
            setattr(owner, attr, value)


def fusion_kwargs(fusion_cfg) -> dict:
    """The ``fusion.*`` settings the configured fusion takes (its ``config_keys``)."""
    from .registry import fusion_class

    kwargs = {k: getattr(fusion_cfg, k) for k in fusion_class(fusion_cfg.name).config_keys}
    if isinstance(kwargs.get("order"), str):
        kwargs["order"] = [m.strip() for m in kwargs["order"].split(",") if m.strip()]
    return kwargs


def build_encoders_for(modalities: list[str], cfg, n_image_columns: int = 0) -> dict[str, nn.Module]:
    """Text and image encoders from the config (the tabular one needs fitted processors)."""
    encoders: dict[str, nn.Module] = {}
    if "text" in modalities:
        t = cfg.text
        encoders["text"] = create_encoder(t.encoder, backbone=t.backbone, pretrained=t.pretrained,
                                          pooling=t.pooling, tiny=t.tiny, trust_remote_code=t.trust_remote_code,
                                          learnable_missing=t.learnable_missing)
    if "image" in modalities:
        encoders["image"] = create_encoder(cfg.image.encoder, backbone=cfg.image.backbone,
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

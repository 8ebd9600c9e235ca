"""Registries of encoders and fusions. Importing this module fills them."""
from __future__ import annotations

from ..registry import Registry

ENCODERS: Registry = Registry("encoder")  # name -> class(modality encoder)
FUSIONS: Registry = Registry("fusion")  # name -> class(fusion module)


def _fill() -> None:
    # Each module registers itself on import; one file per component.
    from .encoders import clip, ft_transformer, hf_text, mlp, timm_image  # noqa: F401
    from .fusion import early, llm, mlp as fusion_mlp, sequential, transformer  # noqa: F401


def create_encoder(name: str, **kwargs):
    _fill()
    return ENCODERS.get(name)(**kwargs)


def fusion_class(name: str):
    _fill()
    return FUSIONS.get(name)


def create_fusion(name: str, **kwargs):
    _fill()
    return FUSIONS.get(name)(**kwargs)


def list_encoders(modality: str | None = None) -> list[str]:
    _fill()
    return [n for n in ENCODERS.names() if modality is None or ENCODERS.get(n).modality == modality]


def list_fusions() -> list[str]:
    _fill()
    return FUSIONS.names()

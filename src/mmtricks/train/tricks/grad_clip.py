"""Gradient clipping by global norm, through Fabric (correct under mixed precision and DDP)."""
from __future__ import annotations

from typing import Optional

import torch


def clip_gradients(fabric, model, optimizer, max_norm: Optional[float]) -> Optional[torch.Tensor]:
    """Clip to ``max_norm``; return the global norm before clipping, or None when off."""
    if max_norm is None:
        return None
    return fabric.clip_gradients(model, optimizer, max_norm=max_norm)

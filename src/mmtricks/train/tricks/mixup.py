"""Manifold Mixup (SPEC section 3, feature-level augmentation): mix hidden features of row pairs.

For each training micro batch: lambda ~ Beta(``tricks.mixup_alpha``, same) (2, 2) and one
permutation of the rows, shared by every modality. With probability 1/2 the fused
features are mixed (the fusion's output: ``lambda * f + (1 - lambda) * f[perm]``, its
per-modality features too); otherwise every encoder mixes the output of one of its layers,
drawn at random among its ``mix_points()`` (its transformer blocks, its CNN stages, the
tabular MLP), so no modality passes the unmixed row on. Fusions that do not run the
encoders' layers (early fusion) always mix at the fusion. The task loss uses the mixed
targets: ``lambda * loss(y) + (1 - lambda) * loss(y[perm])`` for classification (soft
targets), the loss of ``lambda * y + (1 - lambda) * y[perm]`` for regression; sample
weights are mixed alike. Draws come from the hook context's generator: a resumed fit mixes
as the uninterrupted one did.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from .hooks import HOOKS, TrainingHook


def mix(t: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """``lam * t + (1 - lam) * t[perm]`` over rows; a tensor of B * k rows (k image columns
    flattened into the batch) is mixed in blocks of k."""
    k = max(1, t.shape[0] // len(perm))
    idx = perm if k == 1 else (perm[:, None] * k + torch.arange(k)).flatten()
    return lam * t + (1.0 - lam) * t[idx.to(t.device)]


def _mix_output(output, lam: float, perm: torch.Tensor):
    from ...models.fusion.base import FusionOutput

    if isinstance(output, torch.Tensor):
        return mix(output, lam, perm)
    if isinstance(output, FusionOutput):
        return replace(output, features=mix(output.features, lam, perm),
                       modality={m: mix(v, lam, perm) for m, v in output.modality.items()})
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (mix(output[0], lam, perm), *output[1:])
    if hasattr(output, "last_hidden_state"):  # a Hugging Face layer output
        output.last_hidden_state = mix(output.last_hidden_state, lam, perm)
        return output
    raise TypeError(f"manifold mixup cannot mix a {type(output).__name__}")


@HOOKS.register("manifold_mixup")
class ManifoldMixup(TrainingHook):
    name = "manifold_mixup"

    def draw(self, batch: dict, ctx) -> tuple[float, torch.Tensor, np.random.Generator]:
        """(lambda, permutation, generator for the place) of this micro batch."""
        g = ctx.generator(self.name, batch)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
        alpha = self.cfg.tricks.mixup_alpha
        n = len(batch["label"])
        return float(rng.beta(alpha, alpha)), torch.randperm(n, generator=g), rng

    @contextlib.contextmanager
    def around_forward(self, net: torch.nn.Module, batch: dict, ctx):
        lam, perm, rng = self.draw(batch, ctx)
        self.current = (lam, perm)
        points = {m: enc.mix_points() for m, enc in net.encoders.items()}
        at_fusion = (not getattr(net.fusion, "runs_encoder_layers", True) or not all(points.values())
                     or rng.random() < 0.5)
        targets = [net.fusion] if at_fusion else [p[int(rng.integers(len(p)))] for p in points.values()]
        handles = [t.register_forward_hook(lambda mod, args, out: _mix_output(out, lam, perm)) for t in targets]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def task_loss(self, out: dict, batch: dict, ctx) -> Optional[torch.Tensor]:
        lam, perm = self.current
        perm = perm.to(batch["label"].device)
        y, w = batch["label"], batch.get("weight")
        w = None if w is None else lam * w + (1 - lam) * w[perm]
        if self.problem_type == "regression":
            return ctx.criterion(out["logits"], lam * y.float() + (1 - lam) * y.float()[perm], w)
        return lam * ctx.criterion(out["logits"], y, w) + (1 - lam) * ctx.criterion(out["logits"], y[perm], w)

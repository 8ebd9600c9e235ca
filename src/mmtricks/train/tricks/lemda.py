"""LeMDA (SPEC section 3, joint feature-level augmentation): a learned augmenter of the fused features.

A small VAE-style network (``tricks.lemda_layers`` = 6 linear layers: 3 encode the fused
feature vector into a latent of ``tricks.lemda_latent`` = 8, 3 decode it back) makes an
augmented copy of each row's fused features. The task head is trained on the original and
the augmented features (the task loss of both). The augmenter is trained adversarially with
its own Adam (lr 1e-4, weight decay 1e-5), stepped after each optimizer step of the model:

* it *raises* the task loss of its augmented features: their gradient reaches it through a
  gradient reversal scaled by ``tricks.lemda_adv_scale`` (1e-4);
* it stays close to the input: the VAE's KL term (weight 0.1) and the MSE between augmented
  and original features (weight 0.1);
* it keeps the label: for rows the model predicts with confidence above 0.5, the KL between
  the predictions on original and augmented features (weight 0.01), through a frozen copy of
  the head so only the augmenter learns from it.

The augmenter reads the fused features detached: its own losses never reach the encoders.
Its noise comes from the hook context's generator, and its weights and optimiser state are
kept in resume points. It is a training device only: a saved model does not hold it. One
process: under DDP each rank would train an augmenter of its own.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..resume import optimizer_state, optimizer_tensors
from .hooks import HOOKS, TrainingHook


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient flips sign and is scaled by ``scale`` backward."""
    return _Reverse.apply(x, scale)


class Augmenter(nn.Module):
    """features (B, D) -> (augmented (B, D), VAE KL); ``layers`` linear layers in all."""

    def __init__(self, dim: int, latent: int = 8, layers: int = 6):
        super().__init__()
        half = max(1, layers // 2)

        def mlp(sizes):
            mods = []
            for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
                mods.append(nn.Linear(a, b))
                if i < len(sizes) - 2:
                    mods.append(nn.ReLU())
            return nn.Sequential(*mods)

        self.encoder = mlp([dim] * half + [2 * latent])
        self.decoder = mlp([latent] + [dim] * half)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + noise * torch.exp(0.5 * logvar)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        return self.decoder(z), kl


@HOOKS.register("lemda")
class LeMDA(TrainingHook):
    name = "lemda"

    def setup(self, net: nn.Module) -> None:
        t = self.cfg.tricks
        self.head = net.head
        self.augmenter = Augmenter(net.fusion.out_dim, t.lemda_latent, t.lemda_layers)
        self.optimizer = torch.optim.Adam(self.augmenter.parameters(), lr=t.lemda_lr, weight_decay=t.lemda_wd)

    def extra_loss(self, out: dict, batch: dict, ctx) -> Optional[torch.Tensor]:
        t = self.cfg.tricks
        features = out["features"].detach().float()
        self.augmenter.to(features.device)
        g = ctx.generator(self.name, batch)
        noise = torch.randn(features.shape[0], t.lemda_latent, generator=g).to(features.device)
        augmented, kl = self.augmenter(features, noise)
        y, w = batch["label"], batch.get("weight")
        task = ctx.criterion(self.head(grad_reverse(augmented, t.lemda_adv_scale)), y, w)  # head learns, augmenter resists
        mse = F.mse_loss(augmented, features)
        with torch.no_grad():
            p = out["logits"].float().softmax(-1) if self.problem_type != "regression" else None
        consistency = augmented.new_zeros(())
        if p is not None:  # classification: keep the label of confidently predicted rows
            logits = F.linear(augmented, self.head.weight.detach().float(), self.head.bias.detach().float())
            confident = p.max(-1).values > t.lemda_confidence
            if confident.any():
                kl_rows = F.kl_div(logits.log_softmax(-1), p, reduction="none").sum(-1)
                consistency = kl_rows[confident].mean()
        return task + t.lemda_kl_weight * kl + t.lemda_mse_weight * mse + t.lemda_consistency_weight * consistency

    def after_step(self, ctx) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        tensors, meta = optimizer_tensors(self.optimizer)
        tensors = {f"optim.{k}": v for k, v in tensors.items()}
        tensors.update({f"net.{k}": v.detach().cpu() for k, v in self.augmenter.state_dict().items()})
        return {"meta": {"optimizer": meta}, "tensors": tensors}

    def load_state_dict(self, state: dict) -> None:
        tensors = state["tensors"]
        self.augmenter.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.optimizer.load_state_dict(optimizer_state({k[6:]: v for k, v in tensors.items()
                                                        if k.startswith("optim.")}, state["meta"]["optimizer"]))

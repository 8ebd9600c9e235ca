"""Cross-modal alignment losses (SPEC section 3): extra terms on the per-modality features.

The features are the fusion's per-modality outputs (``out['modality']``: after each
modality's adapter, averaged over that modality's tokens, so one vector per modality and
row, several image columns pooled into one); every fusion in ``models/fusion/`` gives them.
With fewer than two modalities there is nothing to align and the term is zero.

* ``align_kl`` (positive-only): KL divergence between the softmax distributions, over the
  feature dimensions, of every ordered pair of one row's modality features, averaged over
  pairs and rows; weight ``tricks.align_kl_weight`` (1).
* ``align_infonce`` (positive + negative): CLIP-style symmetric InfoNCE between each pair of
  modalities across the batch (L2-normalised features, temperature
  ``tricks.align_temperature``; the other rows are the negatives), averaged over pairs;
  weight ``tricks.align_infonce_weight`` (1).
"""
from __future__ import annotations

import itertools
from typing import Optional

import torch
import torch.nn.functional as F

from .hooks import HOOKS, TrainingHook


def kl_alignment(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean KL(p_a || p_b) over ordered modality pairs (a, b) and rows; p = softmax over dims."""
    logp = {m: F.log_softmax(f.float(), dim=-1) for m, f in features.items()}
    pairs = list(itertools.permutations(sorted(logp), 2))
    if not pairs:
        return next(iter(features.values())).new_zeros(())
    terms = [F.kl_div(logp[b], logp[a], log_target=True, reduction="batchmean") for a, b in pairs]
    return torch.stack(terms).mean()


def infonce_alignment(features: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Mean symmetric InfoNCE over unordered modality pairs: row i of a matches row i of b."""
    z = {m: F.normalize(f.float(), dim=-1) for m, f in features.items()}
    pairs = list(itertools.combinations(sorted(z), 2))
    first = next(iter(features.values()))
    if not pairs or len(first) < 2:
        return first.new_zeros(())
    target = torch.arange(len(first), device=first.device)
    terms = []
    for a, b in pairs:
        logits = z[a] @ z[b].T / temperature
        terms.append((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2)
    return torch.stack(terms).mean()


@HOOKS.register("align_kl")
class KLAlignment(TrainingHook):
    name = "align_kl"

    def extra_loss(self, out: dict, batch: dict, ctx) -> Optional[torch.Tensor]:
        return self.cfg.tricks.align_kl_weight * kl_alignment(out["modality"])


@HOOKS.register("align_infonce")
class InfoNCEAlignment(TrainingHook):
    name = "align_infonce"

    def extra_loss(self, out: dict, batch: dict, ctx) -> Optional[torch.Tensor]:
        return self.cfg.tricks.align_infonce_weight * infonce_alignment(out["modality"],
                                                                        self.cfg.tricks.align_temperature)

"""Learning-rate schedule: linear warmup over a fixed number of steps, then cosine decay to zero.

The horizon (total steps) can be shortened while training, when a time limit makes the
planned step count out of reach (see ``train/plan.py``), so a run cut short still
anneals. Warmup stays the number of steps it was set to: shortening the horizon only
moves the cosine forward, so after warmup the multiplier never rises.
"""
from __future__ import annotations

import math
from typing import Optional


class WarmupCosine:
    """Multiplier of the base lr at a given optimizer step; use with ``LambdaLR``.

    ``warmup_steps`` defaults to ``round(warmup_fraction * total_steps)``.
    """

    def __init__(self, total_steps: int, warmup_fraction: float = 0.1, schedule: str = "cosine",
                 warmup_steps: Optional[int] = None):
        self.total_steps = max(1, int(total_steps))
        self.schedule = schedule
        self.warmup_steps = int(round(warmup_fraction * self.total_steps)) if warmup_steps is None else int(warmup_steps)

    def set_horizon(self, total_steps: int) -> None:
        self.total_steps = max(1, int(total_steps))

    def __call__(self, step: int) -> float:
        warm = self.warmup_steps
        if warm > 0 and step < warm:
            return step / warm
        if self.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, self.total_steps - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

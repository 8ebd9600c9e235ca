"""Learning-rate schedule: linear warmup over a fraction of the steps, then cosine decay to zero.

The horizon (total steps) can be shortened while training, when the time limit or
early stopping's budget makes the planned step count out of reach, so a run cut short
still anneals.
"""
from __future__ import annotations

import math


class WarmupCosine:
    """Multiplier of the base lr at a given optimizer step; use with ``LambdaLR``."""

    def __init__(self, total_steps: int, warmup_fraction: float = 0.1, schedule: str = "cosine"):
        self.total_steps = max(1, int(total_steps))
        self.warmup_fraction = warmup_fraction
        self.schedule = schedule

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_fraction * self.total_steps))

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

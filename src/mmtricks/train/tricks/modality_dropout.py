"""Modality dropout (SPEC section 3, 'Missing modalities'): training rows lose columns at random.

Each feature column of a training row is dropped with probability ``p`` and replaced
as a missing value would be (number: the mean, with its missing flag set; category:
the unknown index; text column: empty; image: missing). Applied to a row's raw pieces
before images are read, so a dropped image costs nothing. Prediction never uses it.
"""
from __future__ import annotations

import numpy as np


class ModalityDropout:
    """Row hook of the training dataset; its draws derive from ``(seed, epoch, row)``, so a
    resumed fit (or a loader worker) drops exactly what an uninterrupted fit drops."""

    def __init__(self, p: float, seed: int = 0):
        self.p = float(p)
        self.seed = int(seed)

    def __call__(self, row: dict, epoch: int = 0, index: int = 0) -> dict:
        if self.p <= 0:
            return row
        rng = np.random.default_rng([self.seed, epoch, index])

        def drops(n: int) -> np.ndarray:
            return rng.random(n) < self.p

        drop = drops(len(row["num"]))
        row["num"][drop] = 0.0  # the training mean, after scaling
        row["num_missing"][drop] = True
        row["cat"][drops(len(row["cat"]))] = 0
        if row["text"] is not None:
            row["text"] = [[] if d else col for col, d in zip(row["text"], drops(len(row["text"])))]
        if row["images"] is not None:
            row["images"] = [None if d else path for path, d in zip(row["images"], drops(len(row["images"])))]
        return row

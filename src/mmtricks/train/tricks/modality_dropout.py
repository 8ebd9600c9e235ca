"""Modality dropout (SPEC section 3, 'Missing modalities'): training rows lose columns at random.

Each feature column of a training row is dropped with probability ``p`` and replaced
as a missing value would be (number: the mean, with its missing flag set; category:
the unknown index; text column: empty; image: missing). Applied to a row's raw pieces
before images are read, so a dropped image costs nothing. Prediction never uses it.
"""
from __future__ import annotations

import numpy as np
import torch


class ModalityDropout:
    def __init__(self, p: float):
        self.p = float(p)

    def _drops(self, n: int) -> np.ndarray:
        # torch's global RNG: seeded by the loop, and per worker by the DataLoader
        return (torch.rand(n) < self.p).numpy()

    def __call__(self, row: dict) -> dict:
        if self.p <= 0:
            return row
        drop = self._drops(len(row["num"]))
        row["num"][drop] = 0.0  # the training mean, after scaling
        row["num_missing"][drop] = True
        row["cat"][self._drops(len(row["cat"]))] = 0
        if row["text"] is not None:
            row["text"] = [[] if d else col for col, d in zip(row["text"], self._drops(len(row["text"])))]
        if row["images"] is not None:
            row["images"] = [None if d else path for path, d in zip(row["images"], self._drops(len(row["images"])))]
        return row

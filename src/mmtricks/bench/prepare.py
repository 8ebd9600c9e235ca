"""The exact train / test files every config of a (data set, seed) sees, written once as parquet.

Train is subsampled per the profile (stratified, seeded by the bench seed), then corrupted
at the train missingness ratio; test is never subsampled, only corrupted at the test ratio.
Files live under ``OUT/scratch/<profile>/<dataset>/seed<k>/`` and are rebuilt identically
when absent, so a resumed bench feeds the same rows to every config.
"""
from __future__ import annotations

import os
import zlib
from typing import Any

from .results import ratio_key


def ratio_tag(ratio: float) -> str:
    """'0', '0.3' ...: a ratio as it appears in file names."""
    return f"{ratio_key(ratio):g}"


def corruption_seed(dataset: str, seed: int, split: str, ratio: float) -> int:
    """A fixed seed per (data set, bench seed, split, ratio)."""
    return zlib.crc32(f"{dataset}|{seed}|{split}|{ratio_key(ratio)}".encode()) & 0x7FFFFFFF


def seed_dir(out_dir: str, profile: str, dataset: str, seed: int) -> str:
    """Scratch folder of one (profile, data set, seed)."""
    return os.path.join(out_dir, "scratch", profile, dataset, f"seed{seed}")


def _write(df: Any, path: str) -> None:
    tmp = path + ".tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def split_file(ds: Any, profile: Any, out_dir: str, seed: int, split: str, ratio: float) -> tuple[str, int]:
    """Path and row count of the (possibly subsampled, possibly corrupted) split file; built when absent.

    Args:
        ds: The :class:`~mmtricks.bench.datasets.BenchDataset`.
        profile: The :class:`~mmtricks.bench.profiles.Profile` (its ``max_train_rows``).
        out_dir: The bench output folder.
        seed: Bench seed (subsample and corruption draws).
        split: 'train' or 'test'.
        ratio: Missingness ratio (0: clean).
    """
    import pandas as pd

    from .datasets import subsample_train
    from .missing import corrupt

    folder = seed_dir(out_dir, profile.name, ds.name, seed)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{split}_m{ratio_tag(ratio)}.parquet")
    if os.path.isfile(path):
        return path, len(pd.read_parquet(path, columns=[ds.label]))
    if split == "train":
        df = subsample_train(ds, profile.max_train_rows, seed)
    else:
        df = ds.test[ds.test[ds.label].notna()].reset_index(drop=True)
    if ratio_key(ratio) > 0:
        df = corrupt(df, ds.groups, ratio_key(ratio), corruption_seed(ds.name, seed, split, ratio))
    _write(df, path)
    return path, len(df)

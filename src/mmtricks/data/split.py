"""The validation split rule of SPEC section 1."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pandas as pd


def valid_fraction(n_rows: int) -> float:
    """n < 5000: max(0.1, min(0.2, 500/n)); else max(0.01, min(0.1, 2500/n))."""
    if n_rows < 5000:
        return max(0.1, min(0.2, 500 / n_rows))
    return max(0.01, min(0.1, 2500 / n_rows))


def train_valid_split(
    df: pd.DataFrame, label: str, classification: bool, seed: int, fraction: Optional[float] = None
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a validation split, stratified for classification where every class allows it."""
    from sklearn.model_selection import train_test_split

    frac = fraction or valid_fraction(len(df))
    n_val = max(1, int(round(frac * len(df))))
    stratify = None
    if classification:
        counts = df[label].value_counts()
        # Stratify when every class has 2+ rows and the split can hold each class once.
        if counts.min() >= 2 and n_val >= len(counts) and len(df) - n_val >= len(counts):
            stratify = df[label]
    idx = np.arange(len(df))
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return df.iloc[np.sort(tr)], df.iloc[np.sort(va)]


def subsample(df: pd.DataFrame, label: str, n: Optional[int], classification: bool, seed: int) -> pd.DataFrame:
    """At most ``n`` rows, stratified for classification."""
    if n is None or len(df) <= n:
        return df
    from sklearn.model_selection import train_test_split

    strat = df[label] if classification and df[label].value_counts().min() >= 2 else None
    try:
        keep, _ = train_test_split(np.arange(len(df)), train_size=n, random_state=seed, stratify=strat)
    except ValueError:
        keep, _ = train_test_split(np.arange(len(df)), train_size=n, random_state=seed)
    return df.iloc[np.sort(keep)]

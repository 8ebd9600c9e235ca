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


# A "group" of identical text bigger than this share of the rows (and than MIN_TEXT_GROUP_CAP
# rows) is a common value (a hospital name, a boilerplate line), not one entity described
# several times: its rows are split freely.
MAX_TEXT_GROUP_SHARE = 0.02
MIN_TEXT_GROUP_CAP = 8


def duplicate_text_groups(df: pd.DataFrame, text_columns: list[str]) -> Optional[np.ndarray]:
    """Group ids that tie rows whose text columns are all identical (and not all empty).

    Tables with several rows per entity (photos of one listing, scans of one patient) repeat
    the entity's text on each row; a random validation split would put the same text on both
    sides and reward memorising it. Returns None when no two rows share their text.
    """
    if not text_columns:
        return None
    text = df[text_columns].astype("string").fillna("").apply(lambda s: s.str.strip())
    empty = (text == "").all(axis=1).to_numpy()
    key = text.agg("\x1f".join, axis=1).to_numpy()
    ids = pd.factorize(key)[0]
    sizes = np.bincount(ids)
    cap = max(MIN_TEXT_GROUP_CAP, int(MAX_TEXT_GROUP_SHARE * len(df)))
    free = empty | (sizes[ids] > cap) | (sizes[ids] < 2)
    if free.all():
        return None
    ids = ids.astype(np.int64)
    ids[free] = ids.max() + 1 + np.arange(int(free.sum()))  # every free row its own group
    return ids


def train_valid_split(
    df: pd.DataFrame, label: str, classification: bool, seed: int, fraction: Optional[float] = None,
    groups: Optional[np.ndarray] = None,
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a validation split, stratified for classification where every class allows it.

    With ``groups`` (one id per row) no group has rows on both sides; the validation share is
    then 1 / round(1 / fraction) of the groups, stratified by label for classification
    (scikit-learn's StratifiedGroupKFold, first fold), else GroupShuffleSplit.
    """
    from sklearn.model_selection import train_test_split

    frac = fraction or valid_fraction(len(df))
    if groups is not None:
        return _group_split(df, label, classification, seed, frac, np.asarray(groups))
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


def _group_split(df: pd.DataFrame, label: str, classification: bool, seed: int, frac: float,
                 groups: np.ndarray) -> Tuple[pd.DataFrame, pd.DataFrame]:
    import warnings

    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    if len(groups) != len(df):
        raise ValueError(f"groups has {len(groups)} ids for {len(df)} rows")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("every row is in one group: a validation split needs at least two groups")
    idx = np.arange(len(df))
    if classification:
        folds = min(max(2, int(round(1 / frac))), n_groups)
        with warnings.catch_warnings():  # rare classes: sklearn warns that a class has < n_splits rows
            warnings.simplefilter("ignore", UserWarning)
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            tr, va = next(splitter.split(idx, df[label].to_numpy(), groups))
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
        tr, va = next(splitter.split(idx, groups=groups))
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

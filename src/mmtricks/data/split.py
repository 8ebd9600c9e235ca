"""The validation split rule of SPEC section 1."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import pandas as pd

from ..errors import RareClassWarning, SchemaError, plain, show_list


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


def unsplittable_classes(y: pd.Series, groups: Optional[np.ndarray] = None) -> list:
    """Classes that cannot be on both sides of a validation split, in label order.

    A class with a single row; with ``groups``, also a class whose rows all lie in one group.
    """
    counts = y.value_counts()
    rare = counts[counts < 2].index
    if groups is not None and len(y):
        spread = pd.Series(np.asarray(groups)).groupby(y.to_numpy()).nunique()
        rare = rare.union(spread[spread < 2].index, sort=False)
    return sorted((plain(c) for c in rare), key=lambda v: (str(type(v)), v))


def train_valid_split(
    df: pd.DataFrame, label: str, classification: bool, seed: int, fraction: Optional[float] = None,
    groups: Optional[np.ndarray] = None,
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a validation split, stratified for classification where every class allows it.

    With ``groups`` (one id per row) no group has rows on both sides; the validation share is
    then 1 / round(1 / fraction) of the groups, stratified by label for classification
    (scikit-learn's StratifiedGroupKFold, first fold), else GroupShuffleSplit.

    Classification rows of a class that cannot be on both sides (:func:`unsplittable_classes`:
    a single row, or with groups a single group) all go to training, with their groups, and a
    :class:`~mmtricks.errors.RareClassWarning` names those classes; the other rows are split as
    above, at the fraction the whole table's size gives.
    """
    frac = fraction or valid_fraction(len(df))
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != len(df):
            raise ValueError(f"groups has {len(groups)} ids for {len(df)} rows")
    forced = np.zeros(len(df), dtype=bool)
    if classification:
        rare = unsplittable_classes(df[label], groups)
        if rare:
            forced = df[label].isin(rare).to_numpy()
            if groups is not None:
                forced = np.isin(groups, groups[forced])
            _check_rest(df, label, rare, forced, groups)
            where = "a single row" if groups is None else "a single row or all their rows in one group"
            warnings.warn(
                f"Label column '{label}' has {len(rare)} class(es) with {where} ({show_list(rare, 10)}): "
                f"they are kept in training and left out of the validation split, which cannot score them. "
                f"Add rows of those classes or pass tuning_data to validate on them.",
                RareClassWarning, stacklevel=3)
    rest = np.flatnonzero(~forced)
    sub = df.iloc[rest]
    sub_groups = groups[rest] if groups is not None else None
    if sub_groups is not None:
        tr, va = _group_split(sub, label, classification, seed, frac, sub_groups)
    else:
        tr, va = _row_split(sub, label, classification, seed, frac)
    tr = np.sort(np.concatenate([rest[tr], np.flatnonzero(forced)]))
    return df.iloc[tr], df.iloc[np.sort(rest[va])]


def _check_rest(df: pd.DataFrame, label: str, rare: list, forced: np.ndarray,
                groups: Optional[np.ndarray]) -> None:
    """Refuse when the rows left after the rare classes cannot make a validation split."""
    left = int((~forced).sum()) if groups is None else len(np.unique(groups[~forced]))
    if left >= 2:
        return
    unit = "rows" if groups is None else "groups"
    raise SchemaError(
        f"Label column '{label}': every class has a single row"
        f"{'' if groups is None else ' or a single group'} ({show_list(rare, 10)}), so fewer than 2 {unit} "
        f"are left for a validation split. Add rows (2+ per class), or pass tuning_data."
    )


def _row_split(df: pd.DataFrame, label: str, classification: bool, seed: int,
               frac: float) -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n_val = max(1, int(round(frac * len(df))))
    stratify = None
    if classification:
        counts = df[label].value_counts()
        # Stratify when every class has 2+ rows and the split can hold each class once.
        if counts.min() >= 2 and n_val >= len(counts) and len(df) - n_val >= len(counts):
            stratify = df[label]
    idx = np.arange(len(df))
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return tr, va


def _group_split(df: pd.DataFrame, label: str, classification: bool, seed: int, frac: float,
                 groups: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

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
    return tr, va


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


@dataclass
class SharedSplit:
    """What every member of a fit shares: the schema, the metric and the validation split."""

    schema: object
    metric: object
    train_df: pd.DataFrame
    val_df: pd.DataFrame
    base: Optional[str]  # folder relative image paths of train_df resolve against
    val_base: Optional[str]
    train_weights: Optional[np.ndarray] = None  # sample weights, scaled to mean 1 over the training rows
    val_weights: Optional[np.ndarray] = None  # sample weights of the validation rows (for the metric)

"""Missing-modality corruption (SPEC): drop whole modality groups of rows at random.

For each row and each modality group (the tabular columns together, the text columns,
the image columns), the group's cells are set missing with probability ``ratio``. A row
that would lose every group gets one group, drawn at random, back. The draw is fixed by
``seed``. Missing is NaN for numbers and None (read back as null) for strings and images.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def drop_mask(n_rows: int, n_groups: int, ratio: float, seed: int):
    """Boolean (n_rows, n_groups): True where the row loses the group; every row keeps one.

    Args:
        n_rows: Number of rows.
        n_groups: Number of modality groups.
        ratio: Probability that a row loses a group, in [0, 1].
        seed: Random seed.
    """
    import numpy as np

    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1]. Got {ratio!r}.")
    rng = np.random.default_rng(seed)
    drop = rng.random((n_rows, n_groups)) < ratio
    back = rng.integers(0, max(n_groups, 1), n_rows)
    lost_all = drop.all(axis=1) if n_groups else np.zeros(n_rows, dtype=bool)
    drop[np.flatnonzero(lost_all), back[lost_all]] = False
    return drop


def _blank(df: "pd.DataFrame", column: str, rows) -> None:
    """Set ``df[column]`` missing at the boolean positions ``rows``, in place."""
    import numpy as np
    import pandas as pd

    if not rows.any():
        return
    col = df[column]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        values[rows] = np.nan
        df[column] = values
    else:
        values = col.astype(object).to_numpy(copy=True)
        values[rows] = None
        df[column] = pd.Series(values, index=df.index, dtype=object)


def corrupt(df: "pd.DataFrame", groups: dict[str, list[str]], ratio: float, seed: int) -> "pd.DataFrame":
    """A copy of ``df`` with modality groups set missing at random (see the module doc).

    Args:
        df: The table (the label column is never touched unless listed in a group).
        groups: Modality group name -> its columns, e.g. ``{"tabular": [...], "text": [...],
            "image": [...]}``. Empty groups are ignored.
        ratio: Probability that a row loses a group.
        seed: Random seed; the same seed gives the same cells.

    Returns:
        The corrupted copy (same index and columns).
    """
    names = [g for g, cols in groups.items() if cols]
    out = df.copy()
    if ratio <= 0 or not names:
        return out
    drop = drop_mask(len(df), len(names), float(ratio), seed)
    for j, name in enumerate(names):
        for column in groups[name]:
            _blank(out, column, drop[:, j])
    return out

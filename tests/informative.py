"""A table where one modality carries all the signal and another none (tests of explain and card)."""
from __future__ import annotations

import numpy as np
import pandas as pd

NOISE_WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def informative_table(n: int = 120, seed: int = 0, regression: bool = False, labels=("neg", "pos")) -> pd.DataFrame:
    """The label is decided by numeric column 'x'; 'z' is noise and 'txt' is random words."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = 2.0 * x + rng.normal(0, 0.05, n) if regression else np.where(x > 0, labels[1], labels[0])
    return pd.DataFrame({
        "x": x,
        "z": rng.normal(0, 1, n),
        "txt": [" ".join(rng.choice(NOISE_WORDS, 5)) for _ in range(n)],
        "y": y,
    })


def fit_tiny(df: pd.DataFrame, **kwargs):
    from mmtricks import MultimodalPredictor

    return MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 3}, verbosity=0,
                               **kwargs).fit(df)

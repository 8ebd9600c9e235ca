"""What each modality contributes: the drop in the eval metric when a group of columns is taken away.

No retraining: a fitted predictor scores a labelled table once as it is (the baseline) and
once per group with that group's columns taken away, and the difference is the group's
contribution. Two ways to take a group away (``method``):

- ``"missing"`` (default): every cell of the group's columns becomes missing (``None``;
  ``NaN`` for numbers), which the predictor imputes as at fit time (numbers mean-filled
  with a missing flag, categories the unknown index, empty text, zero images with a
  missing flag, or the learnable stand-ins when the model has them). The scores are
  deterministic; the ``repeats`` are paired bootstrap resamples of the rows (seeded), the
  baseline and the group-removed outputs scored on the same resample, and ``spread`` is the
  standard deviation of the drop over them. Predictions are made once per group, the
  resamples only re-score them.
- ``"permute"``: the group's columns are shuffled jointly across rows (one seeded
  permutation per repeat, the same row order for every column of the group, so a row
  keeps its columns' combination but loses its own label). ``score`` is the mean over the
  repeats and ``spread`` the standard deviation of the drop over them. Costs one
  prediction per group and repeat.

``drop`` is always "how much worse without it", in the metric's units and sign-adjusted
for the metric's direction: positive means the group helped, about zero that the model
ignores it, negative that it hurts. Groups come from ``predictor.schema_.column_kinds``:
``tabular`` (numerical and categorical columns), ``text``, ``image``.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from .data.io import TableLike, read_table
from .errors import ConfigError, SchemaError, did_you_mean, one_of

METHODS = ("missing", "permute")
MODALITY_KINDS = {"tabular": ("numerical", "categorical"), "text": ("text",), "image": ("image",)}
RESULT_COLUMNS = ["group", "columns", "metric", "baseline", "score", "drop", "spread", "repeats", "n_rows"]

Groups = Union[None, str, Sequence[str], Mapping[str, Sequence[str]]]


def modality_groups(schema) -> dict[str, list[str]]:
    """``{modality: [columns]}`` for the modalities present: tabular, text, image."""
    out = {}
    for name, kinds in MODALITY_KINDS.items():
        cols = [c for c, k in schema.column_kinds.items() if k in kinds]
        if cols:
            out[name] = cols
    return out


def resolve_groups(schema, groups: Groups = None) -> dict[str, list[str]]:
    """The groups to measure, ``{name: [columns]}``.

    Args:
        schema: The predictor's fitted schema.
        groups: None or ``"modalities"``: one group per modality present. ``"columns"``: one
            group per feature column. ``"all"``: the modalities, then every column. A list
            of column names: each its own group. A mapping ``{name: [columns]}``: custom groups.
    """
    kinds = schema.column_kinds
    if groups is None or groups == "modalities":
        return modality_groups(schema)
    if groups == "columns":
        return {c: [c] for c in kinds}
    if groups == "all":
        return {**modality_groups(schema), **{(f"column {c}" if c in MODALITY_KINDS else c): [c] for c in kinds}}
    if isinstance(groups, str):
        raise ConfigError(one_of("groups", groups, ["modalities", "columns", "all"]) +
                          " Or pass a list of column names or a {name: [columns]} mapping.")
    mapping = dict(groups) if isinstance(groups, Mapping) else {c: [c] for c in groups}
    out = {}
    for name, cols in mapping.items():
        cols = [cols] if isinstance(cols, str) else list(cols)
        if not cols:
            raise ConfigError(f"Group '{name}' names no columns.")
        for c in cols:
            if c not in kinds:
                raise SchemaError(f"Group '{name}': '{c}' is not a feature column of the model."
                                  f"{did_you_mean(str(c), map(str, kinds))} Feature columns: {list(kinds)}.")
        out[str(name)] = cols
    if not out:
        raise ConfigError("groups is empty: name at least one column.")
    return out


def _without(df: pd.DataFrame, cols: Sequence[str], schema) -> pd.DataFrame:
    """A copy of ``df`` whose ``cols`` are all missing (NaN for numbers, None otherwise)."""
    out = df.copy()
    for c in cols:
        if schema.column_kinds[c] == "numerical":
            out[c] = np.full(len(out), np.nan)
        else:
            out[c] = pd.Series([None] * len(out), index=out.index, dtype=object)
    return out


def _permuted(df: pd.DataFrame, cols: Sequence[str], rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``df`` whose ``cols`` are shuffled across rows, jointly (one row order for all)."""
    out = df.copy()
    order = rng.permutation(len(out))
    for c in cols:
        out[c] = df[c].to_numpy()[order]
    return out


class _Scorer:
    """The predictor's eval metric on its outputs, as ``evaluate`` computes it."""

    def __init__(self, predictor, df: pd.DataFrame, base: Optional[str]):
        from .train.metrics import get_metric

        self.p, self.base = predictor, base
        problem = predictor.schema_.problem_type
        self.metric = get_metric(predictor.metric_, problem)
        self.regression = problem == "regression"
        y = predictor.preprocessor_.label.transform(df[predictor.label], predictor.label)
        self.y = predictor.preprocessor_.label.inverse(np.asarray(y, dtype=np.float64)) if self.regression else y

    def outputs(self, df: pd.DataFrame) -> np.ndarray:
        if self.regression:
            return self.p.predict(df, base_dir=self.base).to_numpy(dtype=np.float64)
        return self.p.predict_proba(df, base_dir=self.base).to_numpy()

    def score(self, out: np.ndarray, rows: Optional[np.ndarray] = None) -> float:
        if rows is None:
            return float(self.metric.fn(self.y, out))
        return float(self.metric.fn(self.y[rows], out[rows]))

    def drop(self, baseline: float, score: float) -> float:
        """Positive when ``score`` is worse than ``baseline``, whatever the metric's direction."""
        return baseline - score if self.metric.greater_is_better else score - baseline


def _spread(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")


def modality_importance(predictor, data: TableLike, base_dir: Optional[str] = None, groups: Groups = None,
                        repeats: int = 5, seed: int = 0, method: str = "missing") -> pd.DataFrame:
    """How much the eval metric drops when each modality (or column group) is taken away.

    Args:
        predictor: A fitted ``MultimodalPredictor``.
        data: A labelled table (DataFrame or CSV/Parquet path); rows without a label are
            left out, as ``evaluate`` does.
        base_dir: Folder relative image paths resolve against (a file's folder by default).
        groups: Which columns to take away together; see :func:`resolve_groups` (default:
            one group per modality: tabular, text, image; ``"columns"``: one per column).
        repeats: ``"missing"``: bootstrap resamples of the rows for ``spread`` (0: none,
            spread NaN). ``"permute"``: permutations per group (at least 1).
        seed: Seed of the resamples or permutations.
        method: ``"missing"`` (cells set to missing; deterministic) or ``"permute"``
            (columns shuffled jointly across rows).

    Returns:
        One row per group: ``group``, ``columns`` (comma-joined), ``metric``, ``baseline``
        (the eval metric on ``data`` as it is, ``evaluate(data)[predictor.metric_]``),
        ``score`` (without the group; mean over permutations), ``drop`` (positive = the group
        helped, in the metric's units whatever its direction), ``spread`` (standard deviation
        of the drop over the repeats), ``repeats``, ``n_rows``.

    Example:
        >>> imp = predictor.modality_importance("test.parquet")  # doctest: +SKIP
        >>> imp[["group", "drop", "spread"]]  # doctest: +SKIP
    """
    predictor._check_fitted()
    if method not in METHODS:
        raise ConfigError(one_of("method", method, METHODS))
    low = 1 if method == "permute" else 0
    if not isinstance(repeats, (int, np.integer)) or isinstance(repeats, bool) or repeats < low:
        raise ConfigError(f"repeats must be a whole number >= {low} for method '{method}'. Got {repeats!r}.")
    df, base = read_table(data, base_dir)
    label = predictor.label
    if label not in df.columns:
        raise SchemaError(f"modality_importance needs the label column '{label}' in the table.")
    df = df[df[label].notna()]
    if df.empty:
        raise SchemaError(f"The table has no rows with a label ('{label}').")
    schema = predictor.schema_
    chosen = resolve_groups(schema, groups)
    scorer = _Scorer(predictor, df, base)
    base_out = scorer.outputs(df)
    baseline = scorer.score(base_out)
    n = len(df)
    rng = np.random.default_rng(seed)
    resamples = [rng.integers(0, n, n) for _ in range(repeats)] if method == "missing" else []
    rows = []
    for name, cols in chosen.items():
        if method == "missing":
            out = scorer.outputs(_without(df, cols, schema))
            score = scorer.score(out)
            drops = [scorer.drop(scorer.score(base_out, r), scorer.score(out, r)) for r in resamples]
        else:
            perm_rng = np.random.default_rng([seed, len(rows)])  # each group its own stream, seeded
            scores = [scorer.score(scorer.outputs(_permuted(df, cols, perm_rng))) for _ in range(repeats)]
            score = float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")
            drops = [scorer.drop(baseline, s) for s in scores]
        rows.append({"group": name, "columns": ",".join(map(str, cols)), "metric": predictor.metric_,
                     "baseline": baseline, "score": score, "drop": scorer.drop(baseline, score),
                     "spread": _spread(drops), "repeats": repeats, "n_rows": n})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def plot_importance(result: pd.DataFrame, path: str, title: Optional[str] = None) -> str:
    """A horizontal bar per group: its ``drop``, the ``spread`` as error bars. Writes a PNG; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result)
    fig, ax = plt.subplots(figsize=(6.0, 1.2 + 0.45 * max(n, 1)))
    try:
        drops = result["drop"].to_numpy(dtype=np.float64)
        err = np.nan_to_num(result["spread"].to_numpy(dtype=np.float64))
        colors = ["tab:blue" if d >= 0 else "tab:red" for d in np.nan_to_num(drops)]
        y = np.arange(n)[::-1]
        ax.barh(y, np.nan_to_num(drops), xerr=err, color=colors, capsize=4, alpha=0.85)
        ax.set_yticks(y)
        ax.set_yticklabels(result["group"].astype(str), fontsize=9)
        ax.axvline(0.0, color="black", linewidth=0.8)
        metric = str(result["metric"].iloc[0]) if n else "metric"
        ax.set_xlabel(f"drop in {metric} without the group (positive = it helped)", fontsize=9)
        ax.set_title(title or "What each modality contributes", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path

"""PNG figures of the bench report (matplotlib, Agg backend)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_bars(mean: "pd.DataFrame", std: "pd.DataFrame", metrics: dict[str, str], path: str) -> None:
    """One panel per data set: mean test score per config (dots), error bars = std over seeds.

    Args:
        mean: Data set x config mean scores.
        std: Same shape, standard deviations (NaN with one seed).
        metrics: Data set -> metric label for the y axis.
        path: PNG file to write.
    """
    plt = _pyplot()
    n = len(mean.index)
    fig, axes = plt.subplots(1, n, figsize=(max(4.0, 3.2 * n), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], mean.index):
        row = mean.loc[ds].dropna()
        err = std.loc[ds, row.index].fillna(0.0)
        ax.errorbar(range(len(row)), row.to_numpy(), yerr=err.to_numpy(), fmt="o", capsize=4, color="tab:blue")
        ax.set_xticks(range(len(row)))
        ax.set_xticklabels(row.index, rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(row) - 0.5)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(ds, fontsize=10)
        ax.set_ylabel(metrics.get(ds, "score"), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grouped_bars(table: "pd.DataFrame", ylabel: str, path: str, percent: bool = False) -> None:
    """Bars of ``table`` (rows: configs, columns: groups), one colour per column.

    Args:
        table: Config x group values (NaN bars are left out).
        ylabel: Y axis label.
        path: PNG file to write.
        percent: Values are fractions to show as percentages.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(table.index) * max(1, len(table.columns)) / 2), 3.6))
    width = 0.8 / max(1, len(table.columns))
    for j, col in enumerate(table.columns):
        vals = table[col].to_numpy(dtype=float) * (100.0 if percent else 1.0)
        ax.bar([i + j * width for i in range(len(table.index))], vals, width=width, label=str(col))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(table.index))])
    ax.set_xticklabels(table.index, rotation=30, ha="right", fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    if len(table.columns) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def missingness_lines(grid: "pd.DataFrame", metrics: dict[str, str], path: str) -> None:
    """One panel per data set: mean score vs test missing ratio, a line per (config, train ratio).

    Args:
        grid: Columns dataset, config, missing_train, missing_test, score (mean over seeds).
        metrics: Data set -> metric label.
        path: PNG file to write.
    """
    plt = _pyplot()
    names = list(dict.fromkeys(grid["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.5, 4.0 * len(names)), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], names):
        part = grid[grid["dataset"] == ds]
        for (config, mtrain), sub in part.groupby(["config", "missing_train"], sort=True):
            sub = sub.sort_values("missing_test")
            ax.plot(sub["missing_test"], sub["score"], marker="o", label=f"{config} train {mtrain:g}")
        ax.set_title(ds, fontsize=10)
        ax.set_xlabel("test missing ratio", fontsize=8)
        ax.set_ylabel(metrics.get(ds, "score"), fontsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Ensemble selection on validation predictions (Caruana et al. 2004), one implementation.

Every method takes the members' validation outputs (class probabilities ``(n, C)`` or
regression values ``(n,)``, in the metric's units), the validation targets and a
:class:`~mmtricks.train.metrics.Metric`, and returns one weight per member (summing to 1):

- ``caruana``: greedy forward selection with replacement; at each round the member whose
  addition scores best joins the running average; weights are counts / picks, taken at
  the best-scoring round (so never worse than the best single member on validation).
- ``sequential``: members ranked by their own validation score; Caruana over the best
  1, 2, ... k members; the subset whose ensemble scores best is kept.
- ``uniform``: the plain average of every member (for comparison).
- ``best``: all the weight on the member that scores best alone (for comparison).

Every pool fit records the weights of all four on its weights split
(``fit_info["ensemble"]["alternatives"]``), so a benchmark scores each on the test rows
without fitting again.

All four fit the weights on the split they are given: pass a split other than the one
that drove early stopping and soups (or out-of-fold predictions) for honest weights.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError, one_of
from ..train.metrics import Metric

METHODS = ("caruana", "sequential", "uniform", "best")


def blend(outputs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted average of the members' outputs."""
    total = np.zeros_like(np.asarray(outputs[0], dtype=np.float64))
    for out, w in zip(outputs, weights):
        if w:
            total += w * np.asarray(out, dtype=np.float64)
    return total


def caruana(outputs: Sequence[np.ndarray], y: np.ndarray, metric: Metric, rounds: int = 50,
            w: Optional[np.ndarray] = None) -> np.ndarray:
    """Greedy forward selection with replacement; ties go to the earlier member."""
    m = len(outputs)
    preds = [np.asarray(o, dtype=np.float64) for o in outputs]
    running = np.zeros_like(preds[0])
    counts = np.zeros(m)
    best_counts, best_score = None, None
    for r in range(1, rounds + 1):
        scores = [metric.fn(y, (running + p) / r, w) for p in preds]
        j = _best_index(scores, metric)
        counts[j] += 1
        running += preds[j]
        if best_score is None or metric.better(scores[j], best_score):
            best_score, best_counts = scores[j], counts.copy()
    return best_counts / best_counts.sum()


def sequential(outputs: Sequence[np.ndarray], y: np.ndarray, metric: Metric, rounds: int = 50,
               w: Optional[np.ndarray] = None) -> np.ndarray:
    """Caruana over growing subsets of the best members; the best subset's weights."""
    own = [metric.fn(y, o, w) for o in outputs]
    order = sorted(range(len(outputs)), key=lambda j: _sort_key(own[j], metric))
    best_weights, best_score = None, None
    for k in range(1, len(order) + 1):
        subset = order[:k]
        weights = caruana([outputs[j] for j in subset], y, metric, rounds, w)
        score = metric.fn(y, blend([outputs[j] for j in subset], weights), w)
        if best_score is None or metric.better(score, best_score):
            best_score = score
            best_weights = np.zeros(len(outputs))
            best_weights[subset] = weights
    return best_weights


def uniform(outputs: Sequence[np.ndarray], y: np.ndarray = None, metric: Metric = None, rounds: int = 0,
            w: Optional[np.ndarray] = None) -> np.ndarray:
    return np.full(len(outputs), 1.0 / len(outputs))


def best(outputs: Sequence[np.ndarray], y: np.ndarray, metric: Metric, rounds: int = 0,
         w: Optional[np.ndarray] = None) -> np.ndarray:
    """One-hot on the best single member; ties go to the earlier member."""
    weights = np.zeros(len(outputs))
    weights[_best_index([metric.fn(y, o, w) for o in outputs], metric)] = 1.0
    return weights


def select(method: str, outputs: Sequence[np.ndarray], y: np.ndarray, metric: Metric, rounds: int = 50,
           w: Optional[np.ndarray] = None) -> np.ndarray:
    """Weights of ``method`` (one of :data:`METHODS`); ``w``: sample weights of the rows."""
    if method not in METHODS:
        raise ConfigError(one_of("ensemble.method", method, METHODS))
    if not outputs:
        raise ValueError("ensemble selection needs at least one member")
    chosen = {"caruana": caruana, "sequential": sequential, "uniform": uniform, "best": best}[method]
    return chosen(outputs, y, metric, rounds, w)


def _best_index(scores: Sequence[float], metric: Metric) -> int:
    best = 0
    for j, s in enumerate(scores):
        if np.isfinite(s) and (not np.isfinite(scores[best]) or metric.better(s, scores[best])):
            best = j
    return best


def _sort_key(score: float, metric: Metric) -> float:
    if not np.isfinite(score):
        return np.inf
    return -score if metric.greater_is_better else score

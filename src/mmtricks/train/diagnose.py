"""After a fit: did the network learn anything the constant predictor does not know?

A network that ends at the majority class (or at the label mean) scores no better on
validation than the constant predictor fitted on the training labels; one whose best
validation is its last, on a rising curve, ran out of steps before it stopped improving.
Both are said in the log and flagged in ``fit_info['diagnosis']`` and the leaderboard.
One documented recovery (``recovery_overrides``) is tried when a collapsed fit leaves time.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .metrics import Metric

# The one retry a collapsed fit gets (see README "No silent collapse"): classification gets
# balanced class weights (a majority collapse), regression this multiple of its learning rate
# (near-mean predictions after too few effective updates).
RECOVERY_CLASSIFICATION = {"optim.class_weights": "balanced"}
RECOVERY_LR_MULTIPLIER = 3.0


def constant_outputs(train_labels: np.ndarray, n_rows: int, problem_type: str, n_classes: int) -> np.ndarray:
    """What the constant predictor outputs for ``n_rows`` rows: class frequencies, or the label mean."""
    if problem_type == "regression":
        return np.full(n_rows, float(np.mean(train_labels)))
    prior = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return np.tile(prior / prior.sum(), (n_rows, 1))


def diagnose(metric: Metric, val_score: float, constant_score: float, history: list[dict], stopped: str,
             val_outputs: Optional[np.ndarray], problem_type: str) -> dict:
    """Flags of one fit: ``collapsed`` (no better than constant, or one class for every row)
    and ``still_improving`` (best validation at the end of a rising curve)."""
    one_class = (problem_type != "regression" and val_outputs is not None and len(val_outputs) > 1
                 and len(np.unique(val_outputs.argmax(1))) == 1)
    collapsed = bool(not metric.better(val_score, constant_score) or one_class)
    scores = [h["val_score"] for h in history]
    rising = len(scores) >= 2 and metric.better(scores[-1], max(scores[:-1], key=_key(metric)))
    return {
        "constant_score": float(constant_score),
        "collapsed": collapsed,
        "one_class": bool(one_class),
        "still_improving": bool(rising and stopped in ("time_limit", "max_epochs", "max_steps")),
    }


def _key(metric: Metric):
    return (lambda s: s) if metric.greater_is_better else (lambda s: -s)


def recovery_overrides(problem_type: str, cfg) -> dict:
    """The retry's config overrides for a collapsed fit of ``problem_type``."""
    if problem_type == "regression":
        return {"optim.lr": cfg.optim.lr * RECOVERY_LR_MULTIPLIER}
    return dict(RECOVERY_CLASSIFICATION)


def class_weights(train_labels: np.ndarray, n_classes: int):
    """Cross-entropy weights inverse to class frequency (scikit-learn's 'balanced')."""
    import torch
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(train_labels, dtype=np.int64)
    present = np.unique(y)
    weights = np.zeros(n_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(weights, dtype=torch.float32)

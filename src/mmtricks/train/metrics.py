"""Metric registry (SPEC section 1), on top of scikit-learn's metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError, one_of
from ..registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str
    greater_is_better: bool
    problem_types: tuple[str, ...]
    fn: Callable[..., float]  # (y_true, outputs, sample_weight=None) -> score; every metric takes weights

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a > b if self.greater_is_better else a < b

    def worst(self) -> float:
        return -np.inf if self.greater_is_better else np.inf


METRICS: Registry = Registry("eval_metric")
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}
_CLS = ("binary", "multiclass")


def _register(name: str, greater: bool, problem_types: tuple[str, ...]):
    def deco(fn):
        METRICS.register(name)(Metric(name, greater, problem_types, fn))
        return fn

    return deco


@_register("accuracy", True, _CLS)
def _accuracy(y, proba, w=None):
    return float(np.average(proba.argmax(1) == y, weights=w))


@_register("balanced_accuracy", True, _CLS)
def _balanced_accuracy(y, proba, w=None):
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, proba.argmax(1), sample_weight=w))


@_register("log_loss", False, _CLS)
def _log_loss(y, proba, w=None):
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba, labels=np.arange(proba.shape[1]), sample_weight=w))


@_register("roc_auc", True, _CLS)
def _roc_auc(y, proba, w=None):
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return float("nan")  # undefined with one class present
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1], sample_weight=w))
    p = proba[:, present] / proba[:, present].sum(1, keepdims=True).clip(1e-12)
    return float(roc_auc_score(y, p, multi_class="ovr", labels=present, sample_weight=w))


@_register("f1", True, _CLS)
def _f1(y, proba, w=None):
    from sklearn.metrics import f1_score

    return float(f1_score(y, proba.argmax(1), average="macro", sample_weight=w))


@_register("quadratic_kappa", True, _CLS)
def _qwk(y, proba, w=None):
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(y, proba.argmax(1), weights="quadratic", sample_weight=w))


@_register("r2", True, ("regression",))
def _r2(y, pred, w=None):
    from sklearn.metrics import r2_score

    return float(r2_score(y, pred, sample_weight=w))


@_register("rmse", False, ("regression",))
def _rmse(y, pred, w=None):
    from sklearn.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(y, pred, sample_weight=w)))


@_register("mae", False, ("regression",))
def _mae(y, pred, w=None):
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y, pred, sample_weight=w))


def get_metric(name: str, problem_type: str) -> Metric:
    """The metric ``name`` checked against the problem type."""
    metric = METRICS.get(name)
    if problem_type not in metric.problem_types:
        allowed = [m for m in METRICS.names() if problem_type in METRICS.get(m).problem_types]
        raise ConfigError(one_of(f"eval_metric (for {problem_type})", name, allowed))
    return metric


def metrics_for(problem_type: str) -> list[str]:
    return [m for m in METRICS.names() if problem_type in METRICS.get(m).problem_types]


def list_metrics() -> list[str]:
    return METRICS.names()


def check_name(name: str) -> None:
    if name not in METRICS:
        raise ConfigError(one_of("eval_metric", name, METRICS.names()))

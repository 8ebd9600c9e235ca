"""Score any config's test outputs the same way (mmtricks' metric registry).

:func:`score_outputs` is the one scorer of the bench: the worker calls it for presets and the
``linear`` peer, :func:`mmtricks.bench.autogluon.parse_output` for the predictions file the
AutoGluon peers write (the peer script itself does not score).
"""
from __future__ import annotations

from typing import Any, Sequence


def greater_is_better(metric: str, problem_type: str) -> bool:
    """Whether a higher ``metric`` is better."""
    from ..train.metrics import get_metric

    return get_metric(metric, problem_type).greater_is_better


def score_outputs(y_true: Sequence[Any], outputs: Any, classes: Sequence[Any], problem_type: str,
                  metric: str) -> dict[str, Any]:
    """Score predictions on the test labels.

    Args:
        y_true: Test labels (rows with a missing label are dropped).
        outputs: (n, n_classes) probabilities in ``classes`` order, or (n,) values for regression.
        classes: Class labels the model knows (empty for regression).
        problem_type: 'binary', 'multiclass' or 'regression'.
        metric: Metric name.

    Returns:
        ``{"score": float, "n_scored": int, "n_unseen_label": int}``; test rows whose
        label the model never saw in train are left out of the score and counted.
    """
    import numpy as np
    import pandas as pd

    from ..train.metrics import get_metric

    fn = get_metric(metric, problem_type).fn
    y = pd.Series(list(y_true))
    out = np.asarray(outputs)
    keep = y.notna().to_numpy()
    if problem_type == "regression":
        yv = pd.to_numeric(y[keep]).to_numpy(dtype=np.float64)
        return {"score": float(fn(yv, out[keep].astype(np.float64))), "n_scored": int(keep.sum()),
                "n_unseen_label": 0}
    index = {_key(c): i for i, c in enumerate(classes)}
    idx = np.array([index.get(_key(v), -1) if k else -1 for v, k in zip(y, keep)])
    seen = idx >= 0
    unseen = int((keep & ~seen).sum())
    return {"score": float(fn(idx[seen], out[seen].astype(np.float64))), "n_scored": int(seen.sum()),
            "n_unseen_label": unseen}


def _key(value: Any) -> Any:
    """Class label as a hashable key that matches across numpy / python / string forms."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def constant_score(train_labels: Sequence[Any], test_labels: Sequence[Any], problem_type: str, metric: str) -> float:
    """The test score of the constant predictor fitted on ``train_labels``.

    Class frequencies of the training labels for every test row (so accuracy is the majority
    class's share and ROC AUC 0.5), or the training label mean for regression, scored by
    :func:`score_outputs` like every config. A fit that scores no better than this learned
    nothing the label counts do not say (the report's collapsed fits).
    """
    import numpy as np
    import pandas as pd

    from ..train.diagnose import constant_outputs

    train = pd.Series(list(train_labels)).dropna()
    n_test = len(list(test_labels))
    if problem_type == "regression":
        outputs = constant_outputs(pd.to_numeric(train).to_numpy(dtype=np.float64), n_test, problem_type, 0)
        return score_outputs(test_labels, outputs, [], problem_type, metric)["score"]
    classes = sorted({_key(v) for v in train}, key=str)
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[_key(v)] for v in train], dtype=np.int64)
    outputs = constant_outputs(codes, n_test, problem_type, len(classes))
    return score_outputs(test_labels, outputs, classes, problem_type, metric)["score"]

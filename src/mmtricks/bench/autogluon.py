"""The AutoGluon peers (`autogluon_mm`, `autogluon_tabular`, `autogluon_stack`): one script, its own virtualenv.

The script ``bench/peers/autogluon_run.py`` (repository root) takes ``--request
request.json`` (the same request for each peer but its ``kind``: multimodal, tabular, stack),
writes its test predictions to ``<out_dir>/predictions.parquet`` and prints one
JSON line ``{"status": "ok", "predictions", "classes", "n_train", "n_test", "fit_seconds",
"predict_seconds", "rows_per_s", "peak_rss_mb", "versions", "settings", "request"}`` (the
stack also ``"leaderboard"``, its models and validation scores), or
``{"status": "error", "error"}``. The script does not score: :func:`parse_output` reads the
predictions and scores them with :func:`mmtricks.bench.scoring.score_outputs`, the function
that scores every other config. It runs under ``.venv-autogluon/bin/python``
(repository root) or the interpreter named by env MMTRICKS_AUTOGLUON_PYTHON; env
MMTRICKS_AUTOGLUON_SCRIPT points at another script. When either is missing the run is
recorded as skipped.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional

SCRIPT = os.path.join("bench", "peers", "autogluon_run.py")
VENV_PYTHON = os.path.join(".venv-autogluon", "bin", "python")


def _roots() -> list[Path]:
    """Where the repository root may be: the current directory, then the source checkout."""
    return [Path.cwd(), Path(__file__).resolve().parents[3]]


def _find(relative: str, env: str) -> tuple[Optional[str], str]:
    """(existing path or None, where it was looked for)."""
    if os.environ.get(env):
        path = os.environ[env]
        return (path if os.path.isfile(path) else None), f"{env}={path}"
    tried = [str(root / relative) for root in _roots()]
    for path in tried:
        if os.path.isfile(path):
            return path, path
    return None, " or ".join(dict.fromkeys(tried))


def locate() -> tuple[Optional[list[str]], Optional[str]]:
    """``([python, script], None)`` when the peer can run, else ``(None, reason)``."""
    python, where_py = _find(VENV_PYTHON, "MMTRICKS_AUTOGLUON_PYTHON")
    script, where_script = _find(SCRIPT, "MMTRICKS_AUTOGLUON_SCRIPT")
    if python is None:
        return None, (f"AutoGluon virtualenv not found ({where_py}); create it (see bench/peers/) or set "
                      f"MMTRICKS_AUTOGLUON_PYTHON")
    if script is None:
        return None, f"AutoGluon peer script not found ({where_script})"
    return [python, script], None


def text_backbone() -> Optional[str]:
    """Local folder of the MiniLM text backbone (None when the zoo package is missing)."""
    from ..errors import BackboneError
    from ..zoo import resolve_text_backbone

    try:
        return resolve_text_backbone("minilm-l6")
    except BackboneError:
        return None


def build_request(kind: str, train_path: str, test_path: str, ds: Any, profile: Any, time_limit: float,
                  seed: int, out_dir: str) -> dict[str, Any]:
    """The request JSON for ``autogluon_run.py`` (field list in docs/benchmarks.md)."""
    return {
        "kind": kind, "train_path": train_path, "test_path": test_path, "base_dir": ds.base_dir,
        "label": ds.label, "problem_type": ds.problem_type, "metric": ds.metric, "time_limit": time_limit,
        "seed": seed, "text_backbone": text_backbone(), "image_backbone": None,
        "max_train_rows": profile.max_train_rows, "text_max_length": profile.text_max_length,
        "image_size": profile.image_size, "profile": profile.name,
        "image_columns": ds.image_columns, "text_columns": ds.text_columns, "tabular_columns": ds.tabular_columns,
        "out_dir": out_dir,
    }


def parse_output(log_text: str) -> Optional[dict[str, Any]]:
    """The peer's result: its last JSON object line with a ``status``, scored; None when there is none.

    ``{"status": "ok", ...}`` comes back with ``score``, ``n_scored`` and ``n_unseen_label`` from
    :func:`score_peer_predictions` (``classes`` left out); when scoring fails it comes back as
    ``{"status": "error", "error": ...}``. Any other status comes back with ``score`` None and an
    ``error`` text, so the run is recorded as failed with that text.
    """
    item = _last_status_line(log_text)
    if item is None:
        return None
    if item.get("status") != "ok":
        item["score"] = None
        item["error"] = str(item.get("error") or f"peer reported status {item.get('status')!r} without an error")
        return item
    out = {k: v for k, v in item.items() if k != "classes"}
    out["epochs"] = validated_epochs(log_text)
    try:
        out.update(score_peer_predictions(item))
    except Exception as exc:  # noqa: BLE001 - a bad predictions file is a failed run, not a crash
        out.update(status="error", score=None,
                   error=f"scoring the peer's predictions failed: {type(exc).__name__}: {exc}")
    return out


# AutoGluon MultiModalPredictor logs one line per validation ("Epoch 2, global step 9: 'val_accuracy'
# reached ..." or "... was not in top 3"); it validates twice per epoch (optim.val_check_interval 0.5).
_VALIDATION_LINE = re.compile(r"^Epoch \d+, global step \d+: 'val_", re.MULTILINE)
AUTOGLUON_VALIDATIONS_PER_EPOCH = 2


def validated_epochs(log_text: str) -> Optional[float]:
    """Epochs AutoGluon MultiModalPredictor trained up to its last validation (None: no such line).

    A partial epoch after the last validation is not counted, so seconds per epoch computed from
    it err in AutoGluon's favour.
    """
    count = len(_VALIDATION_LINE.findall(log_text))
    return count / AUTOGLUON_VALIDATIONS_PER_EPOCH if count else None


def _last_status_line(log_text: str) -> Optional[dict[str, Any]]:
    for raw in reversed(log_text.splitlines()):
        raw = raw.strip()
        if raw.startswith("{") and raw.endswith("}"):
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict) and "status" in item:
                return item
    return None


def score_peer_predictions(item: dict[str, Any]) -> dict[str, Any]:
    """Score an ok result line's ``predictions`` file against its request's test labels.

    ``item["request"]`` is the request file (test_path, label, problem_type, metric); the file's
    rows are the test rows in order. Returns ``{"score", "n_scored", "n_unseen_label"}``.
    """
    import pandas as pd

    from .scoring import score_outputs

    for key in ("request", "predictions"):
        if not item.get(key):
            raise ValueError(f"the peer's result line has no {key!r}")
    with open(item["request"], encoding="utf-8") as fh:
        req = json.load(fh)
    path = item["predictions"]
    if not os.path.isabs(path):
        path = os.path.join(req["out_dir"], path)
    outputs, classes = read_predictions(path, item.get("classes"), req["problem_type"])
    y_true = pd.read_parquet(req["test_path"], columns=[req["label"]])[req["label"]]
    if len(outputs) != len(y_true):
        raise ValueError(f"{path} has {len(outputs)} rows, the test file {req['test_path']} {len(y_true)}")
    return score_outputs(y_true, outputs, classes, req["problem_type"], req["metric"])


def read_predictions(path: str, classes: Optional[list[Any]], problem_type: str) -> tuple[Any, list[Any]]:
    """``(outputs, classes)`` from a peer's predictions parquet, as :func:`score_outputs` takes them.

    Regression: the ``prediction`` column. Classification: one probability column per class,
    named ``str(class)``, in the order of ``classes`` (the result line's list).
    """
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(path)
    if problem_type == "regression":
        if "prediction" not in frame.columns:
            raise ValueError(f"{path} has no 'prediction' column (columns {list(frame.columns)})")
        return frame["prediction"].to_numpy(dtype=np.float64), []
    if not classes:
        raise ValueError("the peer's result line has no 'classes' for a classification run")
    names = [str(c) for c in classes]
    if list(frame.columns) != names:
        raise ValueError(f"{path} columns {list(frame.columns)} do not match the classes {names}")
    return frame.to_numpy(dtype=np.float64), list(classes)

"""The AutoGluon peers (`autogluon_mm`, `autogluon_tabular`): a script in its own virtualenv.

The script ``bench/peers/autogluon_run.py`` (repository root) takes ``--request
request.json`` and prints one JSON line ``{"score", "fit_seconds", "predict_seconds",
"rows_per_s", "peak_rss_mb", "versions"}``. It runs under ``.venv-autogluon/bin/python``
(repository root) or the interpreter named by env MMTRICKS_AUTOGLUON_PYTHON; env
MMTRICKS_AUTOGLUON_SCRIPT points at another script. When either is missing the run is
recorded as skipped.
"""
from __future__ import annotations

import json
import os
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
    """The last JSON object line with a 'score' in the script's output, or None."""
    for raw in reversed(log_text.splitlines()):
        raw = raw.strip()
        if raw.startswith("{") and raw.endswith("}"):
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict) and "score" in item:
                return item
    return None

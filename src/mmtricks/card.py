"""A model card: one self-contained HTML page that shows what a fitted predictor is and did.

Sections: a summary; the validation score, training loss and learning rate at each
validation (``fit_info_["history"]``); the soup; the step plan and the collapse diagnosis;
the leaderboard (whatever columns it has); with a labelled table, its metrics, a confusion
matrix (classification) or predicted against true values (regression) and what each
modality contributes (:mod:`mmtricks.explain`); always the resolved config and the data
schema. Figures are PNG files embedded as base64 ``data:`` URIs and the style sheet is
inline, so the page needs nothing else: it can be mailed, archived or opened offline.
Every string from the model or the data is escaped (``html.escape``).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import pandas as pd

from .data.io import TableLike, read_table

CARD_MAX_COLUMN_GROUPS = 20  # more feature columns: the card measures the modalities only

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; background: #fff; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 3px solid #3465a4; padding-bottom: .3em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: .2em; color: #204a87; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f8; }
tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #e0e0e0; margin: .4em 0; }
.note { color: #666; font-size: 13px; }
.flag { color: #a40000; font-weight: bold; }
code { background: #f3f3f3; padding: 0 3px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """A cell's text: numbers rounded, containers as compact JSON."""
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _cell(value: Any, tag: str = "td") -> str:
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    cls = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{cls}>{_e(_fmt(value))}</{tag}>"


def _table(rows: Iterable[Mapping[str, Any]], columns: Optional[list] = None) -> str:
    """An HTML table of dict rows (every key a column, in first-seen order)."""
    rows = list(rows)
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    if not rows:
        return '<p class="note">(none)</p>'
    head = "".join(_cell(c, "th") for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _frame(df: pd.DataFrame) -> str:
    rows = [{str(k): ("" if _isna(v) else v) for k, v in rec.items()} for rec in df.to_dict("records")]
    return _table(rows, [str(c) for c in df.columns])


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _kv(mapping: Mapping[str, Any], key: str = "key") -> str:
    return _table([{key: k, "value": v} for k, v in mapping.items()], [key, "value"])


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str, ident: str) -> str:
    return f'<img id="{_e(ident)}" alt="{_e(alt)}" src="{uri}">'


def _curves_figure(history: list[dict], metric: str):
    plt = _pyplot()
    steps = [h.get("step") for h in history]
    panels = [("val_score", f"validation {metric}", "tab:blue"), ("loss", "training loss", "tab:orange"),
              ("lr", "learning rate", "tab:green")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (key, title, color) in zip(axes, panels):
        values = [np.nan if h.get(key) is None else float(h[key]) for h in history]
        ax.plot(steps, values, marker="o", markersize=3, color=color)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def _confusion_figure(matrix: np.ndarray, classes: list):
    plt = _pyplot()
    k = len(classes)
    side = min(9.0, 2.5 + 0.5 * k)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    names = [str(c) for c in classes]
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if top and matrix[i, j] > top / 2 else "black")
    ax.set_title("confusion matrix", fontsize=10)
    fig.tight_layout()
    return fig


def _scatter_figure(y: np.ndarray, pred: np.ndarray, label: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(y, pred, s=10, alpha=0.6)
    finite = np.concatenate([y, pred])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title("predicted against true", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{_e(ident)}"><h2>{_e(title)}</h2>\n{body}\n</section>'


def _training_sections(predictor) -> list[str]:
    info = getattr(predictor, "fit_info_", {}) or {}
    history = info.get("history") or []
    metric = predictor.metric_
    out = []
    if history:
        curves = _img(_fig_uri(_curves_figure(history, metric)), "validation score, training loss and learning rate "
                      "per validation", "validation-curve")
        out.append(_section("curves", "Training curves", curves + "<details><summary>every validation</summary>"
                            + _table(history) + "</details>"))
    else:
        out.append(_section("curves", "Training curves", '<p class="note">No validation history recorded.</p>'))
    soup = info.get("soup")
    if soup:
        rest = {k: v for k, v in soup.items() if k != "members"}
        members = [{"member": i + 1, "step": s} for i, s in enumerate(soup.get("members", []))]
        out.append(_section("soup", "Soup", _kv(rest) + "<p>Members (checkpoints averaged):</p>" + _table(members)))
    if info.get("plan"):
        out.append(_section("plan", "Step plan", _kv(info["plan"])))
    diagnosis = info.get("diagnosis")
    if diagnosis:
        flags = [k for k in ("collapsed", "still_improving") if diagnosis.get(k)]
        note = "".join(f'<p class="flag">{_e(f)}</p>' for f in flags)
        out.append(_section("diagnosis", "Diagnosis", note + _kv(diagnosis)))
    return out


def _evaluation_section(predictor, data: TableLike, base_dir: Optional[str]) -> str:
    from sklearn.metrics import confusion_matrix

    from .explain import modality_importance, plot_importance

    df, base = read_table(data, base_dir)
    df = df[df[predictor.label].notna()] if predictor.label in df.columns else df
    scores = predictor.evaluate(df, base_dir=base)
    parts = [f"<p>{_e(len(df))} labelled rows.</p>", _kv(scores, "metric")]
    schema = predictor.schema_
    if schema.problem_type == "regression":
        y = df[predictor.label].to_numpy(dtype=np.float64)
        pred = predictor.predict(df, base_dir=base).to_numpy(dtype=np.float64)
        parts.append(_img(_fig_uri(_scatter_figure(y, pred, predictor.label)), "predicted against true", "scatter"))
    else:
        y = predictor.preprocessor_.label.transform(df[predictor.label], predictor.label)
        pred = predictor.predict_proba(df, base_dir=base).to_numpy().argmax(1)
        matrix = confusion_matrix(y, pred, labels=np.arange(len(schema.classes)))
        parts.append("<h3>Confusion matrix</h3>")
        parts.append(_img(_fig_uri(_confusion_figure(matrix, schema.classes)), "confusion matrix", "confusion-matrix"))
        rows = [{"true \\ predicted": c, **{str(p): int(matrix[i, j]) for j, p in enumerate(schema.classes)}}
                for i, c in enumerate(schema.classes)]
        parts.append(_table(rows))
    # Every column too, unless there are so many that a prediction per column would be slow.
    groups = "all" if len(schema.column_kinds) <= CARD_MAX_COLUMN_GROUPS else "modalities"
    imp = modality_importance(predictor, df, base_dir=base, groups=groups)
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_importance(imp, os.path.join(tmp, "importance.png"))
        with open(png, "rb") as f:
            uri = "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")
    parts.append("<h3>What each modality contributes</h3>")
    parts.append('<p class="note">Drop in the eval metric when a group\'s cells are set to missing (positive = '
                 'it helped); spread: standard deviation over 5 bootstrap resamples of the rows '
                 '(mmtricks.explain).</p>')
    parts.append(_img(uri, "modality importance", "modality-importance") + _frame(imp))
    return _section("evaluation", "Evaluation on the given table", "".join(parts))


def render_card(predictor, data: Optional[TableLike] = None, base_dir: Optional[str] = None) -> str:
    """The card's HTML text (see :func:`write_card`)."""
    predictor._check_fitted()
    info = getattr(predictor, "fit_info_", {}) or {}
    schema = predictor.schema_
    title = f"mmtricks model card: {schema.label} ({schema.problem_type})"
    summary = {"label": schema.label, "problem type": schema.problem_type, "eval metric": predictor.metric_,
               "validation score": info.get("val_score"), "preset": info.get("preset", predictor.preset),
               "modalities": ", ".join(schema.modalities), "train rows": info.get("n_train"),
               "validation rows": info.get("n_val"), "steps": info.get("steps"), "epochs": info.get("epochs"),
               "stopped by": info.get("stopped"), "fit seconds": info.get("fit_seconds")}
    sections = [_section("summary", "Summary", _kv({k: v for k, v in summary.items() if v is not None}, "what"))]
    sections += _training_sections(predictor)
    sections.append(_section("leaderboard", "Leaderboard", _frame(predictor.leaderboard())))
    if data is not None:
        sections.append(_evaluation_section(predictor, data, base_dir))
    sections.append(_section("config", "Resolved config", _kv(_flatten(predictor.config_.to_dict()))))
    sd = schema.to_dict()
    cols = [{"column": c, "kind": k} for c, k in sd["column_kinds"].items()]
    extra = {k: v for k, v in sd.items() if k != "column_kinds"}
    sections.append(_section("schema", "Data schema", _kv(extra) + _table(cols, ["column", "kind"])))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n<h1>{_e(title)}</h1>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def write_card(predictor, out_path: str, data: Optional[TableLike] = None, base_dir: Optional[str] = None) -> str:
    """Write the model card of a fitted predictor to ``out_path`` (one self-contained HTML file).

    Args:
        predictor: A fitted (or loaded) ``MultimodalPredictor``.
        out_path: The HTML file to write (replaced atomically).
        data: Optional labelled table (DataFrame or CSV/Parquet path): adds its metrics, a
            confusion matrix or a predicted-against-true scatter, and the modality importance.
        base_dir: Folder relative image paths in ``data`` resolve against.

    Returns:
        ``out_path``.
    """
    text = render_card(predictor, data, base_dir)
    out_path = os.fspath(out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".card-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a card is meant to be shared
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out_path

"""MultimodalPredictor: the public estimator (scikit-learn conventions)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from .data.io import TableLike, read_table
from .errors import ConfigError, NotFittedError, SchemaError, did_you_mean

PREDICT_CHUNK = 8192  # rows encoded at a time when predicting


class MultimodalPredictor:
    """Fit deep multimodal models on a table of numbers, categories, text and image paths.

    Args:
        label: Name of the label column.
        problem_type: 'binary', 'multiclass' or 'regression'; inferred when None.
        eval_metric: Metric used for validation, soup and early stopping; the problem
            type's default when None (roc_auc, accuracy, r2).
        preset: Named preset (``mmtricks.presets.list_presets()``).
        overrides: Dotted config overrides, e.g. ``{"optim.lr": 3e-4}``.
        time_limit: Seconds for the whole ``fit``; training stops in time and the best
            model found so far is returned.
        seed: Random seed (split, initialisation, data order).
        column_types: Column kind overrides, e.g. ``{"zip": "categorical"}``; 'ignore'
            drops a column.
        verbosity: 0 quiet, 1 summary lines, 2 summary and progress bars.
        work_dir: Folder for checkpoints and resume points during ``fit``; kept after the
            fit. Needed for ``fit(..., resume=True)``. A temporary folder when None.

    Example:
        >>> p = MultimodalPredictor(label="y").fit("train.csv")  # doctest: +SKIP
        >>> p.predict("test.csv")  # doctest: +SKIP
    """

    def __init__(self, label: str, problem_type: Optional[str] = None, eval_metric: Optional[str] = None,
                 preset: str = "default", overrides: Optional[Mapping[str, Any]] = None,
                 time_limit: Optional[float] = None, seed: int = 0,
                 column_types: Optional[Mapping[str, str]] = None, verbosity: int = 2,
                 work_dir: Optional[str] = None):
        self.label = label
        self.problem_type = problem_type
        self.eval_metric = eval_metric
        self.preset = preset
        self.overrides = overrides
        self.time_limit = time_limit
        self.seed = seed
        self.column_types = column_types
        self.verbosity = verbosity
        self.work_dir = work_dir

    # ------------------------------------------------------------------ fit
    def fit(self, train_data: TableLike, tuning_data: Optional[TableLike] = None,
            base_dir: Optional[str] = None, resume: bool = False) -> "MultimodalPredictor":
        """Train on ``train_data`` (DataFrame or CSV/Parquet path) and return ``self``.

        ``tuning_data`` is the validation split used for early stopping, checkpoint
        ranking and the soup; when None it is held out from ``train_data`` (SPEC rule).
        Relative image paths resolve against the table file's folder (or ``base_dir``).
        With ``resume=True`` a fit killed part-way continues from the last resume point in
        ``work_dir`` (written at each validation); the same data and settings are required.
        """
        from .config import resolve
        from .data.split import subsample, train_valid_split
        from .schema import infer_schema
        from .train.metrics import DEFAULT_METRIC, get_metric

        start = time.time()
        cfg = resolve(self.preset, self.overrides)
        if resume and not self.work_dir:
            raise SchemaError("fit(resume=True) needs the work_dir the interrupted fit used: "
                              "MultimodalPredictor(..., work_dir=...) (CLI: --work-dir).")
        if self.time_limit is not None and not self.time_limit > 0:
            raise SchemaError(f"time_limit must be a positive number of seconds. Got {self.time_limit!r}.")
        df, base = read_table(train_data, base_dir)
        group = cfg.data.group_column
        if group is not None and group not in df.columns:
            raise ConfigError(f"data.group_column '{group}' is not a column of the training table."
                              f"{did_you_mean(group, map(str, df.columns))} Columns: {list(map(str, df.columns))}.")
        if group is not None and group == self.label:
            raise ConfigError(f"data.group_column '{group}' is the label; name a column of group ids (e.g. a "
                              "patient or listing id).")
        types = {**(self.column_types or {}), **({group: "ignore"} if group is not None else {})}
        schema = infer_schema(df, self.label, self.problem_type, types or None)
        df = df[df[self.label].notna()]
        classification = schema.problem_type != "regression"
        metric = get_metric(self.eval_metric or DEFAULT_METRIC[schema.problem_type], schema.problem_type)
        if tuning_data is None:
            if classification and df[self.label].value_counts().min() < 2:
                rare = df[self.label].value_counts()
                raise SchemaError(
                    f"Label column '{self.label}' has classes with a single row ({list(rare[rare < 2].index)[:5]}): "
                    f"a validation split cannot hold them. Add rows, drop those classes, or pass tuning_data."
                )
            groups = self._split_groups(df, schema, cfg)
            train_df, val_df = train_valid_split(df, self.label, classification, self.seed, cfg.data.valid_fraction,
                                                 groups=groups)
            val_base = base
        else:
            val_df, val_base = read_table(tuning_data, base_dir)
            val_df = val_df[val_df[self.label].notna()]
            train_df = df
        train_df = subsample(train_df, self.label, cfg.data.max_train_rows, classification, self.seed)
        self._log(1, f"mmtricks: {schema.problem_type} on {len(train_df)} train / {len(val_df)} validation rows; "
                     f"modalities {schema.modalities}; metric {metric.name}")
        self._log(1, "columns: " + ", ".join(f"{c} ({k})" for c, k in schema.column_kinds.items()))

        from lightning_fabric.utilities.seed import seed_everything

        from .data.dataset import make_loader
        from .train.loop import plan_batches, train
        from .train.tricks.modality_dropout import ModalityDropout

        seed_everything(self.seed, verbose=False)  # before building: random init is part of the fit
        model, pre = self._build(schema, cfg, train_df)
        hook = ModalityDropout(cfg.data.modality_dropout) if cfg.data.modality_dropout > 0 else None
        train_ds = self._dataset(pre, pre.encode(train_df, base, with_labels=True), row_hook=hook)
        val_enc = pre.encode(val_df, val_base, with_labels=True)
        val_ds = self._dataset(pre, val_enc)
        e = cfg.env
        micro, _ = plan_batches(len(train_ds), cfg.optim)
        train_loader = make_loader(train_ds, micro, True, e.num_workers, self.seed, drop_last=len(train_ds) > micro)
        val_loader = make_loader(val_ds, e.eval_batch_size, False, e.num_workers, self.seed)
        deadline = start + self.time_limit if self.time_limit else None
        run_dir = self._prepare_work_dir(cfg, schema, len(train_df), len(val_df), resume)
        try:
            result = train(model, train_loader, val_loader, val_enc.labels, cfg=cfg,
                           problem_type=schema.problem_type, metric=metric, run_dir=run_dir,
                           deadline=deadline, seed=self.seed, quiet=self.verbosity < 2,
                           log=lambda m: self._log(1, m), resumable=self.work_dir is not None, resume=resume)
        finally:
            if self.work_dir is None:
                shutil.rmtree(run_dir, ignore_errors=True)
        model.load_state_dict(result.state)
        model.eval()
        self.config_, self.schema_, self.preprocessor_, self.model_ = cfg, schema, pre, model.cpu()
        self.metric_ = metric.name
        self.fit_info_ = {
            "val_score": result.val_score, "soup": result.soup, "stopped": result.stopped,
            "steps": result.steps, "epochs": result.epochs, "train_seconds": result.seconds,
            "fit_seconds": round(time.time() - start, 2), "history": result.history,
            "n_train": len(train_df), "n_val": len(val_df), "preset": self.preset,
            "resumed_from_step": result.resumed_from,
        }
        self._log(1, f"done in {self.fit_info_['fit_seconds']:.1f}s ({result.epochs} epochs, stopped by "
                     f"{result.stopped}); validation {metric.name} = {result.val_score:.4f} "
                     f"(soup {result.soup['method']} of steps {result.soup['members']})")
        return self

    def _split_groups(self, df, schema, cfg):
        """Group ids for the validation split (``data.group_column``, else duplicated text), or None."""
        from .data.split import duplicate_text_groups

        if cfg.data.group_column is not None:
            values = df[cfg.data.group_column]
            if values.isna().any():
                raise SchemaError(f"data.group_column '{cfg.data.group_column}' has {int(values.isna().sum())} "
                                  "empty cells: give every row a group id.")
            ids = values.astype(str).factorize()[0]
            self._log(1, f"validation split: {len(np.unique(ids))} groups of '{cfg.data.group_column}' kept whole")
            return ids
        if not cfg.data.group_duplicate_text:
            return None
        texts = [c for c, k in schema.column_kinds.items() if k == "text"]
        ids = duplicate_text_groups(df, texts)
        if ids is not None:
            shared = int((np.bincount(ids)[ids] > 1).sum())
            self._log(1, f"validation split: {shared} rows share their text with another row; such rows stay on "
                         "one side (data.group_duplicate_text)")
        return ids

    def _prepare_work_dir(self, cfg, schema, n_train: int, n_val: int, resume: bool) -> str:
        """The run folder; a resumed fit must match the fit that wrote it."""
        import hashlib
        import json

        if self.work_dir is None:
            return tempfile.mkdtemp(prefix="mmtricks-run-")
        os.makedirs(self.work_dir, exist_ok=True)
        ident = json.dumps({"config": cfg.to_dict(), "schema": schema.to_dict(), "seed": self.seed,
                            "n_train": n_train, "n_val": n_val, "metric": self.eval_metric}, sort_keys=True,
                           default=str)
        fingerprint = hashlib.sha256(ident.encode()).hexdigest()[:16]
        marker = os.path.join(self.work_dir, "fit.json")
        if resume and os.path.isfile(marker):
            with open(marker) as f:
                if json.load(f).get("fingerprint") != fingerprint:
                    raise SchemaError(f"work_dir '{self.work_dir}' holds a different fit (other data or settings); "
                                      f"resume with the same ones, or use a new work_dir.")
        elif not resume:
            for sub in ("checkpoints", "resume"):
                shutil.rmtree(os.path.join(self.work_dir, sub), ignore_errors=True)
        with open(marker, "w") as f:
            json.dump({"fingerprint": fingerprint}, f)
        return self.work_dir

    def _build(self, schema, cfg, train_df):
        from .data.preprocessor import Preprocessor
        from .models.net import MultimodalNet, build_encoders_for, build_tabular_encoder

        encoders = build_encoders_for(schema.modalities, cfg, len(schema.columns("image")))
        tokenizer = encoders["text"].tokenizer() if "text" in encoders else None
        image_config = None
        if "image" in encoders:
            image_config = encoders["image"].input_config()
            if cfg.data.image_size:
                image_config["size"], image_config["crop_pct"] = cfg.data.image_size, 1.0
        pre = Preprocessor.fit(train_df, schema, tokenizer=tokenizer, text_max_length=cfg.data.text_max_length,
                               image_config=image_config, image_separator=cfg.data.image_separator,
                               categorical_max_levels=cfg.data.categorical_max_levels,
                               allow_missing_images=cfg.data.allow_missing_images)
        tab = build_tabular_encoder(cfg, len(pre.num.columns), pre.cat.cardinalities)
        if tab is not None:
            encoders = {"tabular": tab, **encoders}
        f = cfg.fusion
        n_out = 1 if schema.problem_type == "regression" else len(schema.classes)
        net = MultimodalNet(encoders, f.name, dict(adapter_dim=f.adapter_dim, hidden=f.hidden, dropout=f.dropout),
                            n_out)
        return net, pre

    @staticmethod
    def _dataset(pre, encoded, row_hook=None):
        from .data.dataset import TableDataset

        transform = pre.image.build_transform() if pre.image else None
        size = pre.image.size if pre.image else 0
        return TableDataset(encoded, transform, size, pre.text, row_hook)

    def _log(self, level: int, message: str) -> None:
        if self.verbosity >= level:
            print(message, flush=True)

    # -------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("This MultimodalPredictor is not fitted yet: call fit() or MultimodalPredictor.load().")

    def _run(self, data: TableLike, base_dir: Optional[str], key: str) -> tuple[np.ndarray, pd.DataFrame]:
        """Model outputs for every row: ('logits' -> probabilities/values, or 'features')."""
        import torch

        from .data.dataset import make_loader
        from .schema import validate_frame

        self._check_fitted()
        df, base = read_table(data, base_dir)
        features = validate_frame(df, self.schema_)
        device = "cuda" if torch.cuda.is_available() and self.config_.env.accelerator in ("auto", "cuda", "gpu") else "cpu"
        model = self.model_.to(device).eval()
        outs = []
        # Chunks bound memory: only PREDICT_CHUNK rows are encoded at a time, images per batch.
        for begin in range(0, len(features), PREDICT_CHUNK):
            encoded = self.preprocessor_.encode(features.iloc[begin:begin + PREDICT_CHUNK], base, with_labels=False)
            loader = make_loader(self._dataset(self.preprocessor_, encoded), self.config_.env.eval_batch_size, False,
                                 self.config_.env.num_workers)
            with torch.no_grad():
                for batch in loader:
                    out = model({k: v.to(device) for k, v in batch.items()})
                    value = out["features"] if key == "features" else out["logits"]
                    if key == "logits":
                        value = value[:, 0] if self.schema_.problem_type == "regression" else value.float().softmax(-1)
                    outs.append(value.float().cpu())
        self.model_.cpu()
        return torch.cat(outs).numpy(), df

    def predict_proba(self, data: TableLike, base_dir: Optional[str] = None) -> pd.DataFrame:
        """Class probabilities, one column per class (classification only)."""
        self._check_fitted()
        if self.schema_.problem_type == "regression":
            raise SchemaError("predict_proba is for classification; this predictor does regression. Use predict().")
        proba, df = self._run(data, base_dir, "logits")
        return pd.DataFrame(proba, columns=self.schema_.classes, index=df.index)

    def predict(self, data: TableLike, base_dir: Optional[str] = None) -> pd.Series:
        """Predicted labels (classification) or values in the label's scale (regression)."""
        out, df = self._run(data, base_dir, "logits")
        if self.schema_.problem_type == "regression":
            values = self.preprocessor_.label.inverse(out.astype(np.float64))
        else:
            values = np.asarray(self.schema_.classes, dtype=object)[out.argmax(1)]
            values = pd.Series(values).infer_objects().to_numpy()
        return pd.Series(values, index=df.index, name=self.label)

    def evaluate(self, data: TableLike, metrics: Optional[list[str]] = None,
                 base_dir: Optional[str] = None) -> dict[str, float]:
        """Scores on a labelled table: the eval metric first, then every metric of the problem type."""
        from .train.metrics import get_metric, metrics_for

        self._check_fitted()
        df, base = read_table(data, base_dir)
        if self.label not in df.columns:
            raise SchemaError(f"evaluate needs the label column '{self.label}' in the table.")
        df = df[df[self.label].notna()]
        y = self.preprocessor_.label.transform(df[self.label], self.label)
        out, _ = self._run(df, base, "logits")
        names = metrics or [self.metric_] + [m for m in metrics_for(self.schema_.problem_type) if m != self.metric_]
        if self.schema_.problem_type == "regression":
            lab = self.preprocessor_.label
            y, out = lab.inverse(y.astype(np.float64)), lab.inverse(out.astype(np.float64))
        return {m: get_metric(m, self.schema_.problem_type).fn(y, out) for m in names}

    def extract_embedding(self, data: TableLike, base_dir: Optional[str] = None) -> np.ndarray:
        """The fused feature vector of each row, (n_rows, hidden), before the head."""
        return self._run(data, base_dir, "features")[0]

    def leaderboard(self) -> pd.DataFrame:
        """One row per trained model with its validation score and fit facts."""
        self._check_fitted()
        info = self.fit_info_
        return pd.DataFrame([{
            "model": info.get("preset", self.preset), "eval_metric": self.metric_,
            "val_score": info["val_score"], "soup": info["soup"]["method"],
            "soup_members": len(info["soup"]["members"]), "epochs": info["epochs"],
            "stopped": info["stopped"], "fit_seconds": info["fit_seconds"],
        }])

    # ------------------------------------------------------------ save/load
    def save(self, path: str) -> str:
        """Write the fitted model to folder ``path`` (JSON + safetensors), atomically."""
        from .persist import save_predictor

        self._check_fitted()
        return save_predictor(self, os.fspath(path))

    @classmethod
    def load(cls, path: str, verbosity: int = 1) -> "MultimodalPredictor":
        """Load a folder written by :meth:`save`. Never unpickles, never runs code from it."""
        from .persist import load_predictor

        return load_predictor(cls, os.fspath(path), verbosity)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "model_") else "not fitted"
        return f"MultimodalPredictor(label={self.label!r}, preset={self.preset!r}, {state})"

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
PREDICT_WORKER_MIN_ROWS = 512  # fewer rows to predict: no DataLoader worker processes


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
            # Classes with a single row (or group) stay in training, with a RareClassWarning (data/split.py).
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
        from .train.loop import plan_batches
        from .train.tricks.modality_dropout import ModalityDropout

        seed_everything(self.seed, verbose=False)  # before building: random init is part of the fit
        model, pre = self._build(schema, cfg, train_df, base)
        hook = ModalityDropout(cfg.data.modality_dropout, self.seed) if cfg.data.modality_dropout > 0 else None
        train_enc = pre.encode(train_df, base, with_labels=True)
        train_ds = self._dataset(pre, train_enc, row_hook=hook, image_cache_mb=cfg.env.image_cache_mb)
        val_enc = pre.encode(val_df, val_base, with_labels=True)
        val_ds = self._dataset(pre, val_enc)
        e = cfg.env
        micro, _ = plan_batches(len(train_ds), cfg.optim)
        train_loader = make_loader(train_ds, micro, True, e.num_workers, self.seed, drop_last=len(train_ds) > micro)
        val_loader = make_loader(val_ds, e.eval_batch_size, False, e.num_workers, self.seed)
        deadline = start + self.time_limit if self.time_limit else None
        run_dir = self._prepare_work_dir(cfg, schema, len(train_df), len(val_df), resume)
        fit = _NetworkFit(self, schema, metric, pre, train_enc, val_enc, train_loader, val_loader, deadline)
        try:
            result, model, cfg = fit.run(model, cfg, run_dir, resume)
        finally:
            train_ds.close()  # the image cache's disk part
            if self.work_dir is None:
                shutil.rmtree(run_dir, ignore_errors=True)
        self.config_, self.schema_, self.preprocessor_, self.model_ = cfg, schema, pre, model
        self.metric_ = metric.name
        self.fit_info_ = {
            "val_score": result.val_score, "soup": result.soup, "stopped": result.stopped,
            "steps": result.steps, "epochs": result.epochs, "train_seconds": result.seconds,
            "fit_seconds": round(time.time() - start, 2), "history": result.history,
            "n_train": len(train_df), "n_val": len(val_df), "preset": self.preset,
            "resumed_from_step": result.resumed_from, "plan": result.plan, "diagnosis": fit.diagnosis,
        }
        self._log(1, f"done in {self.fit_info_['fit_seconds']:.1f}s ({result.steps} steps of "
                     f"{result.plan['effective_batch']} rows, {result.epochs} epochs, stopped by "
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
            for sub in ("checkpoints", "resume", "retry"):
                shutil.rmtree(os.path.join(self.work_dir, sub), ignore_errors=True)
        with open(marker, "w") as f:
            json.dump({"fingerprint": fingerprint}, f)
        return self.work_dir

    def _build(self, schema, cfg, train_df, base_dir=None):
        """The network and the processors fitted on ``train_df`` (image paths relative to ``base_dir``)."""
        from .data.preprocessor import Preprocessor
        from .models.net import build_encoders_for

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
                               allow_missing_images=cfg.data.allow_missing_images,
                               auto_text_length=cfg.data.auto_input_size,
                               auto_image_size=cfg.data.auto_input_size and not cfg.data.image_size,
                               base_dir=base_dir, seed=self.seed, log=lambda m: self._log(1, m))
        return self._build_net(schema, cfg, pre, encoders), pre

    @staticmethod
    def _build_net(schema, cfg, pre, encoders=None):
        """The network for fitted processors ``pre``; text/image ``encoders`` built anew when None."""
        from .models.net import MultimodalNet, build_encoders_for, build_tabular_encoder

        if encoders is None:
            encoders = build_encoders_for(schema.modalities, cfg, len(schema.columns("image")))
        tab = build_tabular_encoder(cfg, len(pre.num.columns), pre.cat.cardinalities)
        if tab is not None:
            encoders = {"tabular": tab, **encoders}
        f = cfg.fusion
        n_out = 1 if schema.problem_type == "regression" else len(schema.classes)
        return MultimodalNet(encoders, f.name, dict(adapter_dim=f.adapter_dim, hidden=f.hidden, dropout=f.dropout),
                             n_out)

    def _dataset(self, pre, encoded, row_hook=None, image_cache_mb: int = 0):
        """A TableDataset over ``encoded``. Training passes its row hook and ``env.image_cache_mb``:
        > 0 decodes every image once now, that many MiB kept in memory and the rest on disk
        (``dataset.close()`` removes the disk part)."""
        from .data.dataset import TableDataset

        dataset = TableDataset(encoded, pre.image, pre.text, row_hook)
        if image_cache_mb > 0 and pre.image is not None:
            self._log(1, dataset.cache_images(image_cache_mb * 2**20).summary())
        return dataset

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

        from .schema import validate_frame

        self._check_fitted()
        df, base = read_table(data, base_dir)
        features = validate_frame(df, self.schema_)
        model, device = self._predict_model()
        outs = []
        # Chunks bound memory: only PREDICT_CHUNK rows are encoded at a time, images per batch.
        for begin in range(0, len(features), PREDICT_CHUNK):
            encoded = self.preprocessor_.encode(features.iloc[begin:begin + PREDICT_CHUNK], base, with_labels=False)
            with torch.no_grad():  # not inference_mode: tensors a module caches must stay usable in training
                for batch in self._predict_batches(encoded):
                    out = model({k: v.to(device) for k, v in batch.items()})
                    value = out["features"] if key == "features" else out["logits"]
                    if key == "logits":
                        value = value[:, 0] if self.schema_.problem_type == "regression" else value.float().softmax(-1)
                    outs.append(value.float().cpu())
        return torch.cat(outs).numpy(), df

    def _predict_model(self):
        """``(model in eval mode, device)``; the model moves only when it is not on the device yet
        and stays there (a second call pays no copy)."""
        import torch

        accelerator = self.config_.env.accelerator
        device = "cuda" if torch.cuda.is_available() and accelerator in ("auto", "cuda", "gpu") else "cpu"
        model = self.model_
        param = next(model.parameters(), None)
        if param is not None and param.device.type != device:
            model.to(device)
        if model.training:  # fit and load leave it in eval mode; a user's model_.train() sets this flag
            model.eval()
        return model, device

    def _predict_dataset(self, encoded):
        """A TableDataset over ``encoded`` that reuses this predictor's image transforms and text
        processor: they are built once per fitted preprocessor, not per call."""
        import copy

        cached = getattr(self, "_predict_template", None)
        if cached is None or cached[0] is not self.preprocessor_:
            template = copy.copy(self._dataset(self.preprocessor_, encoded))
            template.table = None  # holds no rows between calls
            cached = self._predict_template = (self.preprocessor_, template)
        dataset = copy.copy(cached[1])
        dataset.table = encoded
        return dataset

    def _predict_batches(self, encoded):
        """Collated batches of ``env.eval_batch_size`` rows, in order.

        DataLoader workers (``env.num_workers``) only for tables with images and at least
        PREDICT_WORKER_MIN_ROWS rows, where reading images in parallel pays for starting the
        processes; otherwise the batches are built in this process, as a worker-less
        DataLoader would build them.
        """
        from .data.dataset import make_loader

        dataset = self._predict_dataset(encoded)
        size, workers = self.config_.env.eval_batch_size, self.config_.env.num_workers
        if workers > 0 and self.preprocessor_.image is not None and len(dataset) >= PREDICT_WORKER_MIN_ROWS:
            yield from make_loader(dataset, size, False, workers)
            return
        for begin in range(0, len(dataset), size):
            yield dataset.collate([dataset[i] for i in range(begin, min(begin + size, len(dataset)))])

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

    def modality_importance(self, data: TableLike, base_dir: Optional[str] = None, groups=None, repeats: int = 5,
                            seed: int = 0, method: str = "missing") -> pd.DataFrame:
        """The drop in the eval metric when each modality (or column group) is taken away; see
        :func:`mmtricks.explain.modality_importance`."""
        from .explain import modality_importance

        return modality_importance(self, data, base_dir=base_dir, groups=groups, repeats=repeats, seed=seed,
                                   method=method)

    def leaderboard(self) -> pd.DataFrame:
        """One row per trained model with its validation score and fit facts."""
        self._check_fitted()
        info = self.fit_info_
        return pd.DataFrame([{
            "model": info.get("preset", self.preset), "eval_metric": self.metric_,
            "val_score": info["val_score"], "soup": info["soup"]["method"],
            "soup_members": len(info["soup"]["members"]), "epochs": info["epochs"],
            "stopped": info["stopped"], "fit_seconds": info["fit_seconds"],
            "steps": info.get("steps"), "collapsed": info.get("diagnosis", {}).get("collapsed"),
            "still_improving": info.get("diagnosis", {}).get("still_improving"),
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


class _NetworkFit:
    """One network trained on a fixed split: the fit, its diagnosis against the constant
    predictor, and the one documented recovery retry when it collapsed (train/diagnose.py)."""

    def __init__(self, predictor, schema, metric, pre, train_enc, val_enc, train_loader, val_loader, deadline):
        from .train.diagnose import constant_outputs

        self.p, self.schema, self.metric, self.pre, self.deadline = predictor, schema, metric, pre, deadline
        self.loaders = (train_loader, val_loader)
        self.regression = schema.problem_type == "regression"
        self.n_classes = 0 if self.regression else len(schema.classes)
        label = pre.label
        # Validation is scored in the label's own units (regression outputs are standardised).
        self.to_units = (lambda v: label.inverse(np.asarray(v, dtype=np.float64))) if self.regression else None
        self.val_labels = self.to_units(val_enc.labels) if self.regression else val_enc.labels
        self.train_labels = train_enc.labels
        train_units = self.to_units(train_enc.labels) if self.regression else train_enc.labels
        constant = constant_outputs(train_units, len(self.val_labels), schema.problem_type, self.n_classes)
        self.constant_score = float(metric.fn(self.val_labels, constant))
        self.diagnosis: dict = {}

    def _train(self, model, cfg, run_dir: str, resume: bool):
        from .train.diagnose import class_weights, diagnose
        from .train.loop import train

        weights = None
        if cfg.optim.class_weights == "balanced" and not self.regression:
            weights = class_weights(self.train_labels, self.n_classes)
        result = train(model, *self.loaders, self.val_labels, cfg=cfg, problem_type=self.schema.problem_type,
                       metric=self.metric, run_dir=run_dir,
                       time_budget=self.deadline - time.time() if self.deadline else None, seed=self.p.seed,
                       quiet=self.p.verbosity < 2, log=lambda m: self.p._log(1, m),
                       resumable=self.p.work_dir is not None, resume=resume, to_metric_units=self.to_units,
                       class_weights=weights)
        model.load_state_dict(result.state)
        model.eval()
        diag = diagnose(self.metric, result.val_score, self.constant_score, result.history, result.stopped,
                        result.val_outputs, self.schema.problem_type)
        self._say(diag, result)
        return result, model.cpu(), diag

    def _say(self, diag: dict, result) -> None:
        m = self.metric.name
        if diag["collapsed"]:
            what = "the label mean" if self.regression else "the training class frequencies"
            self.p._log(1, f"Warning: collapsed fit: validation {m} {result.val_score:.4f} is no better than the "
                           f"constant predictor's {diag['constant_score']:.4f} ({what})"
                           f"{'; every validation row gets one class' if diag['one_class'] else ''}.")
        if diag["still_improving"]:
            self.p._log(1, f"Note: validation {m} was still improving at the last check (step {result.steps}, "
                           f"stopped by {result.stopped}): the fit is under-trained; a longer time limit would help.")

    def run(self, model, cfg, run_dir: str, resume: bool):
        """``(result, model, cfg)`` of the kept fit; ``self.diagnosis`` says what happened."""
        import copy

        from lightning_fabric.utilities.seed import seed_everything

        from .config import apply_overrides
        from .train.diagnose import recovery_overrides

        started = time.time()
        result, model, diag = self._train(model, cfg, run_dir, resume)
        self.diagnosis = dict(diag)
        left = self.deadline - time.time() if self.deadline else float("inf")
        if not (diag["collapsed"] and cfg.optim.recover_collapse and left > time.time() - started):
            return result, model, cfg
        overrides = recovery_overrides(self.schema.problem_type, cfg)
        self.p._log(1, f"Retrying once with {overrides} (optim.recover_collapse).")
        retry_cfg = apply_overrides(copy.deepcopy(cfg), overrides)
        seed_everything(self.p.seed, verbose=False)
        retry_model = self.p._build_net(self.schema, retry_cfg, self.pre)
        retry, retry_model, retry_diag = self._train(retry_model, retry_cfg, os.path.join(run_dir, "retry"), resume)
        kept = self.metric.better(retry.val_score, result.val_score)
        self.diagnosis = {**(retry_diag if kept else diag),
                          "recovery": {"overrides": overrides, "val_score": retry.val_score, "kept": bool(kept)}}
        self.p._log(1, f"Retry: validation {self.metric.name} {retry.val_score:.4f} against "
                       f"{result.val_score:.4f}: {'kept' if kept else 'first fit kept'}.")
        return (retry, retry_model, retry_cfg) if kept else (result, model, cfg)

"""MultimodalPredictor: the public estimator (scikit-learn conventions)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np
import pandas as pd

from .data.io import TableLike, read_table
from .errors import ConfigError, NotFittedError, SchemaError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from .data.split import SharedSplit

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
        pool: Train a model pool and ensemble it instead of one network: entries of
            ``mmtricks.ensemble.pool.POOL`` ('lightgbm', 'linear', network presets) or
            preset names; ``["pool"]`` is the whole pool (preset 'best' does the same).
        sample_weight: Name of a column of non-negative row weights (never a feature): the
            training loss of every member kind and the validation metric are weighted by it,
            and ``evaluate`` weighs rows by it when the table holds it.

    Example:
        >>> p = MultimodalPredictor(label="y").fit("train.csv")  # doctest: +SKIP
        >>> p.predict("test.csv")  # doctest: +SKIP
    """

    def __init__(self, label: str, problem_type: Optional[str] = None, eval_metric: Optional[str] = None,
                 preset: str = "default", overrides: Optional[Mapping[str, Any]] = None,
                 time_limit: Optional[float] = None, seed: int = 0,
                 column_types: Optional[Mapping[str, str]] = None, verbosity: int = 2,
                 work_dir: Optional[str] = None, pool: Optional[list[str]] = None,
                 sample_weight: Optional[str] = None):
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
        self.pool = pool
        self.sample_weight = sample_weight

    # ------------------------------------------------------------------ fit
    def fit(self, train_data: TableLike, tuning_data: Optional[TableLike] = None,
            base_dir: Optional[str] = None, resume: bool = False) -> "MultimodalPredictor":
        """Train on ``train_data`` (DataFrame or CSV/Parquet path) and return ``self``.

        ``tuning_data`` is the validation split used for early stopping, checkpoint
        ranking, the soup and (with a pool) the ensemble weights; when None it is held out
        from ``train_data`` (SPEC rule). Relative image paths resolve against the table
        file's folder (or ``base_dir``). With ``resume=True`` a fit killed part-way
        continues from the last resume point in ``work_dir`` (written at each validation);
        the same data and settings are required.
        """
        from .config import resolve

        start = time.time()
        cfg = resolve(self.preset, self.overrides)
        if resume and not self.work_dir:
            raise SchemaError("fit(resume=True) needs the work_dir the interrupted fit used: "
                              "MultimodalPredictor(..., work_dir=...) (CLI: --work-dir).")
        if self.time_limit is not None and not self.time_limit > 0:
            raise SchemaError(f"time_limit must be a positive number of seconds. Got {self.time_limit!r}.")
        split = self._prepare(train_data, tuning_data, base_dir, cfg)
        deadline = start + self.time_limit if self.time_limit else None
        entries = self._pool_entries(cfg)
        if entries:
            self._fit_pool(split, cfg, entries, deadline, resume)
        else:
            self._fit_network(split, cfg, deadline, resume)
        self.fit_info_["fit_seconds"] = round(time.time() - start, 2)
        self._log(1, f"done in {self.fit_info_['fit_seconds']:.1f}s; validation {split.metric.name} = "
                     f"{self.fit_info_['val_score']:.4f}")
        return self

    def _prepare(self, train_data, tuning_data, base_dir, cfg) -> "SharedSplit":
        """Schema, metric and the validation split: made once, shared by every pool member."""
        from .data.split import SharedSplit, subsample, train_valid_split
        from .schema import infer_schema
        from .train.metrics import DEFAULT_METRIC, get_metric

        df, base = read_table(train_data, base_dir)
        group = cfg.data.group_column
        if group is not None and group not in df.columns:
            raise ConfigError(f"data.group_column '{group}' is not a column of the training table."
                              f"{did_you_mean(group, map(str, df.columns))} Columns: {list(map(str, df.columns))}.")
        if group is not None and group == self.label:
            raise ConfigError(f"data.group_column '{group}' is the label; name a column of group ids (e.g. a "
                              "patient or listing id).")
        types = {**(self.column_types or {}), **({group: "ignore"} if group is not None else {})}
        if self.sample_weight is not None:
            self._row_weights(df, "the training table")  # checked before anything else is done
            types[self.sample_weight] = "ignore"
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
        return self._with_weights(SharedSplit(schema, metric, train_df, val_df, base, val_base))

    def _row_weights(self, df: pd.DataFrame, what: str) -> Optional[np.ndarray]:
        """The sample-weight column of ``df`` as float64, checked (None without ``sample_weight``)."""
        col = self.sample_weight
        if col is None:
            return None
        if col not in df.columns:
            raise SchemaError(f"sample_weight column '{col}' is not in {what}."
                              f"{did_you_mean(col, map(str, df.columns))}")
        if col == self.label:
            raise ConfigError(f"sample_weight '{col}' is the label; name a column of row weights.")
        w = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            from .errors import show_list

            raise SchemaError(f"sample_weight column '{col}' has {int(bad.sum())} negative, missing or non-numeric "
                              f"value(s) in {what} (rows {show_list(list(df.index[bad]), 5)}); weights must be "
                              "finite and >= 0.")
        if not (w > 0).any():
            raise SchemaError(f"sample_weight column '{col}' is zero on every row of {what}: nothing to learn from.")
        return w

    def _with_weights(self, split: "SharedSplit") -> "SharedSplit":
        """``split`` with its rows' sample weights: training ones scaled to mean 1."""
        if self.sample_weight is None:
            return split
        train = self._row_weights(split.train_df, "the training rows")
        val = self._row_weights(split.val_df, "the validation rows") if self.sample_weight in split.val_df else None
        if val is None:
            self._log(1, f"validation is unweighted: the tuning table has no '{self.sample_weight}' column")
        split.train_weights, split.val_weights = train / train.mean(), val
        return split

    def _fit_network(self, split: "SharedSplit", cfg, deadline: Optional[float], resume: bool,
                     require_floor: bool = False) -> None:
        """Train one network on ``split``; sets the fitted attributes (``model_`` ...)."""
        from lightning_fabric.utilities.seed import seed_everything

        from .data.dataset import make_loader
        from .train.loop import for_device, plan_batches, resolve_precision
        from .train.network_fit import NetworkFit
        from .train.tricks.hooks import chain_row_hooks, data_transforms
        from .train.tricks.modality_dropout import ModalityDropout

        schema, metric, train_df, val_df, base = split.schema, split.metric, split.train_df, split.val_df, split.base
        cfg = for_device(cfg, lambda m: self._log(1, m))  # micro batch and loader workers left to the device
        seed_everything(self.seed, verbose=False)  # before building: random init is part of the fit
        model, pre = self._build(schema, cfg, train_df, base)
        row_hooks = [ModalityDropout(cfg.data.modality_dropout, self.seed)] if cfg.data.modality_dropout > 0 else []
        train_enc = pre.encode(train_df, base, with_labels=True)
        data_side = data_transforms(cfg, pre, train_df, self.seed)  # training hooks that act in the loader
        row_hooks += [data_side["row_hook"]] if "row_hook" in data_side else []
        train_ds = self._dataset(pre, train_enc, row_hook=chain_row_hooks(row_hooks),
                                 image_cache_mb=cfg.env.image_cache_mb, image_augment=data_side.get("image_augment"))
        train_ds.weights = split.train_weights
        val_enc = pre.encode(val_df, split.val_base, with_labels=True)
        val_ds = self._dataset(pre, val_enc)
        e = cfg.env
        micro, _ = plan_batches(len(train_ds), cfg.optim)
        train_loader = make_loader(train_ds, micro, True, e.num_workers, self.seed, drop_last=len(train_ds) > micro)
        val_loader = make_loader(val_ds, e.eval_batch_size, False, e.num_workers, self.seed)
        run_dir = self._prepare_work_dir(cfg, schema, len(train_df), len(val_df), resume)
        fit = NetworkFit(self, schema, metric, pre, train_enc, val_enc, train_loader, val_loader, deadline,
                          require_floor, split.val_weights)
        try:
            result, model, cfg = fit.run(model, cfg, run_dir, resume)
        finally:
            train_ds.close()  # the image cache's disk part
            if self.work_dir is None:
                shutil.rmtree(run_dir, ignore_errors=True)
        self.config_, self.schema_, self.preprocessor_, self.model_ = cfg, schema, pre, model
        self.metric_ = metric.name
        self.val_outputs_ = result.val_outputs  # validation outputs in metric units (not saved)
        self.fit_info_ = {
            "val_score": result.val_score, "soup": result.soup, "stopped": result.stopped,
            "steps": result.steps, "epochs": result.epochs, "train_seconds": result.seconds,
            "history": result.history, "n_train": len(train_df), "n_val": len(val_df), "preset": self.preset,
            "resumed_from_step": result.resumed_from, "plan": result.plan, "diagnosis": fit.diagnosis,
            "precision": resolve_precision(cfg.env),
        }
        self._log(1, f"network {self.preset}: {result.steps} steps of {result.plan['effective_batch']} rows, "
                     f"{result.epochs} epochs, stopped by {result.stopped}; validation {metric.name} = "
                     f"{result.val_score:.4f} (soup {result.soup['method']} of steps {result.soup['members']})")

    def _pool_entries(self, cfg):
        """The pool entries to train (None: one network)."""
        from .ensemble.pool import pool_entries

        names = list(self.pool) if self.pool else [n.strip() for n in cfg.ensemble.members.split(",") if n.strip()]
        return pool_entries(names) if names else None

    def _fit_pool(self, split: "SharedSplit", cfg, entries, deadline: Optional[float], resume: bool) -> None:
        """Train the pool's members on the shared split, then weigh them (ensemble/fit.py)."""
        from .ensemble.fit import fit_ensemble

        fit_ensemble(self, split, cfg, entries, deadline, resume)

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
                            "sample_weight": self.sample_weight,
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
        from .data.preprocessor import fit_for_encoders, input_columns, input_modalities
        from .models.net import build_encoders_for

        to_text = cfg.data.tabular_kinds_as_text()
        encoders = build_encoders_for(input_modalities(input_columns(schema, to_text)), cfg, len(schema.columns("image")))
        pre = fit_for_encoders(train_df, schema, cfg, encoders, base_dir, self.seed, lambda m: self._log(1, m), to_text)
        return self._build_net(schema, cfg, pre, encoders), pre

    @staticmethod
    def _build_net(schema, cfg, pre, encoders=None):
        """The network for fitted processors ``pre``; text/image ``encoders`` built anew when None."""
        from .models.net import MultimodalNet, build_encoders_for, build_tabular_encoder, fusion_kwargs

        if encoders is None:
            encoders = build_encoders_for(pre.modalities, cfg, len(schema.columns("image")))
        tab = build_tabular_encoder(cfg, len(pre.num.columns), pre.cat.cardinalities)
        if tab is not None:
            encoders = {"tabular": tab, **encoders}
        n_out = 1 if schema.problem_type == "regression" else len(schema.classes)
        return MultimodalNet(encoders, cfg.fusion.name, fusion_kwargs(cfg.fusion), n_out)

    def _dataset(self, pre, encoded, row_hook=None, image_cache_mb: int = 0, image_augment=None):
        """A TableDataset over ``encoded``. Training passes its row hook and ``env.image_cache_mb``:
        > 0 decodes every image once now, that many MiB kept in memory and the rest on disk
        (``dataset.close()`` removes the disk part)."""
        from .data.dataset import TableDataset

        dataset = TableDataset(encoded, pre.image, pre.text, row_hook, image_augment)
        if image_cache_mb > 0 and pre.image is not None:
            self._log(1, dataset.cache_images(image_cache_mb * 2**20).summary())
        return dataset

    def _log(self, level: int, message: str) -> None:
        if self.verbosity >= level:
            print(message, flush=True)

    # -------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "schema_"):
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
            # not inference_mode: tensors a module caches must stay usable in training
            with torch.no_grad(), self._autocast(device):
                for batch in self._predict_batches(encoded):
                    out = model({k: v.to(device) for k, v in batch.items()})
                    value = out["features"] if key == "features" else out["logits"]
                    if key == "logits":
                        value = value[:, 0] if self.schema_.problem_type == "regression" else value.float().softmax(-1)
                    outs.append(value.float().cpu())
        return torch.cat(outs).numpy(), df

    def _autocast(self, device: str):
        """The fit's mixed precision (``env.precision``) for prediction too, else nothing."""
        from .train.loop import autocast_for, resolve_precision

        return autocast_for(resolve_precision(self.config_.env), device)

    def _predict_model(self):
        """``(model in eval mode, device)``; the model moves only when it is not on the device yet
        and stays there (a second call pays no copy)."""
        from .train.loop import inference_device

        device = inference_device(self.config_.env.accelerator)
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
        size, workers = self.config_.env.eval_batch_size, self.config_.env.num_workers or 0
        if workers > 0 and self.preprocessor_.image is not None and len(dataset) >= PREDICT_WORKER_MIN_ROWS:
            yield from make_loader(dataset, size, False, workers)
            return
        for begin in range(0, len(dataset), size):
            yield dataset.collate([dataset[i] for i in range(begin, min(begin + size, len(dataset)))])

    def predict_outputs(self, data: TableLike, base_dir: Optional[str] = None) -> np.ndarray:
        """Outputs in the metric's units: class probabilities ``(n, n_classes)`` in
        ``schema_.classes`` order, or regression values ``(n,)`` in the label's scale.
        An ensemble blends its members' outputs with their weights."""
        return self._outputs(data, base_dir)[0]

    def _outputs(self, data: TableLike, base_dir: Optional[str]) -> tuple[np.ndarray, pd.DataFrame]:
        self._check_fitted()
        if getattr(self, "members_", None):
            from .ensemble.selection import blend
            from .schema import validate_frame

            df, base = read_table(data, base_dir)
            features = validate_frame(df, self.schema_)
            used = [m for m in self.members_ if m.weight > 0]
            return blend([m.outputs(features, base) for m in used], [m.weight for m in used]), df
        out, df = self._run(data, base_dir, "logits")
        if self.schema_.problem_type == "regression":
            out = self.preprocessor_.label.inverse(out.astype(np.float64))
        return out, df

    def _targets(self, df: pd.DataFrame) -> np.ndarray:
        """The label column in the metric's units (class indices, or values)."""
        from .data.processors import LabelProcessor

        return LabelProcessor(self.schema_.problem_type, self.schema_.classes).targets(df[self.label], self.label)

    def predict_proba(self, data: TableLike, base_dir: Optional[str] = None) -> pd.DataFrame:
        """Class probabilities, one column per class (classification only)."""
        self._check_fitted()
        if self.schema_.problem_type == "regression":
            raise SchemaError("predict_proba is for classification; this predictor does regression. Use predict().")
        proba, df = self._outputs(data, base_dir)
        return pd.DataFrame(proba, columns=self.schema_.classes, index=df.index)

    def predict(self, data: TableLike, base_dir: Optional[str] = None) -> pd.Series:
        """Predicted labels (classification) or values in the label's scale (regression)."""
        out, df = self._outputs(data, base_dir)
        if self.schema_.problem_type != "regression":
            out = np.asarray(self.schema_.classes, dtype=object)[out.argmax(1)]
            out = pd.Series(out).infer_objects().to_numpy()
        return pd.Series(out, index=df.index, name=self.label)

    def evaluate(self, data: TableLike, metrics: Optional[list[str]] = None,
                 base_dir: Optional[str] = None) -> dict[str, float]:
        """Scores on a labelled table: the eval metric first, then every metric of the problem type."""
        from .train.metrics import get_metric, metrics_for

        self._check_fitted()
        df, base = read_table(data, base_dir)
        if self.label not in df.columns:
            raise SchemaError(f"evaluate needs the label column '{self.label}' in the table.")
        df = df[df[self.label].notna()]
        y = self._targets(df)
        out, _ = self._outputs(df, base)
        w = self._row_weights(df, "the table") if self.sample_weight in df.columns else None
        names = metrics or [self.metric_] + [m for m in metrics_for(self.schema_.problem_type) if m != self.metric_]
        return {m: get_metric(m, self.schema_.problem_type).fn(y, out, w) for m in names}

    def extract_embedding(self, data: TableLike, base_dir: Optional[str] = None) -> np.ndarray:
        """The fused feature vector of each row, (n_rows, hidden), before the head; for an
        ensemble, that of its network member with the largest weight."""
        self._check_fitted()
        if getattr(self, "members_", None):
            nets = [m for m in self.members_ if m.kind == "network"]
            if not nets:
                raise SchemaError("This ensemble has no network member, so rows have no embedding.")
            return max(nets, key=lambda m: m.weight).model.extract_embedding(data, base_dir)
        return self._run(data, base_dir, "features")[0]

    def modality_importance(self, data: TableLike, base_dir: Optional[str] = None, groups=None, repeats: int = 5,
                            seed: int = 0, method: str = "missing") -> pd.DataFrame:
        """The drop in the eval metric when each modality (or column group) is taken away; see
        :func:`mmtricks.explain.modality_importance`."""
        from .explain import modality_importance

        return modality_importance(self, data, base_dir=base_dir, groups=groups, repeats=repeats, seed=seed,
                                   method=method)

    def leaderboard(self, data: Optional[TableLike] = None, base_dir: Optional[str] = None) -> pd.DataFrame:
        """One row per trained model (each pool member, then the ensemble): validation score,
        ensemble weight, fit facts; with ``data`` (labelled) also its test score and the
        seconds it took to predict it."""
        self._check_fitted()
        rows = [self._network_row(self.fit_info_, self.preset, 1.0)] if not getattr(self, "members_", None) else [
            {**(self._network_row(m.model.fit_info_, m.name, m.weight) if m.kind == "network" else
                {"model": m.name, "kind": m.kind, "val_score": m.val_score, "weight": m.weight}),
             "fit_seconds": m.fit_seconds} for m in self.members_]
        if getattr(self, "members_", None):
            rows.append({"model": "ensemble", "kind": self.fit_info_["ensemble"]["method"],
                         "val_score": self.fit_info_["val_score"], "weight": None,
                         "fit_seconds": self.fit_info_.get("fit_seconds")})
        board = pd.DataFrame(rows)
        board.insert(1, "eval_metric", self.metric_)
        if data is not None:
            board["test_score"], board["predict_seconds"] = self._test_scores(data, base_dir)
        return board

    @staticmethod
    def _network_row(info: dict, name: str, weight: float) -> dict:
        diagnosis = info.get("diagnosis", {})
        return {"model": name, "kind": "network", "val_score": info["val_score"], "weight": weight,
                "fit_seconds": info.get("fit_seconds"), "soup": info["soup"]["method"],
                "soup_members": len(info["soup"]["members"]), "steps": info.get("steps"), "epochs": info["epochs"],
                "stopped": info["stopped"], "collapsed": diagnosis.get("collapsed"),
                "still_improving": diagnosis.get("still_improving")}

    def _test_scores(self, data: TableLike, base_dir: Optional[str]) -> tuple[list, list]:
        """Per leaderboard row: the eval metric on ``data`` and the seconds its outputs took."""
        from .ensemble.selection import blend
        from .schema import validate_frame
        from .train.metrics import get_metric

        df, base = read_table(data, base_dir)
        df = df[df[self.label].notna()]
        y, metric = self._targets(df), get_metric(self.metric_, self.schema_.problem_type)
        members = getattr(self, "members_", None)
        if not members:
            start = time.time()
            out = self.predict_outputs(df, base)
            return [metric.fn(y, out)], [round(time.time() - start, 3)]
        features = validate_frame(df, self.schema_)
        outputs, seconds = [], []
        for m in members:
            start = time.time()
            outputs.append(m.outputs(features, base))
            seconds.append(round(time.time() - start, 3))
        used = [j for j, m in enumerate(members) if m.weight > 0]
        ensemble = blend([outputs[j] for j in used], [members[j].weight for j in used])
        scores = [metric.fn(y, o) for o in outputs] + [metric.fn(y, ensemble)]
        return scores, seconds + [round(sum(seconds[j] for j in used), 3)]

    def export(self, path: str, format: str = "onnx") -> str:
        """Write a torch-free serving export to folder ``path``: each network as ONNX, the other
        members and all preprocessing as JSON (see :mod:`mmtricks.export`); predict from it with
        :func:`mmtricks.serving.load_export`."""
        from .export import export_predictor

        return export_predictor(self, os.fspath(path), format=format)

    # ------------------------------------------------------------ save/load
    def save(self, path: str) -> str:
        """Write the fitted model to folder ``path`` (JSON + safetensors), atomically.

        In a fit of several processes (DDP), only rank zero writes; the others return the path.
        """
        from .persist import save_predictor

        self._check_fitted()
        if _rank() != 0:
            return os.path.abspath(os.fspath(path))
        return save_predictor(self, os.fspath(path))

    @classmethod
    def load(cls, path: str, verbosity: int = 1) -> "MultimodalPredictor":
        """Load a folder written by :meth:`save`. Never unpickles, never runs code from it."""
        from .persist import load_predictor

        return load_predictor(cls, os.fspath(path), verbosity)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "model_") else "not fitted"
        return f"MultimodalPredictor(label={self.label!r}, preset={self.preset!r}, {state})"


def _rank() -> int:
    """This process's rank in a torch.distributed group (0 without one)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    return dist.get_rank() if dist is not None and dist.is_available() and dist.is_initialized() else 0

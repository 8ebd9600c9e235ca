"""One network trained on a fixed split: the loop, the collapse check and its one retry.

Used by :class:`~mmtricks.predictor.MultimodalPredictor` for a single network and for
each network member of a pool.
"""
from __future__ import annotations

import os
import time

import numpy as np
class NetworkFit:
    """One network trained on a fixed split: the fit, its diagnosis against the constant
    predictor, and the one documented recovery retry when it collapsed (train/diagnose.py)."""

    def __init__(self, predictor, schema, metric, pre, train_enc, val_enc, train_loader, val_loader, deadline,
                 require_floor: bool = False, val_weights=None):
        from .diagnose import constant_outputs

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
        self.val_weights = val_weights
        self.constant_score = float(metric.fn(self.val_labels, constant, val_weights))
        self.diagnosis: dict = {}
        self.require_floor = require_floor  # a pool member: stop at once if the time share cannot hold the floor

    def _train(self, model, cfg, run_dir: str, resume: bool):
        from .diagnose import class_weights, diagnose
        from .loop import train

        weights = None
        if cfg.optim.class_weights == "balanced" and not self.regression:
            weights = class_weights(self.train_labels, self.n_classes)
        result = train(model, *self.loaders, self.val_labels, cfg=cfg, problem_type=self.schema.problem_type,
                       metric=self.metric, run_dir=run_dir,
                       time_budget=self.deadline - time.time() if self.deadline else None, seed=self.p.seed,
                       quiet=self.p.verbosity < 2, log=lambda m: self.p._log(1, m),
                       resumable=self.p.work_dir is not None, resume=resume, to_metric_units=self.to_units,
                       class_weights=weights, require_floor=self.require_floor, val_weights=self.val_weights)
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

        from ..config import apply_overrides
        from .diagnose import recovery_overrides

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

"""Fit a pool for a predictor: members on the shared split, locally or on Ray, then their weights.

``fit_ensemble`` is what ``MultimodalPredictor.fit`` runs when a pool is asked for; a network
member is a child predictor that trains with ``_fit_network`` on the same split.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Optional

import numpy as np


def fit_ensemble(predictor, split, cfg, entries, deadline: Optional[float], resume: bool) -> None:
    """Train the pool's members on ``split`` for ``predictor``, weigh them, and set its
    fitted attributes (``members_``, ``fit_info_`` ...)."""
    import torch

    from ..config import resolve
    from ..data.processors import LabelProcessor
    from ..data.split import train_valid_split
    from .embeddings import FrozenEmbedder
    from .pool import Member, fit_pool, weigh

    schema, metric = split.schema, split.metric
    labels = LabelProcessor(schema.problem_type, schema.classes)
    holdout = None
    if cfg.ensemble.weights_split == "holdout":  # weights fitted on rows that drove no early stopping
        val_df, holdout = train_valid_split(split.val_df, predictor.label, schema.problem_type != "regression",
                                            predictor.seed, 0.5)
        split = predictor._with_weights(type(split)(schema, metric, split.train_df, val_df, split.base, split.val_base))
    y_train = labels.targets(split.train_df[predictor.label], predictor.label)
    y_val = labels.targets(split.val_df[predictor.label], predictor.label)
    overrides = {k: v for k, v in (predictor.overrides or {}).items() if not str(k).startswith("ensemble.")}

    def fit_network(entry, share):
        child = type(predictor)(predictor.label, schema.problem_type, metric.name, entry.preset, overrides,
                                seed=predictor.seed, verbosity=predictor.verbosity,
                                work_dir=os.path.join(predictor.work_dir, entry.name) if predictor.work_dir else None)
        start = time.time()
        child._fit_network(split, resolve(entry.preset, overrides), None if share is None else start + share,
                           resume, require_floor=share is not None)
        child.fit_info_["fit_seconds"] = round(time.time() - start, 2)
        return Member(entry.name, "network", child, child.val_outputs_, child.fit_info_["val_score"],
                      child.fit_info_["fit_seconds"])

    fit_parallel = None if cfg.ensemble.executor != "ray" else \
        (lambda networks: _fit_on_ray(predictor, networks, split, cfg, overrides, deadline, resume))

    members = fit_pool(entries, schema=schema, train_df=split.train_df, val_df=split.val_df, y_train=y_train,
                       y_val=y_val, metric=metric, seed=predictor.seed, deadline=deadline, fit_network=fit_network,
                       log=lambda m: predictor._log(1, m), threads=torch.get_num_threads(), fit_parallel=fit_parallel,
                       train_weights=split.train_weights, val_weights=split.val_weights,
                       make_embedder=lambda: FrozenEmbedder.fit(schema, cfg, split.train_df, split.base, predictor.seed,
                                                                lambda m: predictor._log(1, m)),
                       base_dir=split.base, val_base=split.val_base, overrides=overrides)
    val_weights = split.val_weights
    if holdout is not None:
        y_val = labels.targets(holdout[predictor.label], predictor.label)
        val_weights = predictor._row_weights(holdout, "the held-out rows") if predictor.sample_weight in holdout else None
        for m in members:
            m.val_outputs = m.outputs(holdout, split.val_base)
    score, alternatives = weigh(members, y_val, metric, cfg.ensemble.method, cfg.ensemble.rounds, val_weights)
    refit = _refit_full(predictor, members, split, overrides, deadline, labels) if cfg.ensemble.refit_full else []
    predictor.config_, predictor.schema_, predictor.metric_, predictor.members_ = cfg, schema, metric.name, members
    predictor.fit_info_ = {
        "val_score": score, "preset": predictor.preset, "n_train": len(split.train_df), "n_val": len(split.val_df),
        "ensemble": {"method": cfg.ensemble.method, "weights_split": cfg.ensemble.weights_split,
                     "n_weights_rows": len(y_val), "refit_full": refit,
                     "alternatives": {k: [round(w, 6) for w in v] for k, v in alternatives.items()}},
        "members": [{"name": m.name, "kind": m.kind, "weight": m.weight, "val_score": m.val_score,
                     "fit_seconds": m.fit_seconds} for m in members],
        "embeddings": _embedding_facts(members),
    }
    predictor._log(1, "ensemble: " + ", ".join(f"{m.name} {m.weight:.2f}" for m in members if m.weight)
                 + f"; validation {metric.name} {score:.4f}")


def _embedding_facts(members) -> Optional[dict]:
    """Rows, values a row and seconds of the pool's shared frozen embeddings (None when unused)."""
    for m in members:
        shared = getattr(m.model, "shared_", None)
        if shared is not None:
            return {"rows": len(shared.train) + (0 if shared.val is None else len(shared.val)), "dim": shared.embedder.dim,
                    "encoders": list(shared.embedder.encoders), "seconds": shared.seconds}
    return None


def _refit_full(predictor, members, split, overrides, deadline, labels) -> list[str]:
    """Refit each member with a weight on train + validation, with the size it had (LightGBM's
    rounds, a network's steps and batch); weights stay. Returns the names refit."""
    import pandas as pd

    from ..config import resolve
    from ..data.split import SharedSplit
    from ..schema.infer import resolve_image_path
    from .classic import CLASSIC_MEMBERS
    from .embeddings import SharedEmbeddings

    schema, label = split.schema, predictor.label
    val = split.val_df.copy()
    for col in schema.columns("image"):  # paths of the two tables may resolve against other folders
        val[col] = val[col].map(lambda v: resolve_image_path(v, split.val_base))
    full = pd.concat([split.train_df, val], ignore_index=True)
    weights = None
    if split.train_weights is not None:
        raw = predictor._row_weights(full, "the training and validation rows") if predictor.sample_weight in val \
            else np.concatenate([split.train_weights, np.ones(len(val))])
        weights = raw / raw.mean()
    y_full = labels.targets(full[label], label)
    done = []
    for m in members:
        if m.weight <= 0:
            continue
        if deadline is not None and deadline - time.time() < m.fit_seconds:
            predictor._log(1, f"refit_full: no time left to refit {m.name}; kept as fitted.")
            continue
        start = time.time()
        if m.kind == "network":
            plan = m.model.fit_info_["plan"]
            pinned = {**overrides, "optim.max_steps": plan["steps"], "optim.batch_size": plan["effective_batch"],
                      "optim.patience": 10**9, "optim.soup": "best", "optim.top_k": 1}
            child = type(predictor)(label, schema.problem_type, split.metric.name, m.model.preset, pinned,
                                    seed=predictor.seed, verbosity=predictor.verbosity)
            # the validation rows are in training now: their score only picks the (last) checkpoint
            child._fit_network(SharedSplit(schema, split.metric, full, split.val_df, split.base, split.val_base,
                                           weights, split.val_weights), resolve(m.model.preset, pinned), None, False)
            m.model = child
        else:
            kwargs = {"rounds": m.model.rounds_used, "threads": m.model.threads} if m.kind != "linear" else {}
            extra = {}
            if m.kind == "lightgbm_embed":  # the rows' embeddings made for the fit, in train + validation order
                shared = m.model.shared_
                extra = {"embeddings": SharedEmbeddings(shared.embedder, np.vstack([shared.train, shared.val]), None,
                                                        shared.seconds), "base_dir": split.base}
            m.model = CLASSIC_MEMBERS[m.kind](schema, seed=predictor.seed, **kwargs).fit(
                full, y_full, None, None, sample_weight=weights, **extra)
        m.fit_seconds = round(m.fit_seconds + time.time() - start, 2)
        done.append(m.name)
    predictor._log(1, f"refit_full: {done} refit on {len(full)} train + validation rows.")
    return done


def _fit_on_ray(predictor, networks, split, cfg, overrides, deadline, resume) -> list:
    """Each network member in a Ray task (ensemble/executor.py); Members or FloorUnreachable."""
    from ..train.plan import FloorUnreachable
    from .executor import fit_remote, start_ray
    from .pool import Member

    run_dir = predictor.work_dir or tempfile.mkdtemp(prefix="mmtricks-pool-")
    os.makedirs(run_dir, exist_ok=True)
    e = cfg.ensemble
    start_ray(e.ray_address, None if e.ray_address else max(e.cpus_per_member, os.cpu_count() or 1), run_dir)
    tasks = [{"label": predictor.label, "preset": entry.preset, "overrides": overrides, "seed": predictor.seed,
              "split": split, "deadline": deadline, "resume": resume, "verbosity": min(predictor.verbosity, 1),
              "work_dir": os.path.join(predictor.work_dir, entry.name) if predictor.work_dir else None,
              "out": os.path.join(run_dir, "members", entry.name)} for entry in networks]
    try:
        results = fit_remote(tasks, member_task, cpus=e.cpus_per_member, gpus=e.gpus_per_member)
        out = []
        for entry, r in zip(networks, results):
            if "dropped" in r:
                out.append(FloorUnreachable(*r["dropped"]))
                continue
            child = type(predictor).load(r["out"], verbosity=predictor.verbosity)
            out.append(Member(entry.name, "network", child, r["val_outputs"], child.fit_info_["val_score"],
                              child.fit_info_["fit_seconds"]))
        return out
    finally:
        if predictor.work_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def member_task(task: dict) -> dict:
    """A network pool member fitted in another process (a Ray task): saved to ``task['out']``."""
    from ..config import resolve
    from ..train.plan import FloorUnreachable

    split = task["split"]
    from ..predictor import MultimodalPredictor

    child = MultimodalPredictor(task["label"], split.schema.problem_type, split.metric.name, task["preset"],
                                task["overrides"], seed=task["seed"], verbosity=task["verbosity"],
                                work_dir=task["work_dir"])
    start = time.time()
    try:
        child._fit_network(split, resolve(task["preset"], task["overrides"]), task["deadline"], task["resume"],
                           require_floor=task["deadline"] is not None)
    except FloorUnreachable as exc:
        return {"dropped": [exc.seconds_per_step, exc.min_steps, exc.budget]}
    child.fit_info_["fit_seconds"] = round(time.time() - start, 2)
    child.save(task["out"])
    return {"out": task["out"], "val_outputs": child.val_outputs_}

"""``OUT/constants.json``: the constant predictor's test score per (profile, data set, seed).

The report reads it to flag collapsed fits: a run whose test score is no better than the
constant predictor's on the same rows (:func:`mmtricks.bench.scoring.constant_score`) learned
nothing the label counts do not say, whoever made it (an mmtricks preset or a peer). Such a
run is listed and left out of the score tables, never read as a result. The labels do not
depend on the missingness ratios, so one score serves every ratio of a seed.

The runner records the score of each (data set, seed) it runs; ``mmtricks bench report DIR
--data-dir D`` fills in the ones a results file made before this record lacks.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

CONSTANTS = "constants.json"


def constant_key(profile: str, dataset: str, seed: int) -> str:
    return f"{profile}|{dataset}|{int(seed)}"


def read_constants(out_dir: str) -> dict[str, dict[str, Any]]:
    """Key (:func:`constant_key`) -> ``{"metric", "constant_score", "n_train", "n_test"}``; {} without a file."""
    path = os.path.join(out_dir, CONSTANTS)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return data if isinstance(data, dict) else {}


def record_constants(out_dir: str, profile: Any, datasets: Iterable[Any], seeds: Iterable[int]) -> int:
    """Compute and store the constant predictor's score for each (data set, seed) not yet stored; return how
    many were added. ``datasets``: :class:`~mmtricks.bench.datasets.BenchDataset` objects."""
    from .datasets import subsample_train
    from .scoring import constant_score

    known = read_constants(out_dir)
    added = 0
    for ds in datasets:
        test = ds.test[ds.label].dropna()
        for seed in seeds:
            key = constant_key(profile.name, ds.name, seed)
            if key in known:
                continue
            train = subsample_train(ds, profile.max_train_rows, seed)[ds.label]
            known[key] = {"metric": ds.metric, "n_train": int(len(train)), "n_test": int(len(test)),
                          "constant_score": constant_score(train, test, ds.problem_type, ds.metric)}
            added += 1
    if added:
        os.makedirs(out_dir, exist_ok=True)
        tmp = os.path.join(out_dir, CONSTANTS + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(known.items())), fh, indent=1)
        os.replace(tmp, os.path.join(out_dir, CONSTANTS))
    return added

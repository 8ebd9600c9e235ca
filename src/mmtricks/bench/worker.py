"""One bench run in its own process: ``python -m mmtricks.bench.worker --request request.json``.

Fits one config (an mmtricks preset, the pool preset ``best`` included, or the in-process
``linear`` peer) on the request's train file once, scores every test file of the request, and
writes the outcome as JSON to the request's ``result_path``. Running each fit in a child
process makes peak memory a per-run figure and keeps a crash from taking the bench down.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Optional


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and its waited-for children), in MiB."""
    import resource

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / scale, 1)


def _device() -> str:
    """The GPU's name when the run used torch and one is visible, else 'cpu'."""
    torch = sys.modules.get("torch")  # the linear peer never imports torch: don't load it for this
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def fit_summary(fit_info: dict[str, Any], member_infos: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, Any]:
    """The compact record of how a predictor's fit went, for a result line.

    ``steps``, ``epochs``, ``stopped``, ``train_seconds``, the step plan (``fit_info["plan"]``,
    None when the predictor does not record one), the learning rate at the last validation
    (``last_lr``), the number of validations (``n_validations``) and ``seconds_per_step``
    (train seconds over optimizer steps; None without steps). The per-validation history
    itself is left out.

    A model pool (preset ``best``, ``pool=[...]``: ``fit_info`` has ``members`` and ``ensemble``
    instead of a history and a soup) adds ``ensemble`` (method, weights split, rows the weights
    were fitted on), ``val_score`` (the ensemble's) and ``members``: per member its ``name``,
    ``kind``, ``weight``, ``val_score`` and ``fit_seconds``, and for a network member whose own
    fit info is in ``member_infos`` (name -> fit info) also its ``steps``, ``epochs``,
    ``stopped``, ``seconds_per_step`` and ``floor_reached`` (None without a plan). The pool's
    own ``steps`` and ``seconds_per_step`` stay None: its members' steps are not one fit's.
    """
    history = fit_info.get("history") or []
    steps, seconds = fit_info.get("steps"), fit_info.get("train_seconds")
    out = {
        "steps": steps, "epochs": fit_info.get("epochs"), "stopped": fit_info.get("stopped"),
        "train_seconds": seconds, "plan": fit_info.get("plan"),
        "last_lr": history[-1].get("lr") if history and isinstance(history[-1], dict) else None,
        "n_validations": len(history),
        "seconds_per_step": round(float(seconds) / steps, 4) if steps and seconds is not None else None,
    }
    if isinstance(fit_info.get("members"), list):
        members = []
        for member in fit_info["members"]:
            row = {k: member.get(k) for k in ("name", "kind", "weight", "val_score", "fit_seconds")}
            child = (member_infos or {}).get(str(member.get("name")))
            if member.get("kind") == "network" and isinstance(child, dict):
                facts = fit_summary(child)
                plan = facts["plan"] if isinstance(facts["plan"], dict) else {}
                row.update(steps=facts["steps"], epochs=facts["epochs"], stopped=facts["stopped"],
                           seconds_per_step=facts["seconds_per_step"], floor_reached=plan.get("floor_reached"))
            members.append(row)
        out.update(ensemble=fit_info.get("ensemble"), val_score=fit_info.get("val_score"), members=members,
                   embeddings=fit_info.get("embeddings"))
    return out


def member_fit_infos(predictor: Any) -> dict[str, dict[str, Any]]:
    """Pool member name -> its network's own fit info (empty for one network or classic members)."""
    out = {}
    for member in getattr(predictor, "members_", None) or []:
        child = getattr(member, "model", None)
        if getattr(member, "kind", None) == "network" and isinstance(getattr(child, "fit_info_", None), dict):
            out[str(member.name)] = child.fit_info_
    return out


def _fit(req: dict[str, Any], train):
    """Fit the request's config; return (fit facts, classes-or-None, predict function, fit summary or None,
    member outputs function or None: a pool's ``df -> {member name: outputs}``)."""
    if req["config"] == "linear":
        from .linear import LinearPeer

        peer = LinearPeer(req["label"], req["problem_type"], req["text_columns"], req["tabular_columns"],
                          seed=req["seed"]).fit(train)
        return {"features": peer.columns_}, peer.classes, peer.outputs, None, None
    from ..predictor import MultimodalPredictor

    types = {c: "image" for c in req["image_columns"]}
    types.update({c: "text" for c in req["text_columns"]})
    predictor = MultimodalPredictor(
        label=req["label"], problem_type=req["problem_type"], eval_metric=req["metric"], preset=req["config"],
        overrides=req.get("overrides") or None, time_limit=req.get("time_limit"), seed=req["seed"],
        column_types=types or None, verbosity=1,
    )
    predictor.fit(train, base_dir=req["base_dir"])
    info = {k: v for k, v in predictor.fit_info_.items() if k not in ("history", "plan")}  # plan: in the summary
    summary = fit_summary(predictor.fit_info_, member_fit_infos(predictor))
    members = None
    if getattr(predictor, "members_", None):
        def members(df):
            return {m.name: m.outputs(df, req["base_dir"]) for m in predictor.members_}
    if req["problem_type"] == "regression":
        def predict(df):
            return predictor.predict(df, base_dir=req["base_dir"]).to_numpy()
        return info, [], predict, summary, members

    def predict_proba(df):
        return predictor.predict_proba(df, base_dir=req["base_dir"]).to_numpy()
    return info, list(predictor.schema_.classes), predict_proba, summary, members


def run_request(req: dict[str, Any]) -> dict[str, Any]:
    """Fit once, score each test file; return the result object (see module doc)."""
    import pandas as pd

    from .results import versions
    from .scoring import score_outputs

    if req.get("threads"):
        import torch

        torch.set_num_threads(int(req["threads"]))
    train = pd.read_parquet(req["train_path"])
    start = time.perf_counter()
    info, classes, predict, summary, members = _fit(req, train)
    fit_seconds = time.perf_counter() - start
    tests = []
    for item in req["tests"]:
        test = pd.read_parquet(item["path"])
        test = test[test[req["label"]].notna()]
        features = test.drop(columns=[req["label"]])
        start = time.perf_counter()
        outputs = predict(features)
        seconds = time.perf_counter() - start
        scored = score_outputs(test[req["label"]], outputs, classes, req["problem_type"], req["metric"])
        tests.append({"missing_test": item["missing_test"], "n_test": len(test), "predict_seconds": round(seconds, 3),
                      "rows_per_s": round(len(test) / max(seconds, 1e-9), 2), **scored})
        if members is not None and not item["missing_test"] and summary and summary.get("members"):
            # each pool member alone on the same test rows (after the timed ensemble prediction),
            # and the uniform average of every member (the selection's plain baseline)
            from ..ensemble.selection import blend

            alone = list(members(features).values())
            for row, out in zip(summary["members"], alone):
                row["test_score"] = score_outputs(test[req["label"]], out, classes, req["problem_type"],
                                                  req["metric"])["score"]
            summary["uniform_test_score"] = score_outputs(
                test[req["label"]], blend(alone, [1.0 / len(alone)] * len(alone)), classes, req["problem_type"],
                req["metric"])["score"]
            # every selection method's weights, fitted on the same rows as the chosen one, on the test rows
            alternatives = (summary.get("ensemble") or {}).get("alternatives") or {}
            summary["selection_test_scores"] = {
                name: score_outputs(test[req["label"]], blend(alone, weights), classes, req["problem_type"],
                                    req["metric"])["score"] for name, weights in alternatives.items()}
    return {"fit_seconds": round(fit_seconds, 3), "n_train": len(train), "tests": tests, "fit_info": info,
            "fit_summary": summary, "versions": versions(), "device": _device(), "peak_rss_mb": peak_rss_mb()}


def main(argv: Any = None) -> int:
    """Entry point: read the request, run it, write the result (exit 1 with a traceback on error)."""
    p = argparse.ArgumentParser(prog="python -m mmtricks.bench.worker", description="Run one bench request.")
    p.add_argument("--request", required=True, help="request JSON written by the bench runner")
    args = p.parse_args(argv)
    with open(args.request, encoding="utf-8") as fh:
        req = json.load(fh)
    result = run_request(req)
    tmp = req["result_path"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=str)
    os.replace(tmp, req["result_path"])
    print(f"bench worker: done, result in {req['result_path']}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Helpers shared by the harness tests: a small data set folder and a bench command."""
import json
import os

from mmtricks.cli import main

from conftest import make_table

EMOJI = os.path.join(os.path.dirname(__file__), "..", "src", "mmtricks", "demo", "data", "emoji")
SRC = os.path.join(os.path.dirname(__file__), "..", "src", "mmtricks")
PEER_SCRIPT_DIR = os.path.join(os.path.dirname(__file__), "..", "bench", "peers")


def _write_set(folder, name="syn", n_train=60, n_test=30, kinds=("numerical", "categorical", "text", "image"),
               problem_type="multiclass", manifest=True):
    """A data set folder (train/test parquet, relative image paths); returns its entry."""
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    df = make_table(path, n=n_train + n_test, kinds=kinds, problem_type=problem_type, relative=True)
    df.iloc[:n_train].to_parquet(os.path.join(path, "train.parquet"))
    df.iloc[n_train:].to_parquet(os.path.join(path, "test.parquet"))
    entry = {"name": name, "label": "y", "problem_type": problem_type,
             "metric": "r2" if problem_type == "regression" else "accuracy",
             "image_columns": ["img"] if "image" in kinds else [], "text_columns": ["txt"] if "text" in kinds else []}
    if manifest:
        with open(os.path.join(folder, "manifest.json"), "w") as fh:
            json.dump([{**entry, "path": name}], fh)
    else:
        with open(os.path.join(path, "dataset.json"), "w") as fh:
            json.dump(entry, fh)
    return entry


# ----------------------------------------------------------------------------- data sets


def _bench(data, out, *extra):
    # No contention check: tests share the machine, and a flagged run would be run twice (tested on its own below).
    return main(["bench", "--data-dir", str(data), "--out", str(out), "--seeds", "0", "--threads", "1",
                 "--no-contention-check", *extra])

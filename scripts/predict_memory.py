"""Peak memory of predicting on a large frame: images are read lazily, batch by batch.

Fits a tiny model on 200 rows (image + text + tabular), then predicts on N rows whose
image paths point at files on disk, and prints the peak resident memory before and
after prediction (ru_maxrss) and the growth per 1,000 rows.

    python scripts/predict_memory.py --rows 100000
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    import pandas as pd
    import torch

    from conftest import make_table
    from mmtricks import MultimodalPredictor

    torch.set_num_threads(1)
    folder = tempfile.mkdtemp(prefix="mmtricks-mem-")
    train = make_table(folder, n=200, kinds=("numerical", "categorical", "text", "image"))
    p = MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1}, verbosity=0).fit(train)
    big = pd.concat([train] * (args.rows // len(train) + 1), ignore_index=True).iloc[: args.rows]
    # every row names its own file (hard links: distinct paths, no extra disk)
    paths = []
    for i in range(args.rows):
        dst = os.path.join(folder, "images", f"r{i}.png")
        os.link(big.loc[i, "img"], dst)
        paths.append(dst)
    big["img"] = paths
    before = peak_mb()
    t = time.time()
    pred = p.predict(big)
    seconds = time.time() - t
    after = peak_mb()
    print(f"rows {len(pred)}; peak RSS before predict {before:.0f} MB, after {after:.0f} MB; "
          f"growth {after - before:.0f} MB ({(after - before) / len(pred) * 1000:.2f} MB per 1,000 rows); "
          f"{len(pred) / seconds:.0f} rows/s")


if __name__ == "__main__":
    main()

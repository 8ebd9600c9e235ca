"""`mmtricks demo`: train on the shipped emoji data set (image + text + tabular), offline."""
from __future__ import annotations

import json
import os
import time
from importlib import resources
from typing import Optional

# Short texts and few epochs: the demo must finish in a few minutes on a laptop CPU. The image
# size comes from the data (the emoji are 64 px, so 64 instead of the backbone's 224).
DEMO_OVERRIDES = {
    "data.text_max_length": 32,
    "optim.batch_size": 32,
    "optim.micro_batch_size": 32,
    "optim.max_epochs": 10,
    "optim.lr": 3e-4,
}


def demo_data_dir() -> str:
    """Folder of the shipped emoji data set (train.parquet, test.parquet, images/)."""
    return str(resources.files("mmtricks") / "demo" / "data" / "emoji")


def run_demo(out: str = "mmtricks-demo-model", time_limit: Optional[float] = 240, preset: str = "default",
             overrides: Optional[dict] = None, verbosity: int = 2) -> dict:
    """Fit, evaluate on the test split, save; return the scores."""
    import pandas as pd

    from ..predictor import MultimodalPredictor

    folder = demo_data_dir()
    with open(os.path.join(folder, "dataset.json")) as f:
        meta = json.load(f)
    train = pd.read_parquet(os.path.join(folder, "train.parquet"))
    test = pd.read_parquet(os.path.join(folder, "test.parquet"))
    print(f"mmtricks demo: {meta['name']} ({', '.join(meta['modalities'])}), predict '{meta['label']}' "
          f"from {len(train)} train rows; test on {len(test)} rows. Data: {folder}")
    start = time.time()
    predictor = MultimodalPredictor(label=meta["label"], preset=preset,
                                    overrides={**DEMO_OVERRIDES, **(overrides or {})},
                                    time_limit=time_limit, verbosity=verbosity)
    predictor.fit(train, base_dir=folder)
    scores = predictor.evaluate(test, base_dir=folder)
    path = predictor.save(out)
    val = predictor.fit_info_["val_score"]
    print(f"validation {predictor.metric_}: {val:.4f}")
    print("test scores: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    print(f"model saved to {path} ({time.time() - start:.0f}s in all); "
          f"try: mmtricks evaluate --model {path} --data {os.path.join(folder, 'test.parquet')}")
    return {"validation": val, "test": scores, "path": path}

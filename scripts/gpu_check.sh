#!/usr/bin/env bash
# Train on the GPU once and print throughput: the covid data set (image + text + tabular),
# default preset, mixed precision (bf16 where supported). Run on a machine with a CUDA GPU
# from the repository root, with ../shared/data present:
#   bash scripts/gpu_check.sh [DATA_DIR] [TIME_LIMIT_S]
# Prints time per epoch, rows/s in training, peak GPU memory and the test score.
set -euo pipefail
DATA=${1:-../shared/data}
LIMIT=${2:-400}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -e .
fi
.venv/bin/python - "$DATA" "$LIMIT" <<'PY'
import sys, time, torch
import pandas as pd
from mmtricks import MultimodalPredictor

data, limit = sys.argv[1], float(sys.argv[2])
assert torch.cuda.is_available(), "no CUDA device visible"
print("device:", torch.cuda.get_device_name(0))
train = pd.read_parquet(f"{data}/covid/train.parquet")
test = pd.read_parquet(f"{data}/covid/test.parquet")
torch.cuda.reset_peak_memory_stats()
p = MultimodalPredictor(label="finding", time_limit=limit, verbosity=1,
                        overrides={"env.accelerator": "cuda", "env.num_workers": 4})
t = time.time()
p.fit(train, base_dir=f"{data}/covid")
info = p.fit_info_
epochs = max(info["epochs"], 1e-9)
print(f"precision: {'bf16-mixed' if torch.cuda.is_bf16_supported() else '16-mixed'}")
print(f"train seconds {info['train_seconds']:.1f}, epochs {info['epochs']}, "
      f"seconds/epoch {info['train_seconds'] / epochs:.1f}, "
      f"train rows/s {info['n_train'] * epochs / info['train_seconds']:.1f}")
print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
print("test:", p.evaluate(test, base_dir=f"{data}/covid"))
PY

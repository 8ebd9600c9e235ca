#!/usr/bin/env bash
# Train on the GPU once and print throughput: the covid data set (image + text + tabular),
# default preset, mixed precision (bf16 where supported). Run on a machine with a CUDA GPU
# from the repository root, with ../shared/data present:
#   bash scripts/gpu_check.sh [DATA_DIR] [TIME_LIMIT_S]
# Prints time per epoch, rows/s in training, peak GPU memory and the test score.
# Env PYTHON names an interpreter that already has the dependencies (with PYTHONPATH=src);
# without it the script makes .venv when missing. Env OVERRIDES adds config overrides as JSON,
# e.g. OVERRIDES='{"optim.micro_batch_size": 32}' (by default the micro batch and loader
# workers follow the GPU: train/loop.py, for_device).
set -euo pipefail
DATA=${1:-../shared/data}
LIMIT=${2:-400}
PY=${PYTHON:-.venv/bin/python}
if [ -z "${PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -e .
fi
"$PY" - "$DATA" "$LIMIT" <<'PY'
import json, os, sys, time, torch, transformers, timm
import pandas as pd
from mmtricks import MultimodalPredictor

data, limit = sys.argv[1], float(sys.argv[2])
assert torch.cuda.is_available(), "no CUDA device visible"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| transformers", transformers.__version__, "| timm", timm.__version__)
train = pd.read_parquet(f"{data}/covid/train.parquet")
test = pd.read_parquet(f"{data}/covid/test.parquet")
torch.cuda.reset_peak_memory_stats()
p = MultimodalPredictor(label="finding", time_limit=limit, verbosity=1,
                        overrides={"env.accelerator": "cuda", **json.loads(os.environ.get("OVERRIDES", "{}"))})
p.fit(train, base_dir=f"{data}/covid")
info = p.fit_info_
epochs = max(info["epochs"], 1e-9)
print("overrides:", os.environ.get("OVERRIDES", "none"))
from mmtricks.train.loop import resolve_precision
print("precision:", resolve_precision(p.config_.env))
print("micro batch:", p.config_.optim.micro_batch_size, "| loader workers:", p.config_.env.num_workers,
      "| effective batch:", info["plan"]["effective_batch"])
print(f"train seconds {info['train_seconds']:.1f}, epochs {info['epochs']}, "
      f"seconds/epoch {info['train_seconds'] / epochs:.1f}, "
      f"train rows/s {info['n_train'] * epochs / info['train_seconds']:.1f}")
print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
print("test:", p.evaluate(test, base_dir=f"{data}/covid"))
times = []
for _ in range(3):
    t = time.time()
    p.predict(test, base_dir=f"{data}/covid")
    times.append(time.time() - t)
print(f"predict rows/s (median of 3 passes over {len(test)} test rows): "
      f"{len(test) / sorted(times)[1]:.1f}")

# Where the training time goes: the input pipeline alone, then the model alone on one batch.
from mmtricks.data.dataset import make_loader
from mmtricks.schema import validate_frame
encoded = p.preprocessor_.encode(validate_frame(train, p.schema_), f"{data}/covid", with_labels=False)
workers = p.config_.env.num_workers
loader = make_loader(p._dataset(p.preprocessor_, encoded), p.config_.optim.micro_batch_size, False, workers)
for _ in range(2):  # the first pass starts the workers
    t = time.time()
    batches = list(loader)
    took = time.time() - t
print(f"input pipeline alone ({workers} workers, second pass): {len(train) / took:.1f} rows/s")
model = p.model_.cuda().train()
batch = {k: v.cuda() for k, v in batches[0].items()}
step_times = []
for _ in range(25):
    torch.cuda.synchronize(); t = time.time()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(batch)["logits"].float().pow(2).mean()
    loss.backward()
    torch.cuda.synchronize(); step_times.append(time.time() - t)
    model.zero_grad(set_to_none=True)
step = sorted(step_times[5:])[10]
n = len(next(iter(batch.values())))
print(f"model alone, forward+backward of one batch of {n} (bf16, median of 20): "
      f"{step * 1000:.1f} ms = {n / step:.0f} rows/s")
PY

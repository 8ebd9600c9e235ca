"""Latency of a model's serving export (onnxruntime + numpy) beside the torch path.

Loads a model folder written by ``MultimodalPredictor.save`` and exports it (``--export``,
default a temporary folder); then each side runs in a fresh process of its own (the export's
imports only ``mmtricks.serving``, no torch), predicts ``--rows`` rows (the two outputs are
compared) and is measured the same way:

- single-row latency: median (and p95) over ``--repeats`` calls after ``--warmup`` calls,
  each a one-row DataFrame (the table's rows in turn);
- rows/s of one call on ``--rows`` rows (the table's rows repeated when it has fewer), after
  the check call on the same rows and an 8-row warm-up;
- the time to load (``MultimodalPredictor.load`` / ``load_export``; imports before it not counted).

The torch path is ``predictor.predict_proba`` (``predict`` for regression); the export's
is ``load_export(DIR, threads=N).predict_proba``. Both run with ``--threads`` threads (torch
``set_num_threads``; ONNX Runtime intra-op threads, one inter-op). Plain lines on stdout,
and one ``EXPORT_LATENCY_JSON {...}`` line::

    mmtricks demo --out /tmp/demo_model
    python scripts/export_latency.py /tmp/demo_model --data src/mmtricks/demo/data/emoji/test.parquet

Relative image paths resolve against ``--base-dir`` (default: the table's folder).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def _single_row(fn, df, warmup: int, repeats: int) -> dict:
    for i in range(warmup):
        fn(df.iloc[[i % len(df)]])
    times = []
    for i in range(repeats):
        row = df.iloc[[i % len(df)]]
        t = time.perf_counter()
        fn(row)
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))]}


def _throughput(fn, df) -> dict:
    fn(df.iloc[:8])  # warm-up
    t = time.perf_counter()
    fn(df)
    seconds = time.perf_counter() - t
    return {"rows": len(df), "seconds": seconds, "rows_per_s": len(df) / seconds}


def _measure(args) -> dict:
    """One side, in this (fresh) process: 'torch' loads the saved model, 'export' only mmtricks.serving."""
    import sys

    import numpy as np
    import pandas as pd

    base = args.base_dir or os.path.dirname(os.path.abspath(args.data))
    df = pd.read_parquet(args.data) if args.data.endswith((".parquet", ".pq")) else pd.read_csv(args.data)
    rows = pd.concat([df] * (args.rows // len(df) + 1), ignore_index=True).iloc[:args.rows]
    t = time.perf_counter()
    if args.side == "torch":
        import torch

        torch.set_num_threads(args.threads)
        from mmtricks import MultimodalPredictor

        model = MultimodalPredictor.load(args.model, verbosity=0)
        regression = model.schema_.problem_type == "regression"
    else:
        from mmtricks.serving import load_export

        model = load_export(args.export, threads=args.threads)
        regression = model.problem_type == "regression"
    load_s = time.perf_counter() - t
    fn = (lambda d: model.predict(d, base_dir=base)) if regression else (lambda d: model.predict_proba(d, base_dir=base))
    out = np.asarray(fn(rows), dtype=np.float64)
    np.save(args.outputs, out)
    return {"load_seconds": load_s, **_single_row(fn, df, args.warmup, args.repeats), **_throughput(fn, rows),
            "torch_imported": "torch" in sys.modules}


def main(argv=None) -> int:
    import subprocess
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="saved model folder")
    ap.add_argument("--data", required=True, help="table to predict (CSV or Parquet)")
    ap.add_argument("--base-dir", help="folder relative image paths resolve against (default: the table's)")
    ap.add_argument("--export", help="export folder to write (default: a temporary one)")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--side", choices=["torch", "export"], help=argparse.SUPPRESS)  # a child's one side
    ap.add_argument("--outputs", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        print("MEASURE_JSON " + json.dumps(_measure(args)))
        return 0

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from mmtricks import MultimodalPredictor

    folder = args.export or tempfile.mkdtemp(prefix="mmtricks-export-")
    t = time.perf_counter()
    MultimodalPredictor.load(args.model, verbosity=0).export(folder)
    export_s = time.perf_counter() - t
    result = {"model": args.model, "data": args.data, "rows": args.rows, "threads": args.threads,
              "export_seconds": export_s,
              "export_mb": sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder) for f in fs) / 2**20}
    scratch = tempfile.mkdtemp(prefix="mmtricks-latency-")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    outputs = {}
    for side in ("torch", "export"):  # each in a fresh process: nothing of the other side (or the export) in it
        outputs[side] = os.path.join(scratch, f"{side}.npy")
        argv = [sys.executable, os.path.abspath(__file__), args.model, "--data", args.data, "--export", folder,
                "--rows", str(args.rows), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                "--threads", str(args.threads), "--side", side, "--outputs", outputs[side]]
        if args.base_dir:
            argv += ["--base-dir", args.base_dir]
        run = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        line = [x for x in run.stdout.splitlines() if x.startswith("MEASURE_JSON ")][-1]
        result[side] = json.loads(line[len("MEASURE_JSON "):])
    result["max_abs_diff"] = float(np.abs(np.load(outputs["torch"]) - np.load(outputs["export"])).max())
    print(f"export: {export_s:.1f} s, {result['export_mb']:.1f} MiB; max |difference| on {args.rows} rows: "
          f"{result['max_abs_diff']:.2e}")
    for side in ("torch", "export"):
        r = result[side]
        print(f"{side:7s} single row median {r['median_ms']:.2f} ms (p95 {r['p95_ms']:.2f}); "
              f"{r['rows_per_s']:.0f} rows/s on {r['rows']} rows; load {r['load_seconds']:.2f} s; "
              f"torch imported: {r['torch_imported']} ({args.threads} thread(s))")
    print("EXPORT_LATENCY_JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

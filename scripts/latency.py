"""Latency of a saved model: single-row predict, rows/s, load time, import time, size.

Measures a model folder written by ``MultimodalPredictor.save`` (it trains nothing):

- single-row ``predict`` median and p95 over ``--repeats`` calls, after one warm-up call
  (the row is the table's first one, passed as a one-row DataFrame);
- rows/s of one ``predict`` on ``--rows`` rows (the table's rows repeated when it has fewer);
- model load time: ``MultimodalPredictor.load`` in a fresh process (median of ``--loads``
  subprocesses; the heavy imports it triggers are part of it), the whole subprocess wall
  time (interpreter start, ``import mmtricks``, load), and a second load in this process
  (libraries already imported);
- ``import mmtricks`` time in a fresh interpreter: ``python -X importtime``'s cumulative
  figure, and ``python -c 'import mmtricks'`` minus a bare ``python -c pass`` (medians of 3);
- the saved model's size on disk.

Predictions run with torch's default thread count (printed as ``torch threads``); set
``OMP_NUM_THREADS`` (or ``--threads``) to change it. Plain lines on stdout, and with
``--json`` one more line: ``LATENCY_JSON {...}``.

Make the models to measure (the demo data ships in the package; cloth is the paper's
text + tabular regression set)::

    mmtricks demo --out runs/latency/demo        # fits and saves the demo model
    python scripts/latency.py runs/latency/demo \\
        --data src/mmtricks/demo/data/emoji/test.parquet

    mmtricks fit --train /work/shared/data/cloth/train.parquet --label Rating \\
        --time-limit 300 --set data.max_train_rows=3000 --out runs/latency/cloth
    python scripts/latency.py runs/latency/cloth --data /work/shared/data/cloth/test.parquet

Relative image paths resolve against ``--base-dir`` (default: the table's folder).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_LOAD_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import mmtricks
t1 = time.perf_counter()
p = mmtricks.load(sys.argv[1], verbosity=0)
t2 = time.perf_counter()
print("LOAD_CHILD " + json.dumps({"import": t1 - t0, "load": t2 - t1}))
"""


def _median_wall(argv: list[str], n: int, env: dict) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def import_seconds(python: str, env: dict, n: int = 3) -> tuple[float, float]:
    """``import mmtricks`` in a fresh interpreter: (``-X importtime``'s cumulative time for
    mmtricks, wall time of ``python -c 'import mmtricks'`` minus a bare ``python -c pass``)."""
    own = []
    for _ in range(n):
        out = subprocess.run([python, "-X", "importtime", "-c", "import mmtricks"], check=True, env=env,
                             capture_output=True, text=True)
        for line in out.stderr.splitlines():  # "import time: self [us] | cumulative | package"
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == "mmtricks":
                own.append(int(parts[1].strip()) / 1e6)
    bare = _median_wall([python, "-c", "pass"], n, env)
    full = _median_wall([python, "-c", "import mmtricks"], n, env)
    return (statistics.median(own) if own else float("nan")), max(0.0, full - bare)


def fresh_load_seconds(python: str, model_dir: str, env: dict, n: int = 3) -> tuple[float, float]:
    """(median load call time, median subprocess wall time) over ``n`` fresh processes."""
    loads, walls = [], []
    for _ in range(n):
        t = time.perf_counter()
        out = subprocess.run([python, "-c", _LOAD_CHILD, model_dir], check=True, env=env,
                             capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        line = [x for x in out.stdout.splitlines() if x.startswith("LOAD_CHILD ")][-1]
        loads.append(json.loads(line.split(" ", 1)[1])["load"])
    return statistics.median(loads), statistics.median(walls)


def folder_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="folder written by MultimodalPredictor.save / mmtricks fit --out")
    ap.add_argument("--data", required=True, help="table (CSV/Parquet) to take rows from; the label may be in it")
    ap.add_argument("--base-dir", default=None, help="folder relative image paths resolve against")
    ap.add_argument("--repeats", type=int, default=200, help="timed single-row predict calls")
    ap.add_argument("--rows", type=int, default=1000, help="rows for the rows/s figure")
    ap.add_argument("--loads", type=int, default=3, help="fresh-process loads (median); 0 skips them")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--precision", default=None,
                    help="env.precision to predict under (e.g. 32-true, bf16-mixed; default: the model's own, "
                         "resolved on this machine)")
    ap.add_argument("--json", action="store_true", help="also print one LATENCY_JSON line")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    python = sys.executable
    model_dir = os.path.abspath(args.model_dir)
    res: dict = {"model_dir": model_dir, "data": os.path.abspath(args.data)}

    res["import_mmtricks_s"], res["import_mmtricks_wall_s"] = import_seconds(python, env)
    if args.loads > 0:
        res["load_fresh_s"], res["load_fresh_process_wall_s"] = fresh_load_seconds(python, model_dir, env, args.loads)

    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    res["torch_threads"] = torch.get_num_threads()

    from mmtricks import MultimodalPredictor
    from mmtricks.data.io import read_table

    t = time.perf_counter()
    predictor = MultimodalPredictor.load(model_dir, verbosity=0)
    res["load_first_in_process_s"] = time.perf_counter() - t
    t = time.perf_counter()
    predictor = MultimodalPredictor.load(model_dir, verbosity=0)
    res["load_in_process_s"] = time.perf_counter() - t

    from mmtricks.train.loop import resolve_precision

    if args.precision:
        predictor.config_.env.precision = args.precision
    res["precision"] = resolve_precision(predictor.config_.env)

    df, base = read_table(args.data, args.base_dir)
    row = df.iloc[[0]]
    predictor.predict(row, base_dir=base)  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        predictor.predict(row, base_dir=base)
        times.append(time.perf_counter() - t)
    res["single_row_median_ms"] = statistics.median(times) * 1e3
    res["single_row_p95_ms"] = percentile(times, 0.95) * 1e3
    res["repeats"] = args.repeats

    big = pd.concat([df] * (args.rows // len(df) + 1), ignore_index=True).iloc[: args.rows]
    t = time.perf_counter()
    predictor.predict(big, base_dir=base)
    res["rows"] = len(big)
    res["rows_per_s"] = len(big) / (time.perf_counter() - t)
    res["model_bytes"] = folder_bytes(model_dir)
    res["modalities"] = list(predictor.schema_.modalities)

    print(f"model: {model_dir} ({', '.join(res['modalities'])}); data: {res['data']}")
    print(f"torch threads: {res['torch_threads']}; precision: {res['precision']}")
    print(f"single-row predict: median {res['single_row_median_ms']:.1f} ms, p95 {res['single_row_p95_ms']:.1f} ms "
          f"({args.repeats} calls after 1 warm-up)")
    print(f"throughput: {res['rows_per_s']:.0f} rows/s on {res['rows']} rows")
    if "load_fresh_s" in res:
        print(f"load (fresh process, median of {args.loads}): {res['load_fresh_s']:.2f} s; "
              f"whole process (start + import + load): {res['load_fresh_process_wall_s']:.2f} s")
    print(f"load (in process): first {res['load_first_in_process_s']:.2f} s, again {res['load_in_process_s']:.2f} s")
    print(f"import mmtricks: {res['import_mmtricks_s'] * 1e3:.1f} ms (-X importtime); fresh process minus bare "
          f"interpreter: {res['import_mmtricks_wall_s'] * 1e3:.0f} ms")
    print(f"model size: {res['model_bytes'] / 2**20:.1f} MiB")
    if args.json:
        print("LATENCY_JSON " + json.dumps(res, sort_keys=True))
    return res


if __name__ == "__main__":
    main()

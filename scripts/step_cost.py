"""Seconds of one training step (forward + backward of one micro batch) of presets' networks on a data set.

    python scripts/step_cost.py DATASET [--presets baseline_plus,lf_llm] [--rows 32] [--repeats 3]
                                [--threads 2] [--precision bf16-mixed] [--data-dir ../shared/data]

Builds each preset's network as a fit would (processors fitted on the first 256 training rows,
input sizes from the data), then times forward + backward of the task loss on ``--rows`` rows
under the given precision: the median of ``--repeats`` after one warm-up. Prints seconds per
step, and the steps a time limit buys at that rate, for sizing benchmark limits against the
step floor (``optim.min_steps``). A speed figure only; hooks' extra losses are not included.
Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time


def step_seconds(ds, preset: str, rows: int, repeats: int, precision: str, overrides=None) -> float:
    import torch

    from mmtricks import MultimodalPredictor
    from mmtricks.config import resolve
    from mmtricks.schema import infer_schema
    from mmtricks.train.loop import autocast_for, loss_fn

    settings = {"env.precision": precision, **(overrides or {})}
    cfg = resolve(preset, settings)
    sample = ds.train.head(256)
    schema = infer_schema(sample, ds.label, ds.problem_type, ds.column_types or None)
    p = MultimodalPredictor(ds.label, ds.problem_type, preset=preset, overrides=settings, verbosity=0)
    model, pre = p._build(schema, cfg, sample, ds.base_dir)
    model.train()
    encoded = pre.encode(sample.head(rows), ds.base_dir, with_labels=True)
    dataset = p._dataset(pre, encoded)
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    loss = loss_fn(schema.problem_type)
    times = []
    for _ in range(repeats + 1):  # the first one warms up
        start = time.perf_counter()
        with autocast_for(precision, "cpu"):
            out = model(batch)
        loss(out["logits"], batch["label"]).backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv=None) -> int:
    import torch

    from mmtricks.bench.datasets import load_dataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="data set name (in --data-dir) or folder")
    p.add_argument("--presets", default="baseline_plus")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--precision", default="bf16-mixed")
    p.add_argument("--limit", type=float, default=None, help="a time limit to convert into steps")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmtricks.config import parse_overrides

    ds = load_dataset(args.dataset, args.data_dir)
    print(f"{ds.name}: {args.rows} rows a step, {args.precision}, {torch.get_num_threads()} threads")
    for preset in [x.strip() for x in args.presets.split(",") if x.strip()]:
        seconds = step_seconds(ds, preset, args.rows, args.repeats, args.precision, parse_overrides(args.overrides))
        buys = f"; {args.limit:.0f} s buy about {args.limit / seconds:.0f} steps" if args.limit else ""
        print(f"  {preset}: {seconds:.2f} s a step{buys}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

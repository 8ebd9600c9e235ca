"""The bf16 gate: may `env.precision=auto` pick bf16 autocast on CPUs with native bf16?

    python scripts/bf16_gate.py [STANDARD_DIR] [FP32_DIR] [--config baseline_plus]

Reads the standard profile's runs (bf16 autocast) and the same config rerun in 32-bit
(``--set env.precision=32-true``, same rows and limits), and prints per data set the seed
means and spreads, the fp32 - bf16 difference (positive: fp32 better), the median seconds
per step of each, and the verdict: bf16 passes when on no data set the fp32 mean beats the
bf16 mean by more than the seed spread, with at least two seeds of each everywhere.
"""
from __future__ import annotations

import argparse
import statistics
import sys


def gate(standard: list[dict], fp32: list[dict], config: str) -> tuple[list[list], str]:
    """Rows of the table and the verdict line."""
    import pandas as pd

    from mmtricks.bench.report import effects

    def runs(lines, name):
        keep = [dict(r, config=name) for r in lines if r.get("config") == config and r.get("status") == "ok"
                and not r.get("contended") and not r.get("missing_train") and not r.get("missing_test")]
        return keep

    bf16, full = runs(standard, "bf16"), runs(fp32, "fp32")
    if not bf16 or not full:
        return [], f"undecided: no {config} runs in {'the fp32 folder' if bf16 else 'the standard folder'} yet"
    frame = pd.DataFrame(bf16 + full)
    table = effects(frame, ref="bf16")
    rows = []
    for r in table.itertuples():
        step = {}
        for name, lines in (("bf16", bf16), ("fp32", full)):
            got = [float(x["fit_summary"]["seconds_per_step"]) for x in lines if x["dataset"] == r.dataset
                   and isinstance(x.get("fit_summary"), dict) and x["fit_summary"].get("seconds_per_step")]
            step[name] = statistics.median(got) if got else None
        scores = frame[frame["dataset"] == r.dataset].groupby("config")["score"]
        mean, std = scores.mean(), scores.std()
        rows.append([r.dataset, f"{mean['bf16']:.4f} ± {std['bf16']:.4f} ({r.ref_seeds})",
                     f"{mean['fp32']:.4f} ± {std['fp32']:.4f} ({r.seeds})", f"{r.diff:+.4f}",
                     "–" if r.spread != r.spread else f"{r.spread:.4f}",
                     "–" if not step["bf16"] else f"{step['bf16']:.2f}", "–" if not step["fp32"] else f"{step['fp32']:.2f}",
                     r.reading])
    datasets = set(frame["dataset"])
    if len(table) < len(datasets) or (table["reading"] == "one seed").any():
        verdict = "undecided: some data set lacks two seeds of both"
    elif (table["reading"] == "better").any():  # fp32 better beyond the spread somewhere
        verdict = "bf16 fails: fp32 beats it beyond the seed spread on " + ", ".join(
            table[table["reading"] == "better"]["dataset"])
    else:
        verdict = "bf16 passes: on no data set does fp32 beat it by more than the seed spread"
    return rows, verdict


def main(argv=None) -> int:
    from mmtricks.bench.report import md_table
    from mmtricks.bench.results import latest, read_results

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("standard", nargs="?", default="docs/bench/standard")
    p.add_argument("fp32", nargs="?", default="docs/bench/standard_fp32")
    p.add_argument("--config", default="baseline_plus")
    args = p.parse_args(argv)
    standard = list(latest(read_results(args.standard)).values())
    fp32 = list(latest(read_results(args.fp32)).values())
    rows, verdict = gate(standard, fp32, args.config)
    if rows:
        print(md_table(["data set", "bf16 mean ± std (seeds)", "fp32 mean ± std (seeds)", "fp32 - bf16",
                        "spread", "bf16 s/step", "fp32 s/step", "reading (fp32 against bf16)"], rows))
        print()
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())

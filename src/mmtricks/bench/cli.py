"""``mmtricks bench ...``: run the benchmark harness, write its report, list what it can run.

Imported by ``mmtricks --help``: only argparse and the standard library at module level.
"""
from __future__ import annotations

import argparse
import os

DEFAULT_CONFIGS = "baseline,baseline_plus,linear,autogluon_mm,autogluon_tabular"

_EPILOG = """\
examples:
  mmtricks bench --datasets covid,ptech,cloth --seeds 0,1,2 --out runs/bench
  mmtricks bench --configs baseline,linear --missing-train 0,0.3 --missing-test 0,0.3,0.5 --out runs/miss
  mmtricks bench --datasets path/to/folder --label y --out runs/mine   # train/test .parquet or .csv, no dataset.json
  mmtricks bench --profile standard --out runs/standard   # the profile conclusions come from (2-core CPU)
  mmtricks bench report runs/bench          # runs/bench/report.md + runs/bench/plots/*.png
  mmtricks bench report runs/bench --doc docs/benchmarks.md   # and its tables into that file's markers
  mmtricks bench report runs/bench --data-dir ../shared/data  # first record the constant predictor's scores
  mmtricks bench list                       # data sets in the data dir, presets and peers
  nohup mmtricks bench ... --out runs/bench > bench.log 2>&1 &   # long runs; rerun to resume

Each run appends one JSON line to OUT/results.jsonl; runs already there are not redone.
Exit status: 0, or 1 when a run of this invocation failed (it is recorded; --retry-failed redoes it).
"""


def add_parser(sub) -> None:
    """Register ``bench`` on the main command line's subparsers."""
    p = sub.add_parser("bench", help="benchmark harness: presets and peers on data sets, resumable (report, list)",
                       description="Train each (data set, config, seed) on the train split, score the test split, "
                                   "and append one JSON line per run to OUT/results.jsonl.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="*", metavar="ACTION",
                   help="nothing: run the bench; 'report DIR': write DIR/report.md; 'list': data sets and configs")
    p.add_argument("--datasets", help="comma-separated data set names or folders with dataset.json, or with --label "
                                      "folders holding only train/test .parquet or .csv "
                                      "(default: every data set of the data dir)")
    p.add_argument("--label", help="label column of --datasets folders without dataset.json; image, text and tabular "
                                   "columns, problem type and metric are inferred as the predictor infers them")
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help=f"comma-separated mmtricks presets (the pool: best) and peers (linear, autogluon_mm, "
                        f"autogluon_tabular, autogluon_stack); "
                        f"default {DEFAULT_CONFIGS}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--time-limit", type=float, help="seconds per fit (default: the profile's)")
    p.add_argument("--out", help="output folder: results.jsonl, progress.log, scratch/, report.md")
    p.add_argument("--profile", default="quick", help="quick (2-core CPU smoke runs, ~2 min a run), standard (2-core "
                                                      "CPU, the runs conclusions come from, 9-16 min a fit) or full "
                                                      "(GPU, all data)")
    p.add_argument("--data-dir", help="data directory (default: env MMTRICKS_DATA, else ../shared/data)")
    p.add_argument("--missing-train", help="comma-separated train missingness ratios, e.g. 0.1,0.3,0.5")
    p.add_argument("--missing-test", help="comma-separated test missingness ratios (each fit scores every one)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="mmtricks config override added to the profile's (repeatable), e.g. optim.max_epochs=1")
    p.add_argument("--threads", type=int, help="CPU threads per run (torch, BLAS)")
    p.add_argument("--retry-skipped", action="store_true", help="redo runs recorded as skipped")
    p.add_argument("--retry-failed", action="store_true", help="redo runs recorded as failed")
    p.add_argument("--no-contention-check", dest="check_contention", action="store_false",
                   help="do not flag (and rerun) runs that look slowed by another process")
    p.add_argument("--allow-other-cpu", action="store_true",
                   help="add results to an --out folder whose earlier runs were measured on another CPU or GPU "
                        "(refused by default: time-limited fits do not compare across machines)")
    p.add_argument("--allow-other-settings", action="store_true",
                   help="add runs to an --out folder whose earlier runs of the profile used other --set overrides "
                        "or time limits (refused by default: the resume key holds neither)")
    p.add_argument("--keep-scratch", action="store_true", help="keep the peers' model folders")
    p.add_argument("--dry-run", action="store_true", help="print the runs left to do and stop")
    p.add_argument("--report", action="store_true", help="write OUT/report.md when the runs are done")
    p.add_argument("--doc", help="with 'report DIR' or --report: also splice the result tables into this Markdown "
                                 "file between its '<!-- bench-report DIR -->' and '<!-- /bench-report DIR -->' lines")


def _list(text, cast, what):
    from ..errors import ConfigError

    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list. Got {text!r}.") from None


def _ratios(text, what):
    from ..errors import ConfigError

    values = _list(text, float, what) if text else [0.0]
    bad = [v for v in values if not 0.0 <= v <= 1.0]
    if bad:
        raise ConfigError(f"{what} ratios must lie in [0, 1]. Got {bad}.")
    return values


def _show_list(args) -> int:
    from ..presets import list_presets
    from .configs import PEERS
    from .datasets import list_entries, resolve_data_dir

    print(f"data sets in {resolve_data_dir(args.data_dir)}:")
    for e in list_entries(args.data_dir):
        print(f"  {e['name']}: {'+'.join(e.get('modalities') or [])} {e.get('problem_type', '?')} / "
              f"{e.get('metric', '?')}, label {e.get('label')!r}")
    print("mmtricks presets: " + ", ".join(list_presets()))
    for name, desc in PEERS.items():
        print(f"peer {name}: {desc}")
    return 0


def _record_constants(out: str, args) -> None:
    """Fill in ``OUT/constants.json`` for the (profile, data set, seed) of the results that lack it."""
    from .constants import constant_key, read_constants, record_constants
    from .datasets import load_dataset
    from .profiles import get_profile
    from .results import latest, read_results

    known = read_constants(out)
    wanted: dict[tuple[str, str], set[int]] = {}
    for line in latest(read_results(out)).values():
        key = constant_key(line.get("profile"), line.get("dataset"), line.get("seed", 0))
        if key not in known and line.get("status") == "ok":
            wanted.setdefault((line["profile"], line["dataset"]), set()).add(int(line.get("seed", 0)))
    added = 0
    for (profile, name), seeds in sorted(wanted.items()):
        added += record_constants(out, get_profile(profile), [load_dataset(name, args.data_dir, label=args.label)],
                                  sorted(seeds))
    if added:
        print(f"recorded the constant predictor's score for {added} (data set, seed) pair(s) in {out}")


def run(args) -> int:
    """Dispatch ``mmtricks bench`` (run, report, list); errors raise MMTricksError."""
    from ..errors import ConfigError

    action = list(args.action)
    if action and action[0] == "report":
        from .report import build_report

        if len(action) > 2 or (len(action) == 1 and not args.out):
            raise ConfigError("Usage: mmtricks bench report DIR (the --out folder of a bench).")
        out = action[1] if len(action) == 2 else args.out
        if not os.path.isdir(out):
            raise ConfigError(f"'{out}' is not a folder: pass the --out folder of a bench.")
        if args.data_dir:
            _record_constants(out, args)
        print(f"report written to {build_report(out, doc=args.doc)}")
        return 0
    if action and action[0] == "list":
        return _show_list(args)
    if action:
        raise ConfigError(f"Unknown bench action {' '.join(action)!r}: use none (run), 'report DIR' or 'list'.")
    if not args.out:
        raise ConfigError("mmtricks bench needs --out DIR (results.jsonl, progress.log and the report go there).")
    from ..config import parse_overrides
    from .runner import BenchSpec, run_bench

    spec = BenchSpec(
        datasets=_list(args.datasets, str, "--datasets") if args.datasets else [],
        configs=_list(args.configs, str, "--configs"), seeds=_list(args.seeds, int, "--seeds"),
        out_dir=args.out, profile=args.profile, time_limit=args.time_limit, data_dir=args.data_dir,
        missing_train=_ratios(args.missing_train, "--missing-train"),
        missing_test=_ratios(args.missing_test, "--missing-test"), overrides=parse_overrides(args.overrides),
        retry_skipped=args.retry_skipped, retry_failed=args.retry_failed, threads=args.threads,
        keep_scratch=args.keep_scratch, dry_run=args.dry_run, label=args.label,
        check_contention=args.check_contention, allow_other_cpu=args.allow_other_cpu,
        allow_other_settings=args.allow_other_settings,
    )
    if not spec.seeds:
        raise ConfigError("--seeds needs at least one seed, e.g. --seeds 0,1,2.")
    counts = run_bench(spec)
    if args.report and not spec.dry_run and os.path.isfile(os.path.join(args.out, "results.jsonl")):
        from .report import build_report

        print(f"report written to {build_report(args.out, doc=args.doc)}")
    return 1 if counts.get("failed") else 0

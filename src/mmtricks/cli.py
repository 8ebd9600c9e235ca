"""Command line: ``mmtricks fit|predict|evaluate|explain|card|export|demo|config|presets``.

Only argparse is imported at start-up so ``mmtricks --help`` answers at once.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from . import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmtricks", description="Multimodal AutoML for image, text and tabular data.")
    p.add_argument("--version", action="version", version=f"mmtricks {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    fit = sub.add_parser("fit", help="train a predictor on a table and save it")
    fit.add_argument("--train", required=True, help="training table (CSV or Parquet)")
    fit.add_argument("--label", required=True, help="label column")
    fit.add_argument("--tuning", help="validation table (default: held out from --train)")
    fit.add_argument("--preset", default="default",
                     help="named preset (mmtricks presets); 'best' trains the model pool and ensembles it")
    fit.add_argument("--pool", help="comma-separated pool members instead of one network, e.g. "
                                    "lightgbm,linear,baseline_plus (see README 'Model pool')")
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="config override, e.g. --set optim.lr=3e-4 (repeatable; mmtricks config lists keys)")
    fit.add_argument("--time-limit", type=float, help="seconds for the whole fit")
    fit.add_argument("--problem-type", choices=["binary", "multiclass", "regression"])
    fit.add_argument("--eval-metric")
    fit.add_argument("--column-type", action="append", default=[], metavar="COLUMN=KIND",
                     help="override a column's kind: numerical, categorical, text, image or ignore")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--sample-weight", metavar="COLUMN",
                     help="column of non-negative row weights: weighted training loss and validation metric")
    fit.add_argument("--out", required=True, help="folder to save the model in")
    fit.add_argument("--test", help="optional labelled table to score after fitting")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    fit.add_argument("--work-dir", help="folder for checkpoints and resume points (default: OUT.work)")
    fit.add_argument("--resume", action="store_true", help="continue a killed fit from its work dir")

    pred = sub.add_parser("predict", help="predict with a saved model")
    pred.add_argument("--model", required=True)
    pred.add_argument("--data", required=True)
    pred.add_argument("--out", required=True, help="CSV file for the predictions")
    pred.add_argument("--proba", action="store_true", help="also write class probabilities")

    ev = sub.add_parser("evaluate", help="score a saved model on a labelled table (JSON on stdout)")
    ev.add_argument("--model", required=True)
    ev.add_argument("--data", required=True)

    exp = sub.add_parser("explain", help="what each modality contributes: the metric's drop without it (a table)")
    exp.add_argument("--model", required=True)
    exp.add_argument("--data", required=True, help="labelled table (CSV or Parquet)")
    exp.add_argument("--columns", action="store_true", help="also measure each feature column on its own")
    exp.add_argument("--method", choices=["missing", "permute"], default="missing",
                     help="missing: set the cells to missing (default); permute: shuffle them across rows")
    exp.add_argument("--repeats", type=int, default=5,
                     help="bootstrap resamples (missing) or permutations (permute) for the spread (default 5)")
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--plot", metavar="PNG", help="also write a bar plot of the drops")
    exp.add_argument("--json", action="store_true", help="JSON records on stdout instead of a table")

    card = sub.add_parser("card", help="write a model card: one self-contained HTML page")
    card.add_argument("--model", required=True)
    card.add_argument("--data", help="labelled table: adds metrics, a confusion matrix or scatter, modality importance")
    card.add_argument("--out", default="card.html", help="HTML file to write (default card.html)")

    export = sub.add_parser("export", help="export a saved model for serving without torch (ONNX + JSON)")
    export.add_argument("--model", required=True)
    export.add_argument("--out", required=True, help="folder to write the export in (mmtricks.serving reads it)")
    export.add_argument("--format", choices=["onnx"], default="onnx")

    demo = sub.add_parser("demo", help="train on the shipped emoji data set (offline, a few minutes)")
    demo.add_argument("--out", default="mmtricks-demo-model")
    demo.add_argument("--time-limit", type=float, default=240)
    demo.add_argument("--preset", default="default")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    cfg = sub.add_parser("config", help="print the resolved config of a preset (every valid key)")
    cfg.add_argument("--preset", default="default")
    cfg.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser("presets", help="list the named presets")

    from .bench.cli import add_parser as add_bench_parser  # argparse only; heavy imports stay lazy

    add_bench_parser(sub)
    return p


def _run(args: argparse.Namespace) -> int:
    if args.command == "fit":
        from .config import parse_overrides, parse_pairs
        from .predictor import MultimodalPredictor

        predictor = MultimodalPredictor(
            label=args.label, problem_type=args.problem_type, eval_metric=args.eval_metric, preset=args.preset,
            overrides=parse_overrides(args.overrides), time_limit=args.time_limit, seed=args.seed,
            column_types=parse_pairs(args.column_type, "--column-type COLUMN=KIND") or None, verbosity=1 if args.quiet else 2,
            work_dir=args.work_dir or args.out.rstrip("/") + ".work",
            pool=[n.strip() for n in args.pool.split(",") if n.strip()] if args.pool else None,
            sample_weight=args.sample_weight,
        )
        predictor.fit(args.train, tuning_data=args.tuning, resume=args.resume)
        path = predictor.save(args.out)
        print(f"model saved to {path}")
        from .predictor import _rank

        if args.work_dir is None and _rank() == 0:  # the default work dir only serves a resume; the model is saved
            import shutil

            shutil.rmtree(predictor.work_dir, ignore_errors=True)
        board = predictor.leaderboard(args.test) if args.test else predictor.leaderboard()
        with _wide_pandas():
            print(board.to_string(index=False))
        if args.test:
            print(json.dumps(predictor.evaluate(args.test), indent=2))
    elif args.command == "predict":
        from .predictor import MultimodalPredictor

        predictor = MultimodalPredictor.load(args.model)
        out = predictor.predict(args.data).to_frame()
        if args.proba and predictor.schema_.problem_type != "regression":
            proba = predictor.predict_proba(args.data)
            out = out.join(proba.add_prefix("proba_"))
        out.to_csv(args.out, index=False)
        print(f"{len(out)} predictions written to {args.out}", file=sys.stderr)
    elif args.command == "evaluate":
        from .predictor import MultimodalPredictor

        predictor = MultimodalPredictor.load(args.model, verbosity=0)
        print(json.dumps(predictor.evaluate(args.data), indent=2))
    elif args.command == "explain":
        from .explain import modality_importance, plot_importance
        from .predictor import MultimodalPredictor

        predictor = MultimodalPredictor.load(args.model, verbosity=0)
        result = modality_importance(predictor, args.data, groups="all" if args.columns else None,
                                     repeats=args.repeats, seed=args.seed, method=args.method)
        if args.json:
            print(result.to_json(orient="records", indent=2))
        else:
            print(result.to_string(index=False))
        if args.plot:
            plot_importance(result, args.plot)
            print(f"plot written to {args.plot}", file=sys.stderr)
    elif args.command == "card":
        from .card import write_card
        from .predictor import MultimodalPredictor

        predictor = MultimodalPredictor.load(args.model, verbosity=0)
        print(f"model card written to {write_card(predictor, args.out, data=args.data)}", file=sys.stderr)
    elif args.command == "export":
        from .predictor import MultimodalPredictor

        predictor = MultimodalPredictor.load(args.model, verbosity=0)
        print(f"export written to {predictor.export(args.out, format=args.format)}", file=sys.stderr)
    elif args.command == "demo":
        from .config import parse_overrides
        from .demo import run_demo

        run_demo(args.out, args.time_limit, args.preset, parse_overrides(args.overrides))
    elif args.command == "config":
        from .config import resolve

        print(resolve(args.preset, args.overrides).to_json())
    elif args.command == "bench":
        from .bench.cli import run as run_bench

        return run_bench(args)
    elif args.command == "presets":
        from .presets import list_presets

        print("\n".join(list_presets()))
    return 0


def _wide_pandas():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 4)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import MMTricksError

    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        return _run(args)
    except MMTricksError as exc:
        print(f"mmtricks: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmtricks: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

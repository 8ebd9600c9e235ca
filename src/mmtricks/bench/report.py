"""``mmtricks bench report DIR``: results.jsonl -> DIR/report.md with PNG plots in DIR/plots/.

Only the last line of each run key counts. Scores, relative improvements and costs use
the runs without missingness (train and test ratio 0); the missingness grid uses the rest.
Lines flagged ``"contended": true`` (slowed by another process, see
:mod:`mmtricks.bench.contention`) are left out of every mean and listed with their reason.
Runs that collapsed to the constant predictor (:mod:`mmtricks.bench.constants`) are left out
of the clean-row score tables and listed; their speed and memory still count, and the
missingness grid keeps them (its means compare every config over the same cells).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import ConfigError
from .results import RESULTS, latest, read_results

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

GROUP_ORDER = ("text+tabular", "image+text", "image+text+tabular", "image+tabular")
# The mmtricks presets a peer or a trick is compared against, first present wins where one is needed.
REFERENCE_PRESETS = ("default", "baseline_plus", "baseline")


def md_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A markdown table."""
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def _config_order(df: "pd.DataFrame") -> list[str]:
    """Presets first (baseline leading), then peers, each alphabetically."""
    kinds = df.drop_duplicates("config").set_index("config")["config_kind"].to_dict()
    return sorted(kinds, key=lambda c: (kinds[c] != "preset", c != "baseline", c))


def _frame(lines: list[dict[str, Any]]) -> "pd.DataFrame":
    import pandas as pd

    df = pd.DataFrame(lines)
    for col, default in (("config_kind", "preset"), ("missing_train", 0.0), ("missing_test", 0.0),
                         ("greater_is_better", True), ("modality_group", ""), ("time_over_limit", None),
                         ("contended", False)):
        if col not in df.columns:
            df[col] = default
    df["missing_train"] = df["missing_train"].fillna(0.0).astype(float)
    df["missing_test"] = df["missing_test"].fillna(0.0).astype(float)
    df["contended"] = df["contended"].fillna(False).astype(bool)
    return df


def mark_collapsed(df: "pd.DataFrame", constants: dict[str, dict[str, Any]]) -> "pd.DataFrame":
    """Add ``constant_score`` (from ``constants.json``, NaN where not recorded) and ``collapsed``: an ok
    run whose test score is no better than the constant predictor's on the same rows."""
    import numpy as np

    from .constants import constant_key

    df = df.copy()
    df["constant_score"] = [
        (constants.get(constant_key(r["profile"], r["dataset"], r["seed"])) or {}).get("constant_score", np.nan)
        for r in df.to_dict("records")]
    score = df["score"].astype(float) if "score" in df else np.nan
    const = df["constant_score"].astype(float)
    higher = df["greater_is_better"].astype(bool)
    better = np.where(higher, score > const, score < const)
    df["collapsed"] = (df["status"] == "ok") & const.notna() & score.notna() & ~better
    return df


def _machines(ok: "pd.DataFrame") -> list[str]:
    """'CPU: <name and instruction sets> (N runs)' per machine the ok lines record (bench/host.py)."""
    from collections import Counter

    from .host import describe

    seen: Counter = Counter()
    unknown = 0
    for host in ok["host"] if "host" in ok.columns else []:
        cpu = (host or {}).get("cpu") if isinstance(host, dict) else None
        if isinstance(cpu, dict):
            seen[describe(cpu)] += 1
        else:
            unknown += 1
    if not seen:
        return []
    said = [f"CPU: {what} ({n} runs)" for what, n in seen.items()]
    if unknown:
        said.append(f"{unknown} runs from before the harness recorded the CPU")
    return ["; ".join(said) + "."]


def _settings(df: "pd.DataFrame") -> str:
    parts = ["## Settings", ""]
    for name, part in df.groupby("profile", sort=True):
        prof = part["profile_settings"].iloc[0] or {}
        limits = ", ".join(f"{t:g}" for t in sorted(part["time_limit"].dropna().unique()))
        over = sorted({json.dumps(o, sort_keys=True) for o in part["overrides"] if isinstance(o, dict) and o})
        parts += [f"- profile **{name}**: {prof.get('description', '')}",
                  f"  - train rows per seed at most {prof.get('max_train_rows') or 'all'} (stratified, seeded; "
                  f"the same rows for every config); test split whole",
                  f"  - time limit per fit: {limits} s; mmtricks overrides: {', '.join(over) or 'none'}"]
    first = df[df["status"] == "ok"].sort_values("config_kind", key=lambda k: k != "preset", kind="stable")
    if len(first):
        row = first.iloc[0]
        vers = row.get("versions") or {}
        parts += ["", f"Machine: {(row.get('host') or {}).get('cpus', '?')} CPU cores, device "
                      f"{row.get('device') or 'cpu'} ({(row.get('host') or {}).get('platform', '')}).",
                  *_machines(first), "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items())]
        peers = first[first["config"].astype(str).str.startswith("autogluon")]
        if "harness_versions" in peers.columns:  # lines from before it held the harness's versions merged in
            peers = peers[peers["harness_versions"].apply(lambda v: isinstance(v, dict))]
        else:
            peers = peers.iloc[0:0]
        if len(peers) and isinstance(peers.iloc[0].get("versions"), dict):
            parts.append("AutoGluon peers' own virtualenv: " + ", ".join(
                f"{k} {v}" for k, v in peers.iloc[0]["versions"].items()))
        if "commit" in first.columns:
            commits = sorted({f"{c[:12]}{' (tree differed from it)' if d else ''}"
                              for c, d in zip(first["commit"], first.get("commit_dirty", [None] * len(first)))
                              if isinstance(c, str)})
            if commits:
                parts.append("mmtricks commit: " + ", ".join(commits))
    return "\n".join(parts)


def _datasets(df: "pd.DataFrame") -> str:
    rows = []
    for ds, part in df.groupby("dataset", sort=True):
        r = part.iloc[0]
        n_train = sorted({int(v) for v in part["n_train"].dropna()}) if "n_train" in part else []
        n_test = sorted({int(v) for v in part["n_test"].dropna()}) if "n_test" in part else []
        arrow = "higher is better" if r["greater_is_better"] else "lower is better"
        rows.append([ds, r["modality_group"], r["problem_type"], f"{r['metric']} ({arrow})",
                     ", ".join(map(str, n_train)) or "–", ", ".join(map(str, n_test)) or "–"])
    return "## Data sets\n\n" + md_table(["data set", "modalities", "problem", "metric", "train rows used",
                                          "test rows"], rows)


def _scores(clean: "pd.DataFrame", configs: list[str], plots: str, collapsed: "pd.DataFrame | None" = None) -> str:
    """``clean``: the runs read as results; ``collapsed``: the collapsed ones, counted in the cells."""
    from .plots import score_bars

    stats = clean.groupby(["dataset", "config"])["score"].agg(["mean", "std", "count"])
    mean = stats["mean"].unstack("config").reindex(columns=configs)
    std = stats["std"].unstack("config").reindex(columns=configs)
    count = stats["count"].unstack("config").reindex(columns=configs)
    metrics = clean.drop_duplicates("dataset").set_index("dataset")["metric"].to_dict()
    lost = (collapsed.groupby(["dataset", "config"]).size().to_dict()
            if collapsed is not None and not collapsed.empty else {})
    rows = []
    for ds in sorted(set(mean.index) | {d for d, _ in lost}):
        cells = []
        for c in configs:
            n = count.loc[ds, c] if ds in count.index else float("nan")
            cell = (f"{_num(mean.loc[ds, c])} ± {_num(std.loc[ds, c])} ({int(n)})" if n == n and n > 0 else "–")
            if lost.get((ds, c)):
                cell += f" [{lost[(ds, c)]} collapsed]"
            cells.append(cell)
        rows.append([f"{ds} ({metrics.get(ds, '?')})", *cells])
    score_bars(mean, std, metrics, os.path.join(plots, "scores.png"))
    return ("## Test scores\n\nMean ± std over seeds (number of seeds) of the test metric, per data set and "
            "config; runs that collapsed to the constant predictor are left out and counted in brackets "
            "(section \"Collapsed fits\").\n\n" + md_table(["data set", *configs], rows)
            + "\n\n![scores](plots/scores.png)")


def relative_improvement(clean: "pd.DataFrame", base: str = "baseline") -> "pd.DataFrame":
    """Config x modality group: mean over the group's data sets of (score - base) / |base|.

    ``score`` and ``base`` are means (over seeds, and grid cells when given) of the config and
    of the ``base`` config on a data set; the sign is flipped for lower-is-better metrics, so
    positive always means better.
    """
    import numpy as np
    import pandas as pd

    means = clean.groupby(["dataset", "config"])["score"].mean().unstack("config")
    if base not in means.columns:
        return pd.DataFrame()
    info = clean.drop_duplicates("dataset").set_index("dataset")
    sign = np.where(info.loc[means.index, "greater_is_better"].astype(bool), 1.0, -1.0)
    base = means[base]
    rel = means.sub(base, axis=0).div(base.abs().replace(0.0, np.nan), axis=0).mul(sign, axis=0)
    rel["group"] = info.loc[means.index, "modality_group"]
    table = rel.groupby("group").mean().T
    order = [g for g in GROUP_ORDER if g in table.columns] + sorted(set(table.columns) - set(GROUP_ORDER))
    table = table[order]
    table["all"] = rel.drop(columns="group").mean()
    return table


def _relative(clean: "pd.DataFrame", configs: list[str], plots: str) -> str:
    from .plots import grouped_bars

    table = relative_improvement(clean)
    head = "## Relative improvement over baseline by modality group\n\n"
    if table.empty:
        return head + "No `baseline` runs: nothing to compare against."
    table = table.reindex([c for c in configs if c in table.index])
    n = clean.groupby("modality_group")["dataset"].nunique()
    def label(g: str) -> str:
        k = int(n.get(g, 0)) if g != "all" else clean["dataset"].nunique()
        return f"{'all' if g == 'all' else g} ({k} data set{'s' if k != 1 else ''})"

    headers = ["config", *[label(g) for g in table.columns]]
    rows = [[c, *[_num(v, "{:+.2%}") for v in table.loc[c]]] for c in table.index]
    grouped_bars(table.drop(columns="all"), "improvement over baseline", os.path.join(plots, "relative.png"),
                 percent=True)
    return (head + "(score − baseline) / |baseline| of the seed means, sign flipped for lower-is-better metrics, "
            "averaged over the data sets of each group.\n\n" + md_table(headers, rows)
            + "\n\n![relative improvement](plots/relative.png)")


def _peers(df: "pd.DataFrame", clean: "pd.DataFrame", configs: list[str], plots: str) -> str:
    import pandas as pd

    from .plots import grouped_bars

    rows, cost = [], {}
    everything = df[(df["missing_train"] == 0) & (df["missing_test"] == 0)]
    for c in configs:
        part = clean[clean["config"] == c]
        runs = everything[everything["config"] == c]
        status = runs[~runs["contended"] | (runs["status"] != "ok")]["status"].value_counts()  # contended: not ok
        fit, rps = part["fit_seconds"].mean(), part["rows_per_s"].mean()
        ratio = pd.to_numeric(part["time_over_limit"], errors="coerce")
        kind = df[df["config"] == c]["config_kind"].iloc[0]
        rss = part["peak_rss_mb"].mean() if "peak_rss_mb" in part else None
        rows.append([c, "mmtricks preset" if kind == "preset" else "peer", _num(fit, "{:.1f}"), _num(rps, "{:.1f}"),
                     _num(ratio.mean(), "{:.2f}"), _num(ratio.max(), "{:.2f}"), _num(rss, "{:.0f}"),
                     f"{status.get('ok', 0)} / {status.get('skipped', 0)} / {status.get('failed', 0)}"])
        cost[c] = fit
    if cost:
        grouped_bars(pd.DataFrame({"fit seconds": cost}), "mean fit seconds", os.path.join(plots, "cost.png"))
    return ("## Peers and cost\n\nmmtricks presets next to the peers, over the runs without missingness: mean "
            "fit seconds, mean prediction throughput on the test split, fit time over the time limit (mean, max), "
            "mean peak resident memory of the run's process.\n\n"
            + md_table(["config", "kind", "fit s", "predict rows/s", "fit / limit (mean)", "fit / limit (max)",
                        "peak RSS MiB", "runs ok / skipped / failed"], rows)
            + ("\n\n![cost](plots/cost.png)" if cost else ""))


def _cost_per_dataset(clean: "pd.DataFrame", configs: list[str]) -> str:
    """Per data set and config, medians over seeds: steps, seconds per step and per epoch, peak memory."""
    import statistics

    rows = []
    for ds in sorted(set(clean["dataset"])):
        for c in configs:
            part = clean[(clean["dataset"] == ds) & (clean["config"] == c)].to_dict("records")
            if not part:
                continue
            summaries = [r["fit_summary"] if isinstance(r.get("fit_summary"), dict) else {} for r in part]

            def median(values):
                values = [float(v) for v in values if v is not None and v == v]
                return statistics.median(values) if values else None

            rows.append([ds, c, len(part), _num(median(s.get("steps") for s in summaries), "{:.0f}"),
                         _num(median(s.get("seconds_per_step") for s in summaries), "{:.2f}"),
                         _num(median(seconds_per_epoch(r) for r in part), "{:.1f}"),
                         _num(median(r.get("peak_rss_mb") for r in part), "{:.0f}")])
    return ("## Time and memory per data set\n\nMedians over seeds: optimizer steps, training seconds per step "
            "(network fits), fit seconds per epoch, peak resident memory of the run's process (MiB).\n\n"
            + md_table(["data set", "config", "runs", "steps", "s / step", "s / epoch", "peak RSS MiB"], rows))


def seconds_per_epoch(line: dict[str, Any]) -> Any:
    """Fit seconds per training epoch of one run, or None when the run did not record its epochs.

    Both sides use the whole fit time (preprocessing and checkpoint averaging included): mmtricks
    configs count epochs in ``fit_info``, AutoGluon MultiModalPredictor's up to its last validation.
    """
    info = line.get("fit_info") if isinstance(line.get("fit_info"), dict) else {}
    peer = line.get("peer_output") if isinstance(line.get("peer_output"), dict) else {}
    epochs = info.get("epochs") or peer.get("epochs")
    fit = line.get("fit_seconds")
    if not epochs or fit is None or fit != fit:
        return None
    return float(fit) / float(epochs)


def _ratios(clean: "pd.DataFrame", configs: list[str], peer: str = "autogluon_mm") -> str:
    """Per data set, median over seeds of (peer / preset) seconds per epoch and (preset / peer) rows/s."""
    import statistics

    if peer not in set(clean["config"]):
        return ""
    by_key = {(r["dataset"], r["seed"], r["config"]): r for r in clean.to_dict("records")}
    rows = []
    presets = [c for c in REFERENCE_PRESETS if c in configs]
    for c in presets:
        for ds in sorted(set(clean["dataset"])):
            epoch, rps, fit = [], [], []
            for seed in sorted(set(clean["seed"])):
                mine, theirs = by_key.get((ds, seed, c)), by_key.get((ds, seed, peer))
                if mine is None or theirs is None:
                    continue
                a, b = seconds_per_epoch(mine), seconds_per_epoch(theirs)
                if a and b:
                    epoch.append(b / a)
                if mine.get("rows_per_s") and theirs.get("rows_per_s"):
                    rps.append(mine["rows_per_s"] / theirs["rows_per_s"])
                if mine.get("time_over_limit") and theirs.get("time_over_limit"):
                    fit.append(theirs["time_over_limit"] / mine["time_over_limit"])
            med = [statistics.median(v) if v else None for v in (epoch, rps, fit)]
            rows.append([c, ds, *[_num(m, "{:.2f}x") for m in med], f"{len(epoch)} / {len(rps)}"])
    if not rows:
        return ""
    return (f"## Speed against {peer}\n\nSame data set, seed and time limit, one run each; median over seeds of "
            f"the ratios. Seconds per epoch = fit seconds / epochs trained ({peer}: epochs up to its last "
            "validation, which favours it). Above 1 means the mmtricks preset is faster.\n\n"
            + md_table(["preset", "data set", f"epoch speed ({peer} s/epoch ÷ preset s/epoch)",
                        f"predict rows/s (preset ÷ {peer})", f"fit/limit ({peer} ÷ preset)",
                        "seeds with epochs / with rows/s"], rows))


REFERENCE = "baseline_plus"  # the default preset: what every trick, fusion, pool and peer is read against


def effects(clean: "pd.DataFrame", ref: str = REFERENCE) -> "pd.DataFrame":
    """Per data set and config: the seed means' difference from ``ref`` and the seed spread.

    Columns: dataset, config, seeds (of the config), ref_seeds, diff (config mean - ref mean,
    sign flipped for lower-is-better metrics, so positive is better), spread (the larger of
    the two configs' seed standard deviations; NaN with fewer than two seeds of either) and
    reading: 'better' / 'worse' when |diff| exceeds the spread, 'within spread', or
    'one seed' (no spread to read against).
    """
    import numpy as np
    import pandas as pd

    stats = clean.groupby(["dataset", "config"])["score"].agg(["mean", "std", "count"])
    higher = clean.drop_duplicates("dataset").set_index("dataset")["greater_is_better"].astype(bool).to_dict()
    rows = []
    for ds in stats.index.get_level_values("dataset").unique():
        part = stats.loc[ds]
        if ref not in part.index:
            continue
        r = part.loc[ref]
        for config in part.index:
            if config == ref:
                continue
            c = part.loc[config]
            diff = (c["mean"] - r["mean"]) * (1.0 if higher[ds] else -1.0)
            spread = max(c["std"], r["std"]) if min(c["count"], r["count"]) >= 2 else np.nan
            reading = ("one seed" if spread != spread else "within spread" if abs(diff) <= spread
                       else "better" if diff > 0 else "worse")
            rows.append({"dataset": ds, "config": config, "seeds": int(c["count"]), "ref_seeds": int(r["count"]),
                         "diff": diff, "spread": spread, "reading": reading})
    return pd.DataFrame(rows, columns=["dataset", "config", "seeds", "ref_seeds", "diff", "spread", "reading"])


def _against(clean: "pd.DataFrame", configs: list[str], ref: str = REFERENCE) -> str:
    table = effects(clean, ref)
    head = f"## Against {ref}\n\n"
    if table.empty:
        return head + f"No `{ref}` runs: nothing to compare against."
    order = {c: i for i, c in enumerate(configs)}
    table = table.sort_values(["config", "dataset"], key=lambda col: col.map(order) if col.name == "config" else col)
    rows = [[r.config, r.dataset, f"{r.seeds} / {r.ref_seeds}", _num(r.diff, "{:+.4f}"), _num(r.spread), r.reading]
            for r in table.itertuples()]
    return (head + f"Each config's seed mean minus `{ref}`'s on the same data set (positive is better, the sign "
            "flipped for lower-is-better metrics), beside the seed spread (the larger of the two seed standard "
            "deviations). An effect is read only where it exceeds the spread.\n\n"
            + md_table(["config", "data set", f"seeds (config / {ref})", "difference", "spread", "reading"], rows))


def _ensembles(clean: "pd.DataFrame") -> str:
    """What the ensembles were made of: mmtricks pools (``fit_summary.members``) and the
    autogluon_stack peer (``leaderboard``), over the runs without missingness, one line per fit."""
    import statistics

    records = clean.to_dict("records")
    pools: dict[tuple, list] = {}
    scores: dict[tuple, list] = {}  # the ensemble's test score per fit
    uniforms: dict[tuple, list] = {}  # the uniform average of every member, per fit that recorded it
    methods: dict[tuple, dict[str, list]] = {}  # each selection method's test score, per fit that recorded them
    higher: dict[str, bool] = {}
    stacks: dict[str, list] = {}
    for r in records:
        summary = r.get("fit_summary") if isinstance(r.get("fit_summary"), dict) else {}
        if isinstance(summary.get("members"), list):
            pools.setdefault((r["dataset"], r["config"]), []).append(summary["members"])
            scores.setdefault((r["dataset"], r["config"]), []).append(r["score"])
            if summary.get("uniform_test_score") is not None:
                uniforms.setdefault((r["dataset"], r["config"]), []).append(float(summary["uniform_test_score"]))
            for name, got in (summary.get("selection_test_scores") or {}).items():
                if got is not None:
                    methods.setdefault((r["dataset"], r["config"]), {}).setdefault(name, []).append(float(got))
            higher[r["dataset"]] = bool(r.get("greater_is_better", True))
        if isinstance(r.get("leaderboard"), dict):
            stacks.setdefault(r["dataset"], []).append(r["leaderboard"])
    if not pools and not stacks:
        return ""
    out = ["## Ensembles", ""]
    if pools:
        rows, vs_best = [], []
        for (ds, config), fits in sorted(pools.items()):
            names = list(dict.fromkeys(m.get("name") for members in fits for m in members))
            cells, best = [], []
            for name in names:
                got = [m for members in fits for m in members if m.get("name") == name]
                weights = [float(m["weight"]) for m in got if m.get("weight") is not None]
                vals = [float(m["val_score"]) for m in got if m.get("val_score") is not None]
                tests = [float(m["test_score"]) for m in got if m.get("test_score") is not None]
                test = f", test {_num(statistics.mean(tests))}" if tests else ""
                cells.append(f"{name} {_num(statistics.mean(weights) if weights else None, '{:.2f}')} "
                             f"(val {_num(statistics.mean(vals) if vals else None)}{test}, {len(got)} of {len(fits)})")
                if len(tests) == len(fits):  # a member in every fit: a candidate for the best single member
                    best.append((name, statistics.mean(tests)))
            rows.append([ds, config, len(fits), "; ".join(cells)])
            if best:
                sign = 1.0 if higher[ds] else -1.0
                name, score = max(best, key=lambda b: sign * b[1])
                ensemble = statistics.mean(scores[(ds, config)])
                spread = statistics.stdev(scores[(ds, config)]) if len(fits) > 1 else None
                flat = uniforms.get((ds, config), [])
                vs_best.append([ds, config, len(fits), _num(ensemble), _num(spread),
                                f"{name} {_num(score)}", _num(sign * (ensemble - score), "{:+.4f}"),
                                f"{_num(statistics.mean(flat))} ({len(flat)} of {len(fits)})" if flat else "-"])
        out += ["mmtricks pools: per member, its mean ensemble weight over the fits (mean validation score, mean "
                "test score alone, fits it was trained in of all fits; a member missing from a fit was skipped or "
                "dropped).", "",
                md_table(["data set", "config", "fits", "members: mean weight (mean validation score, test "
                          "score, fits)"], rows)]
        if vs_best:
            out += ["", "The ensemble against its best single member on the test split (the member with the best "
                    "mean test score among those in every fit; positive: the ensemble is better), with the "
                    "ensemble's seed spread (std) and the uniform average of every member on the same rows "
                    "(mean over the fits that recorded it).", "",
                    md_table(["data set", "config", "fits", "ensemble test (mean)", "std", "best member test (mean)",
                              "ensemble - best member", "uniform average test (mean)"], vs_best)]
        if methods:
            names = list(dict.fromkeys(n for by in methods.values() for n in by))
            rows = [[ds, config, max(len(v) for v in by.values())] + [
                f"{_num(statistics.mean(by[n]))} ± {_num(statistics.stdev(by[n]) if len(by[n]) > 1 else None)}"
                if n in by else "-" for n in names] for (ds, config), by in sorted(methods.items())]
            out += ["", "Every selection method on the same members, its weights fitted on the same rows as the "
                    "chosen method's (`fit_info.ensemble.alternatives`): test score, mean ± std over the fits "
                    "that recorded them (`best`: the best single member on those rows).", "",
                    md_table(["data set", "config", "fits"] + names, rows)]
    if stacks:
        rows = []
        for ds, boards in sorted(stacks.items()):
            best = sorted({str(b.get("best")) for b in boards})
            mm = [m for b in boards for m in b.get("models") or [] if str(m.get("model")).startswith("MultiModal")]
            mm_vals = [float(m["score_val"]) for m in mm if m.get("score_val") is not None]
            failed = sorted({f"{f.get('model')} ({f.get('exc_type')})"
                             for b in boards for f in b.get("failures") or []})
            models = sorted({str(m.get("model")) for b in boards for m in b.get("models") or []})
            rows.append([ds, len(boards), ", ".join(best), f"{sum(bool(b.get('automm_trained')) for b in boards)}",
                         _num(statistics.mean(mm_vals) if mm_vals else None), ", ".join(models),
                         ", ".join(failed) or "–"])
        out += ["" if pools else None, "autogluon_stack: the stack's own leaderboard (validation scores in AutoGluon's "
                "higher-is-better form).", "",
                md_table(["data set", "fits", "best model", "fits with MultiModalPredictor",
                          "MultiModalPredictor val score (mean)", "models", "failed models"], rows)]
    return "\n".join(x for x in out if x is not None)


def _step_floor(ok: "pd.DataFrame") -> str:
    """How many mmtricks fits reached their plan's step floor (``fit_summary.plan.floor_reached``)."""
    plans = [(r, (r.get("fit_summary") or {}).get("plan")) for r in ok.to_dict("records")
             if isinstance(r.get("fit_summary"), dict)]
    plans = [(r, p) for r, p in plans if isinstance(p, dict) and "floor_reached" in p]
    if not plans:
        return ""
    fits = {(r["dataset"], r["config"], r["seed"], r["missing_train"]): (r, p) for r, p in plans}  # one per fit
    below = [(r, p) for r, p in fits.values() if not p["floor_reached"]]
    text = (f"## Step floor\n\n{len(fits) - len(below)} of {len(fits)} mmtricks fits with a recorded plan reached "
            f"their step floor (`optim.min_steps`).")
    if below:
        rows = [[r["dataset"], r["config"], r["seed"], p.get("steps"), p.get("min_steps"), p.get("effective_batch"),
                 (r.get("fit_summary") or {}).get("stopped") or "–", _num(r.get("time_over_limit"), "{:.2f}")]
                for r, p in sorted(below, key=lambda x: (x[0]["dataset"], x[0]["config"], x[0]["seed"]))]
        text += (" Below it (stopped by early stopping: the fit had converged; by the time limit: the plan, fixed "
                 "from the first timed steps, did not afford the floor; a fit that then used well under its limit "
                 "had a pessimistic first estimate):\n\n"
                 + md_table(["data set", "config", "seed", "steps", "floor", "effective batch", "stopped by",
                             "fit / limit"], rows))
    return text


def _collapsed(ok: "pd.DataFrame", data_hint: str) -> str:
    """The runs left out as collapsed, and the ok runs that could not be judged (no constant score)."""
    head = "## Collapsed fits\n\n"
    bad = ok[ok["collapsed"]]
    unjudged = int(ok["constant_score"].isna().sum())
    text = (f"{len(bad)} of {len(ok)} runs scored no better on the test rows than the constant predictor fitted on "
            "the same training labels (class frequencies, or the label mean). They learned nothing the label counts "
            "do not say: they are left out of every score table (counted in brackets in \"Test scores\"), never read "
            "as results. Their speed and memory still count. The missingness grid keeps them: each of its cells "
            "measures one amount of missingness, and its means compare every config over the same cells.")
    if unjudged:
        text += (f" {unjudged} run{'' if unjudged == 1 else 's'} could not be judged: no constant-predictor score "
                 f"recorded; `{data_hint}` records it.")
    if bad.empty:
        return head + text
    rows = []
    for (ds, config), part in bad.groupby(["dataset", "config"], sort=True):
        cells = sorted({(r["missing_train"], r["missing_test"]) for r in part.to_dict("records")})
        where = ("clean rows" if cells == [(0.0, 0.0)] else
                 ", ".join(f"{a:g} / {b:g}" for a, b in cells) if len(cells) <= 3 else f"{len(cells)} grid cells")
        lo, hi = part["score"].min(), part["score"].max()
        rows.append([ds, config, len(part), ", ".join(str(int(s)) for s in sorted(set(part["seed"]))), where,
                     _num(lo) if lo == hi else f"{_num(lo)} to {_num(hi)}",
                     ", ".join(sorted({_num(v) for v in part["constant_score"]}))])
    return head + text + "\n\n" + md_table(["data set", "config", "runs", "seeds", "missing train / test",
                                             "test score", "constant predictor"], rows)


def _contended(df: "pd.DataFrame") -> str:
    bad = df[(df["status"] == "ok") & df["contended"]]
    if bad.empty:
        return ""
    rows = [[r["dataset"], r["config"], r["seed"], f"{r['missing_train']:g} / {r['missing_test']:g}",
             str(r.get("contended_reason") or "")[:300]]
            for r in bad.sort_values(["dataset", "config", "seed"]).to_dict("records")]
    one = len(bad) == 1
    return (f"## Contended runs (left out)\n\n{len(bad)} run{'' if one else 's'} looked slowed by another process "
            f"and {'is' if one else 'are'} left out of every table above; a resumed bench redoes "
            f"{'it' if one else 'them'}.\n\n"
            + md_table(["data set", "config", "seed", "missing train / test", "why"], rows))


def _missingness(ok: "pd.DataFrame", configs: list[str], plots: str) -> str:
    from .plots import missingness_lines

    grid = ok[(ok["missing_train"] > 0) | (ok["missing_test"] > 0)]
    if grid.empty:
        return ""
    keys = set(zip(grid["dataset"], grid["config"]))
    cells = ok[[k in keys for k in zip(ok["dataset"], ok["config"])]]  # the clean 0/0 cell belongs to the grid
    mean = cells.groupby(["dataset", "config", "missing_train", "missing_test"])["score"].mean().reset_index()
    out = ["## Missing modalities", "",
           "Each row and modality group (tabular columns together, text, images) is blanked with the given "
           "probability, at least one group kept per row; mean test score over seeds, train ratio (rows) x test "
           "ratio (columns)."]
    out += _missingness_summary(cells[(cells["missing_train"] > 0) | (cells["missing_test"] > 0)], configs)
    for (ds, config), part in mean.groupby(["dataset", "config"], sort=True):
        table = part.pivot(index="missing_train", columns="missing_test", values="score").sort_index()
        rows = [[f"train {r:g}", *[_num(table.loc[r, t]) for t in table.columns]] for r in table.index]
        out += ["", f"**{ds} / {config}** ({part.shape[0]} cells)", "",
                md_table(["", *[f"test {t:g}" for t in table.columns]], rows)]
    metrics = ok.drop_duplicates("dataset").set_index("dataset")["metric"].to_dict()
    missingness_lines(mean, metrics, os.path.join(plots, "missingness.png"))
    out += ["", "![missingness](plots/missingness.png)"]
    return "\n".join(out)


def _missingness_summary(grid: "pd.DataFrame", configs: list[str]) -> list[str]:
    """Grid mean per data set and config, and the relative change against the imputation-only config."""
    used = [c for c in configs if c in set(grid["config"])]
    stats = grid.groupby(["dataset", "config"]).agg(score=("score", "mean"), seeds=("seed", "nunique"))
    metrics = grid.drop_duplicates("dataset").set_index("dataset")["metric"].to_dict()
    rows = []
    for ds in sorted(set(grid["dataset"])):
        rows.append([f"{ds} ({metrics[ds]})", *[
            f"{_num(stats.loc[(ds, c), 'score'])} ({int(stats.loc[(ds, c), 'seeds'])})" if (ds, c) in stats.index
            else "–" for c in used]])
    out = ["", "Mean over the grid's cells (seeds that ran):", "", md_table(["data set", *used], rows)]
    ref = next((c for c in REFERENCE_PRESETS if c in used), None)
    rel = relative_improvement(grid, base=ref) if ref else None
    if rel is not None and not rel.empty:
        rel = rel.reindex([c for c in used if c in rel.index])
        out += ["", f"Change against `{ref}` (imputation only) by modality group, grid means, sign flipped "
                    "for lower-is-better metrics:", "",
                md_table(["config", *rel.columns], [[c, *[_num(v, "{:+.2%}") for v in rel.loc[c]]]
                                                    for c in rel.index])]
    return out


def _problems(df: "pd.DataFrame") -> str:
    bad = df[df["status"] != "ok"].copy()
    if bad.empty:
        return ""
    bad["why"] = [(str(r or "").strip().splitlines() or [""])[0][:300] for r in bad.get("reason", [""] * len(bad))]
    rows = []
    for (config, status, why), part in bad.groupby(["config", "status", "why"], sort=True):
        rows.append([config, status, len(part), ", ".join(sorted(set(part["dataset"]))),
                     ", ".join(str(s) for s in sorted(set(part["seed"]))), why])
    return "## Skipped and failed runs\n\n" + md_table(["config", "status", "runs", "data sets", "seeds",
                                                        "reason (first line; full text in results.jsonl)"], rows)


def splice_into(doc_path: str, out_dir: str, sections: list[str]) -> None:
    """Replace the block between ``<!-- bench-report NAME -->`` and ``<!-- /bench-report NAME -->``.

    ``NAME`` is ``out_dir`` as given. The sections' headings move down two levels and their
    plot links are made relative to the document's folder. Everything outside the markers
    (the hand-written reading) is kept as it is.

    Raises:
        ConfigError: the document or its markers are missing.
    """
    import re

    start, end = f"<!-- bench-report {out_dir} -->", f"<!-- /bench-report {out_dir} -->"
    if not os.path.isfile(doc_path):
        raise ConfigError(f"--doc {doc_path!r} does not exist.")
    with open(doc_path, encoding="utf-8") as fh:
        text = fh.read()
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ConfigError(f"{doc_path} needs one '{start}' line and, after it, one '{end}' line; the generated "
                          "tables go between them.")
    plots = os.path.relpath(os.path.join(out_dir, "plots"), os.path.dirname(os.path.abspath(doc_path)) or ".")
    body = "\n\n".join(s for s in sections if s)
    body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", body, flags=re.MULTILINE)
    body = body.replace("](plots/", f"]({plots.replace(os.sep, '/')}/")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    tmp = doc_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{head}{start}\n\n{body}\n\n{end}{tail}")
    os.replace(tmp, doc_path)


def build_report(out_dir: str, doc: str | None = None) -> str:
    """Write ``out_dir/report.md`` and ``out_dir/plots/*.png``; return the report's path.

    With ``doc``, the results sections (not the settings) are also spliced into that Markdown
    file between its ``bench-report OUT_DIR`` markers (:func:`splice_into`).

    Raises:
        ConfigError: ``out_dir`` holds no results, or ``doc`` lacks its markers.
    """
    lines = list(latest(read_results(out_dir)).values())
    if not lines:
        raise ConfigError(f"No results in '{os.path.join(out_dir, RESULTS)}': run `mmtricks bench ... --out "
                          f"{out_dir}` first.")
    from .constants import read_constants

    df = mark_collapsed(_frame(lines), read_constants(out_dir))
    plots = os.path.join(out_dir, "plots")
    os.makedirs(plots, exist_ok=True)
    ok = df[(df["status"] == "ok") & ~df["contended"]].copy()
    clean = ok[(ok["missing_train"] == 0) & (ok["missing_test"] == 0)]
    scored = clean[~clean["collapsed"]]  # what the score tables read; speed and memory use every clean run
    configs = _config_order(df)
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    n_contended = int(((df["status"] == "ok") & df["contended"]).sum())
    counted = f"{len(ok)} ok" + (f", {n_contended} contended and left out of the means" if n_contended else "")
    head = [f"# Benchmark report\n\nFrom `{RESULTS}` ({len(df)} runs: {counted}), written {stamp}.",
            _settings(df), _datasets(df)]
    results = []  # what --doc splices
    if not clean.empty:
        used = [c for c in configs if c in set(clean["config"])]
        results += [_scores(scored, used, plots, clean[clean["collapsed"]]), _relative(scored, used, plots),
                    _peers(df, clean, configs, plots), _cost_per_dataset(clean, used), _against(scored, used),
                    _ratios(clean, used), _ensembles(scored)]
    # The grid keeps its collapsed cells: a cell is the measurement of that much missingness, and leaving
    # cells out would average configs over different cells ("Collapsed fits" lists them).
    results += [_missingness(ok, configs, plots), _step_floor(ok),
                _collapsed(ok, f"mmtricks bench report {out_dir} --data-dir DATA_DIR"), _problems(df), _contended(df)]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(s for s in head + results if s) + "\n")
    if doc:
        splice_into(doc, out_dir, [f"Generated by `mmtricks bench report {out_dir} --doc {doc}` from "
                                   f"{len(df)} runs ({counted}); settings and versions in "
                                   f"[report.md]({os.path.relpath(path, os.path.dirname(os.path.abspath(doc)))})."]
                    + results)
    return path

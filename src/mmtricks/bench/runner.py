"""Plan and run a bench: every (data set, config, seed, missing ratios), resumable.

Each fit runs in a child process (``python -m mmtricks.bench.worker`` for presets and the
linear peer, the AutoGluon virtualenv for its peers); each outcome is one line of
``OUT/results.jsonl``. Runs already there (ok, skipped, failed) are not redone, so an
interrupted bench picks up where it stopped; ``retry_skipped`` / ``retry_failed`` redo those.
A run that looks slowed by another process (:mod:`mmtricks.bench.contention`) is recorded
with ``"contended": true`` and run once more at once; a line still contended after that is
not counted as done, so a resumed bench redoes it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .results import append_result, latest, ratio_key, read_results

PROGRESS = "progress.log"
# Fields of the peer script's JSON line copied into the result line as they are (when present:
# ``leaderboard`` comes from autogluon_stack only, the stack's models and validation scores).
PEER_FIELDS = ("score", "fit_seconds", "predict_seconds", "rows_per_s", "n_scored", "n_unseen_label", "n_train",
               "n_test", "leaderboard")


@dataclass
class BenchSpec:
    """What to run. Fields mirror ``mmtricks bench`` options."""

    datasets: list[str]
    configs: list[str]
    seeds: list[int]
    out_dir: str
    profile: str = "quick"
    time_limit: Optional[float] = None  # None: the profile's
    data_dir: Optional[str] = None
    missing_train: list[float] = field(default_factory=lambda: [0.0])
    missing_test: list[float] = field(default_factory=lambda: [0.0])
    overrides: dict[str, Any] = field(default_factory=dict)  # added to the profile's overrides
    retry_skipped: bool = False
    retry_failed: bool = False
    threads: Optional[int] = None
    keep_scratch: bool = False
    dry_run: bool = False
    label: Optional[str] = None  # label column of data set folders without a description (--label)
    check_contention: bool = True  # flag (and rerun once) runs slowed by another process
    allow_other_cpu: bool = False  # add results to a folder measured on another machine (bench/host.py)
    allow_other_settings: bool = False  # add results made with other overrides or time limits to a folder


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


class Bench:
    """Runs a :class:`BenchSpec`; see the module doc."""

    def __init__(self, spec: BenchSpec, echo: Callable[[str], None] = print):
        from ..config import resolve
        from .configs import check_configs
        from .datasets import list_entries, load_dataset
        from .profiles import get_profile

        self.spec, self.echo = spec, echo
        self.profile = get_profile(spec.profile)
        self.configs = check_configs(spec.configs)
        self.time_limit = float(spec.time_limit or self.profile.time_limit)  # data sets without a limit of their own
        self.overrides = {**self.profile.overrides, **spec.overrides}
        for config in self.configs:  # bad --set keys fail now, not in the first worker
            if config not in _peers():
                cfg = resolve(config, self.overrides)
                # Typed values ('1' from --set becomes 1) for the result lines.
                self.overrides = {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1])
                                  for k in self.overrides}
        names = spec.datasets or [e["name"] for e in list_entries(spec.data_dir)]
        self.datasets = [load_dataset(n, spec.data_dir, label=spec.label) for n in names]
        self.train_ratios = sorted({ratio_key(r) for r in spec.missing_train} or {0.0})
        self.test_ratios = sorted({ratio_key(r) for r in spec.missing_test} or {0.0})
        self._machine: Optional[dict[str, Any]] = None

    # ------------------------------------------------------------------ logging
    def log(self, message: str) -> None:
        """One progress line to stdout and OUT/progress.log."""
        line = f"{_now()} {message}"
        self.echo(line)
        if not self.spec.dry_run:
            os.makedirs(self.spec.out_dir, exist_ok=True)
            with open(os.path.join(self.spec.out_dir, PROGRESS), "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    @property
    def machine(self) -> dict[str, Any]:
        """This machine's CPU (and GPU) fingerprint, recorded in every line's ``host.cpu``."""
        if self._machine is None:
            from .host import machine_fingerprint

            self._machine = machine_fingerprint()
        return self._machine

    def check_folder(self, presets_left: bool = True) -> None:
        """Before runs are added to OUT: refuse a precision this CPU emulates, a folder measured on another
        machine (bench/host.py), or one whose earlier runs used other settings (:meth:`check_settings`)."""
        from .host import check_precision, check_same_machine

        lines = read_results(self.spec.out_dir)
        check_precision(self.overrides, presets_left, self.machine)
        check_same_machine(lines, self.machine, self.spec.out_dir, self.spec.allow_other_cpu)
        self.check_settings(lines, presets_left)

    def check_settings(self, lines: list[dict[str, Any]], presets_left: bool = True) -> None:
        """Refuse to add runs made with other mmtricks overrides (when presets are left to run: peers ignore
        them), or another time limit on a data set, to a folder whose earlier runs (``lines``) of this
        profile used others: the resume key holds neither."""
        from ..errors import ConfigError

        if self.spec.allow_other_settings:
            return
        mine = json.dumps(self.overrides, sort_keys=True, default=str)
        limits = {ds.name: self.limit(ds) for ds in self.datasets}
        clashes: list[str] = []
        for line in lines:
            if line.get("status") != "ok" or line.get("profile") != self.profile.name:
                continue
            theirs = json.dumps(line.get("overrides") or {}, sort_keys=True, default=str)
            if presets_left and line.get("config_kind") == "preset" and theirs != mine:
                clashes.append(f"mmtricks overrides {theirs} (this bench: {mine})")
            limit = limits.get(str(line.get("dataset")))
            if limit is not None and line.get("time_limit") is not None and float(line["time_limit"]) != limit:
                clashes.append(f"{line['dataset']} time limit {float(line['time_limit']):g} s (this bench: {limit:g} s)")
        if clashes:
            from collections import Counter

            said = "; ".join(f"{n} run(s) with {what}" for what, n in Counter(clashes).items())
            raise ConfigError(f"{self.spec.out_dir} holds runs of profile {self.profile.name} made with other "
                              f"settings: {said}. Runs are resumed by (data set, config, seed, missingness, "
                              f"profile) alone, so these would be read side by side: pass a new --out folder, "
                              f"or --allow-other-settings to add them anyway.")

    # --------------------------------------------------------------------- plan
    def _done_keys(self) -> set:
        skip = {"ok"} | ({"skipped"} if not self.spec.retry_skipped else set())
        skip |= {"failed"} if not self.spec.retry_failed else set()
        return {k for k, line in latest(read_results(self.spec.out_dir)).items()
                if line.get("status") in skip and not line.get("contended")}

    def plan(self) -> list[tuple[Any, str, int, float, list[float]]]:
        """Units still to run: (data set, config, seed, train ratio, test ratios left)."""
        done = self._done_keys()
        units = []
        for seed in self.spec.seeds:
            for ds in self.datasets:
                for config in self.configs:
                    for mtrain in self.train_ratios:
                        left = [t for t in self.test_ratios
                                if (ds.name, config, seed, mtrain, t, self.profile.name) not in done]
                        if left:
                            units.append((ds, config, seed, mtrain, left))
        return units

    # ---------------------------------------------------------------------- run
    def run(self) -> dict[str, int]:
        """Run every unit left; return counts of result lines by status."""
        units = self.plan()
        if units:  # nothing left to run: nothing to refuse
            self.check_folder(presets_left=any(config not in _peers() for _, config, *_ in units))
        total = len(self.spec.seeds) * len(self.datasets) * len(self.configs) * len(self.train_ratios)
        limits = sorted({(self.limit(ds), ds.name) for ds in self.datasets})
        if len({t for t, _ in limits}) <= 1:
            said = f"time limit {limits[0][0] if limits else self.time_limit:g}s"
        else:
            said = "time limits " + ", ".join(f"{n} {t:g}s" for t, n in limits)
        self.log(f"bench: {len(units)} of {total} fits to run (profile {self.profile.name}, {said}, "
                 f"out {self.spec.out_dir})")
        counts = {"ok": 0, "skipped": 0, "failed": 0, "contended": 0}
        for i, (ds, config, seed, mtrain, tests) in enumerate(units, 1):
            what = f"[{i}/{len(units)}] {ds.name} {config} seed={seed}" + self._ratios(mtrain, tests)
            if self.spec.dry_run:
                self.log(f"would run {what}")
                continue
            self.log(f"start {what}")
            try:
                lines = self._unit(ds, config, seed, mtrain, tests)
                if self._contended(lines):
                    for line in lines:  # kept as a record; the rerun's lines come after and win
                        append_result(self.spec.out_dir, line)
                    self.log(f"contended {what}: {self._reason(lines)}; running it again")
                    lines = self._unit(ds, config, seed, mtrain, tests)
                    if self._contended(lines):
                        self.log(f"contended again {what}: {self._reason(lines)}; left for a resumed bench to redo")
            except KeyboardInterrupt:
                self.log(f"interrupted {what}; rerun the same command to resume")
                raise
            for line in lines:
                append_result(self.spec.out_dir, line)
                counts[line["status"]] += 1
                counts["contended"] += bool(line.get("contended"))
            self.log(f"end   {what}: " + self._summary(lines))
        if self.spec.dry_run:
            self.log(f"bench: dry run, {len(units)} fits left to run")
            return counts
        contended = f", {counts['contended']} of them contended (a rerun redoes them)" if counts["contended"] else ""
        self.log(f"bench: done ({counts['ok']} ok{contended}, {counts['skipped']} skipped, {counts['failed']} failed); "
                 f"results in {os.path.join(self.spec.out_dir, 'results.jsonl')}")
        return counts

    def limit(self, ds: Any) -> float:
        """Seconds per fit on ``ds``: ``--time-limit`` when given, else the profile's for that data set."""
        if self.spec.time_limit:
            return float(self.spec.time_limit)
        return float(self.profile.limit_for(ds.name))

    def _contended(self, lines: list[dict[str, Any]]) -> bool:
        """Judge each ok line against the lines recorded so far (marks them); True when one is contended."""
        from .contention import contention_reasons, mark

        if not self.spec.check_contention:
            return False
        earlier = read_results(self.spec.out_dir)
        for line in lines:
            mark(line, contention_reasons(line, earlier, self.spec.threads))
        return any(line.get("contended") for line in lines)

    @staticmethod
    def _reason(lines: list[dict[str, Any]]) -> str:
        return "; ".join(dict.fromkeys(str(line["contended_reason"]) for line in lines if line.get("contended")))

    def _ratios(self, mtrain: float, tests: list[float]) -> str:
        if self.train_ratios == [0.0] and self.test_ratios == [0.0]:
            return ""
        return f" missing train={mtrain:g} test={','.join(f'{t:g}' for t in tests)}"

    @staticmethod
    def _summary(lines: list[dict[str, Any]]) -> str:
        """'accuracy=0.81 fit=85.0s ...' (per test ratio when several); a failure's first reason line."""
        parts = []
        for line in lines:
            if line["status"] != "ok":
                reason = str(line.get("reason") or "").strip().splitlines()
                parts.append(f"{line['status']} ({reason[0] if reason else 'no reason given'})")
            else:
                parts.append(f"{line['metric']}={line['score']:.4f} fit={line['fit_seconds']:.1f}s "
                             f"predict={line['predict_seconds']:.1f}s peak={line.get('peak_rss_mb')}MiB")
            if len(lines) > 1:
                parts[-1] = f"test {line['missing_test']:g}: {parts[-1]}"
        if len(lines) > 1 and all(p.split(": ", 1)[1] == parts[0].split(": ", 1)[1] for p in parts):
            return parts[0].split(": ", 1)[1]  # e.g. the same skip reason for every test ratio
        return "; ".join(parts)

    def _base(self, ds: Any, config: str, seed: int, mtrain: float, mtest: float) -> dict[str, Any]:
        from .configs import config_kind
        from .scoring import greater_is_better

        return {
            "status": None, "dataset": ds.name, "modalities": ds.modalities, "modality_group": ds.modality_group,
            "config": config, "config_kind": config_kind(config), "seed": seed,
            "missing_train": mtrain, "missing_test": mtest, "profile": self.profile.name,
            "profile_settings": self.profile.to_dict(), "time_limit": self.limit(ds),
            "overrides": self.overrides if config_kind(config) == "preset" else {},
            "problem_type": ds.problem_type, "metric": ds.metric,
            "greater_is_better": greater_is_better(ds.metric, ds.problem_type),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu": self.machine},
        }

    def _unit(self, ds: Any, config: str, seed: int, mtrain: float, tests: list[float]) -> list[dict]:
        from .prepare import ratio_tag, seed_dir, split_file
        from .results import source_commit

        from .constants import record_constants

        started = _now()
        record_constants(self.spec.out_dir, self.profile, [ds], [seed])  # the report's collapse check
        source = source_commit()  # the code this unit runs: commit and whether the tree differs from it
        train_path, n_train = split_file(ds, self.profile, self.spec.out_dir, seed, "train", mtrain)
        test_files = {t: split_file(ds, self.profile, self.spec.out_dir, seed, "test", t)[0] for t in tests}
        run_dir = os.path.join(seed_dir(self.spec.out_dir, self.profile.name, ds.name, seed), "runs",
                               f"{config}_m{ratio_tag(mtrain)}")
        os.makedirs(run_dir, exist_ok=True)
        if config in _peers() and config != "linear":
            lines = self._autogluon(ds, config, seed, mtrain, train_path, test_files, run_dir)
        else:
            lines = self._worker(ds, config, seed, mtrain, train_path, test_files, run_dir)
        for line in lines:
            line.update(started_at=started, finished_at=_now(), scratch=os.path.relpath(run_dir, self.spec.out_dir),
                        **source)
            line.setdefault("n_train", n_train)
            if line["status"] == "ok" and line.get("fit_seconds") is not None:
                line["time_over_limit"] = round(line["fit_seconds"] / self.limit(ds), 3)
        return lines

    def _failed(self, base: dict[str, Any], reason: str, status: str = "failed") -> dict[str, Any]:
        return {**base, "status": status, "score": None, "reason": reason}

    def _worker(self, ds, config, seed, mtrain, train_path, test_files, run_dir) -> list[dict]:
        from .contention import finish_probe, start_probe
        from .process import log_tail, run_child

        result_path = os.path.join(run_dir, "result.json")
        if os.path.exists(result_path):
            os.remove(result_path)
        request = {
            "config": config, "dataset": ds.name, "train_path": train_path, "base_dir": ds.base_dir,
            "tests": [{"missing_test": t, "path": p} for t, p in test_files.items()],
            "label": ds.label, "problem_type": ds.problem_type, "metric": ds.metric,
            "text_columns": ds.text_columns, "image_columns": ds.image_columns,
            "tabular_columns": ds.tabular_columns, "overrides": self.overrides, "time_limit": self.limit(ds),
            "seed": seed, "threads": self.spec.threads, "result_path": result_path,
        }
        req_path = os.path.join(run_dir, "request.json")
        with open(req_path, "w", encoding="utf-8") as fh:
            json.dump(request, fh, indent=2)
        log_path = os.path.join(run_dir, "worker.log")
        probe = start_probe()
        child = run_child([sys.executable, "-m", "mmtricks.bench.worker", "--request", req_path], log_path,
                          timeout=self._watchdog(ds), env=self._env())
        contention = finish_probe(probe, child.cpu_seconds)
        bases = {t: self._base(ds, config, seed, mtrain, t) for t in test_files}
        if child.returncode != 0 or not os.path.isfile(result_path):
            why = "timed out" if child.timed_out else f"worker exit code {child.returncode}"
            return [self._failed(b, f"{why}; log {log_path}:\n{log_tail(log_path)}") for b in bases.values()]
        with open(result_path, encoding="utf-8") as fh:
            result = json.load(fh)
        lines = []
        for test in result["tests"]:
            line = {**bases[test["missing_test"]], "status": "ok", **{k: v for k, v in test.items()
                                                                   if k != "missing_test"}}
            line.update(fit_seconds=result["fit_seconds"], n_train=result["n_train"], versions=result["versions"],
                        device=result["device"], fit_info=result.get("fit_info", {}),
                        fit_summary=result.get("fit_summary"), contention=contention,
                        peak_rss_mb=max(filter(None, [child.peak_rss_mb, result.get("peak_rss_mb")]), default=None))
            lines.append(line)
        return lines

    def _autogluon(self, ds, config, seed, mtrain, train_path, test_files, run_dir) -> list[dict]:
        from .autogluon import build_request, locate, parse_output
        from .configs import AUTOGLUON_KIND
        from .contention import finish_probe, start_probe
        from .process import log_tail, run_child
        from .results import versions

        cmd, reason = locate()
        lines = []
        for mtest, test_path in test_files.items():  # the peer script takes one test file: one fit each
            base = self._base(ds, config, seed, mtrain, mtest)
            if cmd is None:
                lines.append(self._failed(base, reason, status="skipped"))
                continue
            sub = os.path.join(run_dir, f"t{mtest:g}")
            os.makedirs(sub, exist_ok=True)
            out_dir = os.path.join(sub, "out")
            # A resumed run starts clean: AutoGluon reuses a folder left by an interrupted attempt.
            shutil.rmtree(out_dir, ignore_errors=True)
            request = build_request(AUTOGLUON_KIND[config], train_path, test_path, ds, self.profile,
                                    self.limit(ds), seed, out_dir)
            if self.spec.threads:
                request["num_threads"] = self.spec.threads
            req_path = os.path.join(sub, "request.json")
            with open(req_path, "w", encoding="utf-8") as fh:
                json.dump(request, fh, indent=2)
            log_path = os.path.join(sub, "peer.log")
            if os.path.exists(log_path):
                os.remove(log_path)
            probe = start_probe()
            child = run_child([*cmd, "--request", req_path], log_path, timeout=self._watchdog(ds),
                              env=self._env(mmtricks_path=False))
            contention = finish_probe(probe, child.cpu_seconds)
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                out = parse_output(fh.read())
            if not self.spec.keep_scratch:
                shutil.rmtree(out_dir, ignore_errors=True)
            if child.returncode != 0 or out is None or out.get("score") is None:
                why = "timed out" if child.timed_out else f"peer exit code {child.returncode}"
                if out and out.get("error"):
                    why += f": {out['error']}"
                lines.append(self._failed(base, f"{why}; log {log_path}:\n{log_tail(log_path)}"))
                continue
            rss = max(filter(None, [child.peak_rss_mb, out.get("peak_rss_mb")]), default=None)
            # versions: what the peer's own virtualenv ran (its script reports them); harness_versions:
            # the mmtricks process that prepared the rows and scored the predictions.
            line = {**base, "status": "ok", **{k: out.get(k) for k in PEER_FIELDS if k in out}, "peak_rss_mb": rss,
                    "versions": dict(out.get("versions") or {}), "harness_versions": versions(),
                    "contention": contention,
                    "peer_output": {k: v for k, v in out.items() if k not in (*PEER_FIELDS, "versions")}}
            lines.append(line)
        return lines

    def _watchdog(self, ds: Any) -> float:
        """Seconds after which a child is killed: the fit limit, prediction and start-up slack."""
        return 3 * self.limit(ds) + 600

    def _env(self, mmtricks_path: bool = True) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        if mmtricks_path:  # the worker imports this very mmtricks, installed or not
            src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        if self.spec.threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(self.spec.threads)
        return env


def _peers() -> dict[str, str]:
    from .configs import PEERS

    return PEERS


def _interrupt(signum, frame):  # pragma: no cover - exercised by `kill`
    raise KeyboardInterrupt(f"signal {signum}")


def run_bench(spec: BenchSpec, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Run ``spec`` (see :class:`Bench`); return counts of new result lines by status.

    SIGTERM is turned into KeyboardInterrupt while it runs, so ``kill PID`` also ends the
    run's child process instead of leaving it behind.
    """
    import signal
    import threading

    bench = Bench(spec, echo)
    if threading.current_thread() is not threading.main_thread():
        return bench.run()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench.run()
    finally:
        signal.signal(signal.SIGTERM, previous)

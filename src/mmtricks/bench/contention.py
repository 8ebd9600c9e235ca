"""Was a run slowed by a competing process? Measured around each fit, judged against earlier runs.

Two checks, either one flags a result line ``"contended": true`` with ``contended_reason``:

1. **Step time against earlier runs.** Seconds per optimizer step (``fit_summary``:
   train seconds / steps; divided by the plan's gradient accumulation when the fit recorded
   its plan, i.e. seconds per micro batch, so that two fits whose time-limit plans chose
   different accumulations still compare; validations are included either way, and they
   scale with the micro batches too; AutoGluon MultiModalPredictor: fit seconds / epochs it
   validated) against the median of the same config on the same data set, profile, train
   missingness and micro batch among the clean ``ok`` lines already recorded. More than
   :data:`STEP_RATIO` times that median is contention: the same work on the same rows took
   longer. The first run of a group has nothing to compare with; check 2 covers it.
2. **CPU used by other processes during the fit.** From ``/proc/stat`` (Linux): the busy CPU
   time of the whole machine over the fit's wall time (hypervisor steal included), minus the
   run's own CPU time (``os.wait4`` of its process, which includes its reaped children). More
   than :data:`OTHER_CORES` cores on average is contention. Fits shorter than
   :data:`MIN_WINDOW_S` are not judged this way (a short burst of anything would count).
   Without ``/proc/stat``, the 1-minute load average at the end of the fit stands in: above
   the CPU count plus :data:`LOAD_MARGIN` for a config that asked for at most that many
   threads (the AutoGluon peers start loader workers of their own, so their load is not judged).

The 1-minute load averages before and after the fit (``os.getloadavg``) are recorded in
every line's ``contention`` field either way. The runner reruns a flagged unit once; a line
still flagged stays out of the resume set (a resumed bench redoes it) and out of the
report's means.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Any, Iterable, Optional

STEP_RATIO = 1.3  # a step this many times the median of the same group's earlier runs: contended
OTHER_CORES = 0.25  # other processes' average CPU use during the fit, in cores, above which: contended
LOAD_MARGIN = 1.0  # without /proc/stat: 1-minute load above cpus + this at the end of the fit: contended
MIN_WINDOW_S = 20.0  # fits shorter than this are not judged by CPU use or load
PEERS_WITH_WORKERS = ("autogluon_mm", "autogluon_tabular", "autogluon_stack")


def load_average() -> Optional[float]:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def busy_cpu_seconds(stat_path: str = "/proc/stat") -> Optional[float]:
    """CPU seconds the whole machine has been busy since boot (steal included); None off Linux."""
    try:
        with open(stat_path, encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    values = [float(v) for v in fields[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + (values[7] if len(values) > 7 else 0.0)
    return busy / float(os.sysconf("SC_CLK_TCK"))


def start_probe() -> dict[str, Any]:
    """What is measured just before a fit starts."""
    return {"t": time.monotonic(), "load": load_average(), "busy": busy_cpu_seconds()}


def finish_probe(probe: dict[str, Any], child_cpu_seconds: Optional[float]) -> dict[str, Any]:
    """The ``contention`` record of a fit: load before / after, wall seconds, other processes' cores."""
    wall = time.monotonic() - probe["t"]
    busy = busy_cpu_seconds()
    others = None
    if probe.get("busy") is not None and busy is not None and child_cpu_seconds is not None and wall > 0:
        others = round(max(0.0, busy - probe["busy"] - child_cpu_seconds) / wall, 3)
    return {"load_before": probe.get("load"), "load_after": load_average(), "cpus": os.cpu_count(),
            "wall_seconds": round(wall, 2), "run_cpu_seconds": None if child_cpu_seconds is None
            else round(child_cpu_seconds, 2), "others_cores": others}


def _plan(line: dict[str, Any]) -> dict[str, Any]:
    summary = line.get("fit_summary") if isinstance(line.get("fit_summary"), dict) else {}
    return summary.get("plan") if isinstance(summary.get("plan"), dict) else {}


def step_seconds(line: dict[str, Any]) -> Optional[float]:
    """Seconds per optimizer step of a result line, per micro batch when its plan says how many
    micro batches a step had (AutoGluon MM: per epoch); None when unknown."""
    summary = line.get("fit_summary") if isinstance(line.get("fit_summary"), dict) else {}
    if summary.get("seconds_per_step"):
        accumulate = _plan(line).get("accumulate")
        return float(summary["seconds_per_step"]) / (float(accumulate) if accumulate else 1.0)
    info = line.get("fit_info") if isinstance(line.get("fit_info"), dict) else {}
    if info.get("steps") and info.get("train_seconds"):  # lines written before fit_summary existed
        return float(info["train_seconds"]) / float(info["steps"])
    peer = line.get("peer_output") if isinstance(line.get("peer_output"), dict) else {}
    if line.get("config") == "autogluon_mm" and peer.get("epochs") and line.get("fit_seconds"):
        return float(line["fit_seconds"]) / float(peer["epochs"])
    return None


def step_group(line: dict[str, Any]) -> tuple:
    """Lines whose step times are comparable: same data set, config, profile, train ratio and
    micro batch (None for lines without a plan: per step, not per micro batch)."""
    return (line.get("dataset"), line.get("config"), line.get("profile"),
            round(float(line.get("missing_train") or 0.0), 4), _plan(line).get("micro_batch"))


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("dataset", "config", "seed", "profile", "missing_train", "missing_test")
    return all(a.get(k) == b.get(k) for k in keys) and a.get("started_at") == b.get("started_at")


def contention_reasons(line: dict[str, Any], earlier: Iterable[dict[str, Any]],
                       requested_threads: Optional[int] = None) -> list[str]:
    """Why ``line`` looks slowed by another process (empty: it does not); see the module doc.

    Args:
        line: A result line with ``status`` ok (others are never contended).
        earlier: Lines already recorded (any status); only clean ok lines of the same
            :func:`step_group` count.
        requested_threads: Threads the run was given (``--threads``; None: the CPU count).
    """
    if line.get("status") != "ok":
        return []
    reasons = []
    mine = step_seconds(line)
    if mine is not None:
        group = step_group(line)
        times = [t for other in earlier
                 if other.get("status") == "ok" and not other.get("contended") and not _same_run(other, line)
                 and step_group(other) == group and (t := step_seconds(other)) is not None]
        if times:
            median = statistics.median(times)
            if median > 0 and mine > STEP_RATIO * median:
                unit = ("epoch" if line.get("config") == "autogluon_mm"
                        else "micro batch" if _plan(line).get("accumulate") else "step")
                reasons.append(f"{mine:.3g} s per {unit} is {mine / median:.2f}x the median {median:.3g} s of "
                               f"{len(times)} earlier run{'s' if len(times) != 1 else ''} of this config and data "
                               f"set (limit {STEP_RATIO:g}x)")
    probe = line.get("contention") if isinstance(line.get("contention"), dict) else {}
    if (probe.get("wall_seconds") or 0.0) >= MIN_WINDOW_S:
        others, cpus = probe.get("others_cores"), probe.get("cpus") or os.cpu_count() or 1
        if others is not None:
            if others > OTHER_CORES:
                reasons.append(f"other processes used {others:.2f} of {cpus} cores on average during the fit "
                               f"(limit {OTHER_CORES:g})")
        elif probe.get("load_after") is not None and line.get("config") not in PEERS_WITH_WORKERS:
            if (requested_threads or cpus) <= cpus and probe["load_after"] > cpus + LOAD_MARGIN:
                reasons.append(f"1-minute load {probe['load_after']:.2f} at the end of the fit on {cpus} cores "
                               f"(limit {cpus + LOAD_MARGIN:g})")
    return reasons


def mark(line: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """Set ``contended`` (and ``contended_reason`` when true) on an ok line; returns it."""
    if line.get("status") == "ok":
        line["contended"] = bool(reasons)
        if reasons:
            line["contended_reason"] = "; ".join(reasons)
        else:
            line.pop("contended_reason", None)
    return line

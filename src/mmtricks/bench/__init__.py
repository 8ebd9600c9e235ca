"""Benchmark harness: data set folders, runs (mmtricks presets and peers), resume, report.

``mmtricks bench`` (cli.py) plans runs (runner.py) over data sets (datasets.py) under a
profile (profiles.py), writes the rows every config sees (prepare.py, missing.py), fits
each run in a child process (worker.py, process.py; peers in linear.py, autogluon.py),
appends results.jsonl (results.py), flags runs slowed by another process (contention.py)
and turns the lines into a report (report.py, plots.py).

This module stays light: ``load_dataset`` and ``BenchDataset`` are imported on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BenchDataset", "load_dataset", "corrupt"]


def __getattr__(name: str) -> Any:
    if name in ("BenchDataset", "load_dataset"):
        from . import datasets

        return getattr(datasets, name)
    if name == "corrupt":
        from .missing import corrupt

        return corrupt
    raise AttributeError(f"module 'mmtricks.bench' has no attribute {name!r}")

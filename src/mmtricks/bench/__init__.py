"""Benchmark harness: data set folders, runs (mmtricks presets and peers), resume, report."""

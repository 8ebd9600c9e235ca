"""`mmtricks bench ...` (placeholder until the harness lands)."""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("bench", help="benchmark harness (see docs/benchmarks.md)")


def run(args) -> int:
    print("mmtricks bench: not available yet")
    return 2

"""results.jsonl: one JSON object per (dataset, config, seed, missing ratios, profile) run.

Each line is written whole and flushed, so an interrupted bench leaves a readable file;
a half-written last line is ignored on reading. The last line of a key wins.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from typing import Any, Iterable, Optional

RESULTS = "results.jsonl"
SCHEMA_VERSION = 1
FINAL = ("ok", "skipped", "failed")
PACKAGES = ("mmtricks", "torch", "transformers", "timm", "lightning-fabric", "scikit-learn", "pandas", "numpy",
            "pyarrow")


def ratio_key(value: Optional[float]) -> float:
    """A missingness ratio as stored and compared (4 decimals; None -> 0)."""
    return round(float(value or 0.0), 4)


def run_key(line: dict[str, Any]) -> tuple:
    """The resume key of a result line."""
    return (line.get("dataset"), line.get("config"), int(line.get("seed", 0)),
            ratio_key(line.get("missing_train")), ratio_key(line.get("missing_test")), line.get("profile"))


def read_results(out_dir: str) -> list[dict[str, Any]]:
    """Every well-formed line of ``out_dir/results.jsonl`` (empty when the file is absent)."""
    path = os.path.join(out_dir, RESULTS)
    if not os.path.isfile(path):
        return []
    lines = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                continue  # an interrupted write
            if isinstance(item, dict) and "dataset" in item:
                lines.append(item)
    return lines


def latest(lines: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Key -> the last line written for it."""
    out: dict[tuple, dict[str, Any]] = {}
    for line in lines:
        out[run_key(line)] = line
    return out


def append_result(out_dir: str, line: dict[str, Any]) -> None:
    """Append one line to ``out_dir/results.jsonl`` (flushed and fsynced)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, RESULTS)
    # A previous run killed mid-write leaves a line without its newline: start a fresh one.
    prefix = ""
    if os.path.isfile(path) and os.path.getsize(path) > 0:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            prefix = "" if fh.read(1) == b"\n" else "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(prefix + json.dumps({"schema": SCHEMA_VERSION, **line}, default=_jsonable) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Installed versions of the libraries that matter to a run, and python's."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def source_commit(path: Optional[str] = None) -> dict[str, Any]:
    """The git commit of the mmtricks source tree that runs, and whether that tree differs from it.

    Returns ``{"commit": sha, "commit_dirty": bool}``: ``commit_dirty`` is True when tracked files
    under the package folder (``src/mmtricks``) or the peer scripts (``bench/peers``) differ from
    the commit, or untracked files sit there. Both are None when the package is not in a git
    checkout (an installed wheel) or git is missing.

    Args:
        path: The package folder to ask about (default: this mmtricks package).
    """
    pkg = os.path.abspath(path or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    none = {"commit": None, "commit_dirty": None}

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", pkg, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    root = git("rev-parse", "--show-toplevel")
    if not sha or not root:
        return none
    paths = [pkg] + [p for p in (os.path.join(root.strip(), "bench", "peers"),) if os.path.isdir(p)]
    status = git("status", "--porcelain", "--", *paths)
    return {"commit": sha.strip(), "commit_dirty": None if status is None else bool(status.strip())}

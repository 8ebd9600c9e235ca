"""Run one child process with a time limit, its output in a log file, and its own peak memory."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass
class ChildResult:
    """How a child process ended.

    Attributes:
        returncode: Exit status (negative: killed by that signal).
        seconds: Wall-clock seconds.
        peak_rss_mb: Peak resident memory of the child and its waited-for descendants, MiB.
        timed_out: True when the child was killed for running past the limit.
        cpu_seconds: User + system CPU time of the child and its waited-for descendants.
    """

    returncode: int
    seconds: float
    peak_rss_mb: Optional[float]
    timed_out: bool = False
    cpu_seconds: Optional[float] = None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_child(cmd: Sequence[str], log_path: str, timeout: Optional[float] = None,
              env: Optional[dict] = None, cwd: Optional[str] = None) -> ChildResult:
    """Run ``cmd`` with stdout and stderr appended to ``log_path``.

    The child gets its own process group, so a time-out or Ctrl-C ends it and whatever
    it started. Peak memory comes from ``os.wait4``: it is this child's alone.

    Raises:
        KeyboardInterrupt: Re-raised after the child is killed.
    """
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    start = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if timeout is not None and time.monotonic() - start > timeout:
                    timed_out = True
                    _kill_group(proc.pid)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.2)
        except BaseException:
            _kill_group(proc.pid)
            try:
                os.wait4(proc.pid, 0)
            except ChildProcessError:
                pass
            proc.returncode = -9
            raise
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here: keep Popen from waiting on it again
    return ChildResult(returncode=code, seconds=round(time.monotonic() - start, 3),
                       peak_rss_mb=round(usage.ru_maxrss / scale, 1), timed_out=timed_out,
                       cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3))


def log_tail(log_path: str, n_chars: int = 1500) -> str:
    """The end of a log file (for the reason of a failed run)."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_chars))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""

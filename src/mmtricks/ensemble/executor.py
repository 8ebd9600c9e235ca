"""Where pool members train: one after another in this process (default), or in parallel on Ray.

``executor="ray"`` sends each network member to a Ray task that asks for
``ensemble.cpus_per_member`` CPUs (and ``ensemble.gpus_per_member`` GPUs); the task fits
the member with that many torch threads, saves it into the run folder and returns the
folder with its validation outputs; this process loads it back. Classic members stay
local (seconds). ``ray_address`` joins a running cluster; without it a local Ray is
started on this machine only: listeners on 127.0.0.1, no dashboard, its temporary
folder inside the run folder, no token file in the home folder.
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Callable, Optional

EXECUTORS = ("local", "ray")


def start_ray(address: Optional[str], num_cpus: Optional[int], run_dir: str) -> None:
    """Join ``address``, or start a loopback-only local Ray (once per process)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keeps every listener on 127.0.0.1 here
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written in the home folder
    try:
        import ray
    except ImportError as exc:
        from ..errors import ConfigError

        raise ConfigError("ensemble.executor=ray needs Ray: pip install 'mmtricks[ray]' (or use the default "
                          "ensemble.executor=local).") from exc

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    # unix socket paths must stay short: a folder of its own under the run folder's temp root
    temp = tempfile.mkdtemp(prefix="ray-", dir=run_dir if len(run_dir) < 40 else None)
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)


def fit_remote(tasks: list[dict], run_task: Callable[[dict], dict], *, cpus: int, gpus: float) -> list[dict]:
    """Run ``run_task(task)`` for every task as Ray tasks; results in task order."""
    import ray

    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_run_with_threads)
    return ray.get([remote.remote(run_task, task, cpus) for task in tasks])


def _run_with_threads(run_task: Callable[[dict], dict], task: dict, threads: int) -> dict:
    import torch

    torch.set_num_threads(max(1, int(threads)))  # one torch thread per CPU the task was given
    start = time.time()
    out = run_task(task)
    out["seconds"] = round(time.time() - start, 2)
    return out

"""Resume points: enough state to continue a killed fit where its last validation left it.

Written at each validation into ``<work_dir>/resume/``: the model weights and the
optimizer state as safetensors, every RNG a fit draws from (torch on the CPU and on each
CUDA device, numpy's and Python's global generators), and the loop's counters and step
plan as JSON. Data-side randomness (shuffling, modality dropout) derives from
``(seed, epoch, row)`` and needs no state.
``state.json`` is replaced last and atomically, so a kill at any moment leaves either
the previous resume point or the new one, never a mix.
"""
from __future__ import annotations

import json
import os
import random
from typing import Optional

import numpy as np

import torch

from .checkpoint import load_state, save_state, state_to_cpu


def optimizer_tensors(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_resume_point(folder: str, model, optimizer, counters: dict,
                      extra_tensors: Optional[dict[str, torch.Tensor]] = None) -> None:
    """``extra_tensors``: more state to keep (training hooks'), names starting with 'hook.'."""
    os.makedirs(folder, exist_ok=True)
    step = int(counters["step"])
    model_file, optim_file = f"model-{step:07d}.safetensors", f"optim-{step:07d}.safetensors"
    save_state(state_to_cpu(model), os.path.join(folder, model_file))
    tensors, meta = optimizer_tensors(optimizer)
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra_tensors or {}).items()})
    save_state(tensors, os.path.join(folder, optim_file))
    state = {**counters, "model_file": model_file, "optim_file": optim_file, "optimizer": meta, "rng": rng_meta}
    tmp = os.path.join(folder, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(folder, "state.json"))
    for name in os.listdir(folder):  # the previous point is no longer needed
        if name.endswith(".safetensors") and name not in (model_file, optim_file):
            os.remove(os.path.join(folder, name))


def read_resume_point(folder: str) -> Optional[dict]:
    path = os.path.join(folder, "state.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def restore(folder: str, state: dict, model, optimizer) -> dict[str, torch.Tensor]:
    """Load the weights, optimizer state and RNG state of a resume point; return its extra tensors."""
    getattr(model, "module", model).load_state_dict(load_state(os.path.join(folder, state["model_file"])))
    tensors = load_state(os.path.join(folder, state["optim_file"]))
    rng = {k: tensors.pop(k) for k in list(tensors) if k.startswith("rng.")}
    extra = {k: tensors.pop(k) for k in list(tensors) if k.startswith("hook.")}
    optimizer.load_state_dict(optimizer_state(tensors, state["optimizer"]))
    _set_rng_state(rng, state.get("rng", {}))
    return extra


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Every global generator a fit may draw from: tensors for safetensors, the rest for JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.int32).copy())
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if "rng.numpy" in tensors and "numpy" in meta:
        kind, pos, has_gauss, gauss = meta["numpy"]
        np.random.set_state((kind, tensors["rng.numpy"].numpy().view(np.uint32), pos, has_gauss, gauss))
    if "python" in meta:
        version, internal, gauss_next = meta["python"]
        random.setstate((version, tuple(internal), gauss_next))

"""Top-k checkpoints of one run, kept on disk as safetensors (never pickle)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch


@dataclass
class CheckpointRecord:
    path: str
    score: float
    step: int


def state_to_cpu(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the module's state dict (shared tensors de-duplicated by clone)."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def save_state(state: dict[str, torch.Tensor], path: str) -> None:
    from safetensors.torch import save_file

    tmp = path + ".tmp"
    save_file(state, tmp)
    os.replace(tmp, path)  # a crash never leaves a half-written checkpoint under the real name


def load_state(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


class TopKCheckpoints:
    """Keep the ``k`` best-scoring checkpoints of a run in ``folder``; delete the others."""

    def __init__(self, folder: str, k: int, greater_is_better: bool, write: bool = True):
        self.folder = folder
        self.k = k
        self.greater = greater_is_better
        self.write = write  # False on every process but rank zero: same records, no files written
        self.records: list[CheckpointRecord] = []
        os.makedirs(folder, exist_ok=True)

    def _rank(self, r: CheckpointRecord) -> tuple:
        return (-r.score if self.greater else r.score, r.step)

    def load_existing(self) -> None:
        """Pick up the records a killed run left in the folder (files that still exist)."""
        path = os.path.join(self.folder, "topk.json")
        if os.path.isfile(path):
            with open(path) as f:
                self.records = [CheckpointRecord(**r) for r in json.load(f) if os.path.isfile(r["path"])]

    def would_keep(self, score: float) -> bool:
        if len(self.records) < self.k:
            return True
        worst = sorted(self.records, key=self._rank)[-1]
        return (score > worst.score) if self.greater else (score < worst.score)

    def offer(self, module: torch.nn.Module, score: float, step: int) -> bool:
        """Save ``module`` when its score makes the top k; return whether it was kept."""
        if not self.would_keep(score):
            return False
        path = os.path.join(self.folder, f"step-{step:07d}.safetensors")
        if self.write:
            save_state(state_to_cpu(module), path)
        self.records = [r for r in self.records if r.step != step]  # a resumed run redoing a step
        self.records.append(CheckpointRecord(path, float(score), step))
        self.records.sort(key=self._rank)
        for dropped in self.records[self.k:]:
            if self.write and os.path.exists(dropped.path):
                os.remove(dropped.path)
        self.records = self.records[: self.k]
        if self.write:
            with open(os.path.join(self.folder, "topk.json"), "w") as f:
                json.dump([asdict(r) for r in self.records], f, indent=2)
        return True

    def ranked(self) -> list[CheckpointRecord]:
        """Best first."""
        return sorted(self.records, key=self._rank)

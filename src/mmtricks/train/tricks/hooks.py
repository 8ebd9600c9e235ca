"""Training hooks: the one protocol through which tricks act on a fit (``tricks.hooks``).

The loop calls every hook listed in ``tricks.hooks``, in that order, at four points, and
never names a trick:

1. ``batch(batch, ctx)`` before the forward pass: change the micro batch (input level);
2. ``around_forward(net, batch, ctx)``: a context manager around the forward pass, e.g.
   module hooks that change features inside the encoders or the fusion (manifold mixup);
3. ``task_loss(out, batch, ctx)``: replace the task loss (mixed targets; at most one hook
   may), and ``extra_loss(out, batch, ctx)``: a term added to it (alignment losses);
4. ``after_step(ctx)`` after each optimizer step (a hook with an optimiser of its own).

A hook that acts in the training loader (input augmentation) has a static
``data_transforms(cfg, pre, texts, seed)`` giving the training set a row hook and an image
transform (:func:`data_transforms`). A hook that keeps state across steps returns it from
``state_dict()`` (JSON values and tensors, saved in resume points) and takes it back in
``load_state_dict()``. Random choices come from
:meth:`HookContext.generator`, seeded by (seed, hook, epoch, the batch's rows, micro batch), so a
resumed fit draws exactly what the uninterrupted fit drew, whatever the loader workers.
Hooks are registered by name in :data:`HOOKS`, one file per trick in this folder.
"""
from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ...registry import Registry

HOOKS: Registry = Registry("training hook")  # name -> class(cfg, problem_type, n_out)


@dataclass
class HookContext:
    """What a hook may read about the fit at each call."""

    seed: int
    problem_type: str
    criterion: Callable[..., torch.Tensor]  # loss(logits, y, sample_weight=None), the task loss
    net: Any = None  # the network without its Fabric wrapper (its modules: encoders, fusion, head)
    step: int = 0  # optimizer steps done
    micro: int = 0  # micro batch within the step
    extra: dict = field(default_factory=dict)

    def generator(self, hook: str, batch: dict) -> torch.Generator:
        """A CPU generator seeded by (seed, hook, the batch's first row index, micro batch).

        The row index (``batch['row']``: epoch * n + row) fixes the epoch and the batch's place
        in it, so the draw is the same in a resumed fit.
        """
        first = int(batch["row"][0]) if "row" in batch else self.step
        key = zlib.crc32(f"{self.seed}:{hook}:{first}:{self.step}:{self.micro}".encode())
        return torch.Generator().manual_seed(key)


class TrainingHook:
    """Base class: every method does nothing; a trick overrides what it needs."""

    name = ""

    def __init__(self, cfg, problem_type: str, n_out: int):
        self.cfg, self.problem_type, self.n_out = cfg, problem_type, n_out

    def setup(self, net: torch.nn.Module) -> None:
        """Called once with the network before training (build what the hook needs)."""

    def batch(self, batch: dict, ctx: HookContext) -> dict:
        return batch

    def around_forward(self, net: torch.nn.Module, batch: dict, ctx: HookContext):
        return contextlib.nullcontext()

    def task_loss(self, out: dict, batch: dict, ctx: HookContext) -> Optional[torch.Tensor]:
        return None

    def extra_loss(self, out: dict, batch: dict, ctx: HookContext) -> Optional[torch.Tensor]:
        return None

    def after_step(self, ctx: HookContext) -> None:
        """After each optimizer step."""

    def state_dict(self) -> dict:
        """``{'meta': JSON-able values, 'tensors': {name: tensor}}`` to keep in resume points."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what :meth:`state_dict` gave."""


def hook_states(hooks: list[TrainingHook]) -> dict:
    """The JSON part of every hook's state, for a resume point's counters."""
    return {"hooks": {h.name: h.state_dict().get("meta", {}) for h in hooks}}


def hook_tensors(hooks: list[TrainingHook]) -> dict:
    """The tensors of every hook's state, named ``hook.<name>.<key>``."""
    return {f"hook.{h.name}.{k}": v for h in hooks for k, v in h.state_dict().get("tensors", {}).items()}


def restore_hooks(hooks: list[TrainingHook], point: dict, tensors: dict) -> None:
    """Give each hook back its state from a resume point (its JSON part and its tensors)."""
    for h in hooks:
        prefix = f"hook.{h.name}."
        mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        meta = point.get("hooks", {}).get(h.name, {})
        if mine or meta:
            h.load_state_dict({"meta": meta, "tensors": mine})


def _fill() -> None:
    from . import align, input_aug, lemda, mixup  # noqa: F401  (each registers itself)


def data_transforms(cfg, pre, train_df, seed: int) -> dict:
    """What the configured hooks do in the training loader: ``row_hook`` and ``image_augment``.

    A hook class that acts on the data side has a static ``data_transforms(cfg, pre, texts,
    seed)``; ``texts`` are the training rows' raw text cells (text augmentation re-tokenises).
    """
    from ...errors import ConfigError

    _fill()
    makers = [m for m in (getattr(HOOKS.get(n), "data_transforms", None) for n in hook_names(cfg)) if m is not None]
    if not makers:
        return {}
    texts = pre.text.raw_texts(train_df) if pre.text is not None else None  # read once for every such hook
    out: dict = {}
    for make in makers:
        for key, value in make(cfg, pre, texts, seed).items():
            if key in out:
                raise ConfigError(f"tricks.hooks: two hooks set the training set's {key}; keep one of them.")
            out[key] = value
    return out


def chain_row_hooks(hooks: list):
    """One row hook calling ``hooks`` in order (None when there are none)."""
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def chained(row: dict, epoch: int = 0, index: int = 0) -> dict:
        for hook in hooks:
            row = hook(row, epoch, index)
        return row

    return chained


def hook_names(cfg) -> list[str]:
    """The hooks ``tricks.hooks`` lists, in order."""
    return [h.strip() for h in cfg.tricks.hooks.split(",") if h.strip()]


def build_hooks(cfg, problem_type: str, n_out: int, net: torch.nn.Module) -> list[TrainingHook]:
    """The configured hooks, set up on ``net``.

    Raises:
        ConfigError: an unknown hook name, or two hooks that each replace the task loss.
    """
    from ...errors import ConfigError

    _fill()
    hooks = [HOOKS.get(name)(cfg, problem_type, n_out) for name in hook_names(cfg)]
    replacing = [h.name for h in hooks if type(h).task_loss is not TrainingHook.task_loss]
    if len(replacing) > 1:
        raise ConfigError(f"tricks.hooks: {replacing} each replace the task loss; keep one of them.")
    for hook in hooks:
        hook.setup(net)
    return hooks


def list_hooks() -> list[str]:
    _fill()
    return HOOKS.names()


def step_loss(hooks: list[TrainingHook], out: dict, batch: dict, ctx: HookContext) -> torch.Tensor:
    """The micro batch's loss: the task loss (or a hook's replacement), plus every hook's terms."""
    loss = None
    for hook in hooks:
        replaced = hook.task_loss(out, batch, ctx)
        if replaced is not None:
            loss = replaced
    if loss is None:
        loss = ctx.criterion(out["logits"], batch["label"], batch.get("weight"))
    for hook in hooks:
        term = hook.extra_loss(out, batch, ctx)
        if term is not None:
            loss = loss + term
    return loss

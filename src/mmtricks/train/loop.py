"""The training loop, in Lightning Fabric's vocabulary.

One function, :func:`train`: AdamW with layer-wise lr groups, gradient accumulation to
the effective batch, warmup + cosine schedule, global-norm clipping, validation a few
times per epoch, early stopping, top-k checkpoints on disk, a time limit that still
leaves room for the soup, and the soup at the end. The same code runs on CPU, one GPU
or several (Fabric strategies).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..config import MMConfig
from ..data.dataset import ReplayBatches
from .checkpoint import TopKCheckpoints
from .metrics import Metric
from .resume import read_resume_point, restore, save_resume_point
from .soup import make_soup
from .tricks.grad_clip import clip_gradients
from .tricks.layer_decay import param_groups
from .tricks.schedule import WarmupCosine


@dataclass
class FitResult:
    state: dict  # final weights on CPU
    val_score: float
    soup: dict
    stopped: str  # 'max_epochs', 'early_stopping' or 'time_limit'
    steps: int
    epochs: float
    seconds: float
    history: list = field(default_factory=list)  # one dict per validation
    resumed_from: Optional[int] = None  # the step a resumed fit continued from


def resolve_precision(env) -> str:
    """``env.precision`` with 'auto' made concrete: mixed precision on GPUs, 32-true elsewhere."""
    if env.precision != "auto":
        return env.precision
    if torch.cuda.is_available() and env.accelerator in ("auto", "cuda", "gpu"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def make_fabric(env):
    """A Fabric for the configured accelerator; mixed precision by default on GPUs."""
    from lightning_fabric import Fabric

    precision = resolve_precision(env)
    devices = env.devices
    if devices != "auto":
        devices = [int(d) for d in devices.split(",")] if "," in devices else int(devices)
    fabric = Fabric(accelerator=env.accelerator, devices=devices, strategy=env.strategy, precision=precision)
    if fabric.world_size > 1:
        fabric.launch()  # several devices: joins (or starts) the processes of the strategy
    return fabric


def plan_batches(n_train: int, optim, world_size: int = 1) -> tuple[int, int]:
    """``(micro_batch, accumulate)`` for the effective batch.

    The effective batch is ``optim.batch_size``, shrunk on small training sets so that an
    epoch still has ``optim.min_steps_per_epoch`` optimizer steps (a 400-row table with a
    batch of 128 would otherwise train on 3 steps an epoch).
    """
    effective = optim.batch_size
    if optim.min_steps_per_epoch > 0:
        effective = min(effective, max(1, n_train // (optim.min_steps_per_epoch * world_size)))
    micro = max(1, min(optim.micro_batch_size, effective))
    return micro, max(1, round(effective / micro))


def loss_fn(problem_type: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if problem_type == "regression":
        return lambda logits, y: torch.nn.functional.mse_loss(logits[:, 0].float(), y.float())
    return lambda logits, y: torch.nn.functional.cross_entropy(logits.float(), y)


@torch.no_grad()
def predict_outputs(model, batches, problem_type: str) -> np.ndarray:
    """Probabilities (n, C) for classification, standardised values (n,) for regression.

    ``batches`` hold CPU tensors; they move to the model's device here (a Fabric-wrapped
    model applies its precision's autocast itself).
    """
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for batch in batches:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        logits = model(batch)["logits"].float()
        outs.append(logits[:, 0] if problem_type == "regression" else logits.softmax(-1))
    return torch.cat(outs).cpu().numpy()


def train(net, train_loader, val_loader, val_labels: np.ndarray, *, cfg: MMConfig, problem_type: str,
          metric: Metric, run_dir: str, deadline: Optional[float] = None, seed: int = 0,
          quiet: bool = False, log: Callable[[str], None] = print, resumable: bool = False,
          resume: bool = False) -> FitResult:
    """Train ``net`` and return the soup of its best checkpoints.

    Args:
        train_loader, val_loader: DataLoaders of micro batches (Fabric sets up the training
            one; validation batches are kept after the first check, see ``env.val_cache_mb``).
        val_labels: validation targets in the encoding the metric expects.
        deadline: ``time.time()`` by which training, validation and soup must be done.
        resumable: write a resume point into ``run_dir/resume`` at each validation.
        resume: continue from the resume point in ``run_dir`` when there is one.
    """
    from tqdm.auto import tqdm

    o = cfg.optim
    start = time.time()
    fabric = make_fabric(cfg.env)
    fabric.seed_everything(seed, verbose=False)
    optimizer = torch.optim.AdamW(
        param_groups(net, o.lr, o.weight_decay, o.layer_decay, o.head_lr_mult), lr=o.lr
    )
    model, optimizer = fabric.setup(net, optimizer)
    sampler = train_loader.sampler  # EpochSampler: order fixed by (seed, epoch)
    train_loader = fabric.setup_dataloaders(train_loader)
    # Validation inputs are the same at every check: read once, replayed from memory.
    val_batches = ReplayBatches(val_loader, cfg.env.val_cache_mb * 2**20)

    micro, accumulate = plan_batches(len(train_loader.dataset), o, fabric.world_size)
    n_batches = len(train_loader)
    steps_per_epoch = max(1, math.ceil(n_batches / accumulate))
    planned = steps_per_epoch * o.max_epochs
    schedule = WarmupCosine(planned, o.warmup_fraction, o.schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    val_points = {math.ceil(steps_per_epoch * j / o.val_checks_per_epoch) for j in range(1, o.val_checks_per_epoch + 1)}
    criterion = loss_fn(problem_type)
    ckpts = TopKCheckpoints(os.path.join(run_dir, "checkpoints"), o.top_k, metric.greater_is_better)
    resume_dir = os.path.join(run_dir, "resume")

    def validate() -> float:
        scores = predict_outputs(model, val_batches, problem_type)
        model.train()
        return metric.fn(val_labels, scores)

    step, best, bad_checks, stopped = 0, metric.worst(), 0, "max_epochs"
    start_epoch, skip_batches, resumed_from = 0, 0, None
    history: list[dict] = []
    t_step: Optional[float] = None  # seconds per optimizer step (moving average)
    t_val: Optional[float] = None  # seconds per validation
    running_loss: Optional[float] = None
    point = read_resume_point(resume_dir) if resume else None
    if point is not None:
        restore(resume_dir, point, model, optimizer)
        ckpts.load_existing()
        step, best, bad_checks, history = point["step"], point["best"], point["bad_checks"], point["history"]
        start_epoch, skip_batches, running_loss = point["epoch"], point["batches_in_epoch"], point["running_loss"]
        scheduler.last_epoch = step
        schedule.set_horizon(point["horizon"])
        resumed_from = step
        log(f"Resuming from step {step} (epoch {start_epoch}, batch {skip_batches}).")

    def reserve() -> float:
        """Time kept for a last validation and the soup's evaluations."""
        val = t_val if t_val is not None else (t_step or 0.0) * len(val_loader) / max(1, 3 * accumulate)
        return val * (o.top_k + 1) + 2.0

    def replan() -> None:
        """Shorten the schedule's horizon to the steps the time limit leaves room for."""
        if deadline is None or t_step is None:
            return
        per_step = t_step + (t_val or 0.0) * len(val_points) / steps_per_epoch
        affordable = step + max(0.0, deadline - time.time() - reserve()) / per_step
        schedule.set_horizon(min(planned, int(affordable)))

    bar = tqdm(total=planned, initial=step, desc="train", unit="step", disable=quiet or not fabric.is_global_zero,
               dynamic_ncols=True, leave=False)
    model.train()
    done = False
    for epoch in range(start_epoch, o.max_epochs):
        first = skip_batches if epoch == start_epoch else 0  # batches a killed fit already trained on
        sampler.start_epoch(epoch, skip=first * micro)
        step_in_epoch = math.ceil(first / accumulate)
        t0 = time.time()
        for i, batch in enumerate(train_loader, start=first):
            last_of_step = (i + 1) % accumulate == 0 or i + 1 == n_batches
            with fabric.no_backward_sync(model, enabled=not last_of_step):
                loss = criterion(model(batch)["logits"], batch["label"])
                fabric.backward(loss / accumulate)
            running_loss = loss.item() if running_loss is None else 0.9 * running_loss + 0.1 * loss.item()
            if not last_of_step:
                continue
            clip_gradients(fabric, model, optimizer, o.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            step_in_epoch += 1
            dt = time.time() - t0
            t_step = dt if t_step is None else 0.8 * t_step + 0.2 * dt
            if step == 3:
                replan()
            bar.update(1)
            bar.set_postfix(loss=f"{running_loss:.4f}", val=f"{best:.4f}" if history else "-")
            out_of_time = deadline is not None and time.time() + t_step + reserve() > deadline
            if step_in_epoch in val_points or out_of_time or step >= schedule.total_steps:
                tv = time.time()
                score = validate()
                t_val = time.time() - tv
                if not np.isfinite(score):
                    score = metric.worst()
                improved = metric.better(score, best)
                best = score if improved else best
                bad_checks = 0 if improved else bad_checks + 1
                ckpts.offer(model, score, step)
                history.append({"step": step, "epoch": round(step / steps_per_epoch, 3), "val_score": score,
                                "loss": running_loss, "lr": scheduler.get_last_lr()[0],
                                "seconds": round(time.time() - start, 2)})
                replan()
                if resumable:
                    save_resume_point(resume_dir, model, optimizer, {
                        "step": step, "epoch": epoch, "batches_in_epoch": i + 1, "best": best,
                        "bad_checks": bad_checks, "history": history, "running_loss": running_loss,
                        "horizon": schedule.total_steps})
                say = bar.write if not bar.disable else log
                say(f"step {step} (epoch {step / steps_per_epoch:.2f}): val {metric.name} {score:.4f}"
                    f"{' *' if improved else ''}, train loss {running_loss:.4f}, {time.time() - start:.0f}s")
                if out_of_time:
                    stopped, done = "time_limit", True
                elif bad_checks >= o.patience:
                    stopped, done = "early_stopping", True
                elif step >= schedule.total_steps and schedule.total_steps < planned:
                    stopped, done = "time_limit", True
            if done:
                break
            t0 = time.time()
        if done:
            break
    bar.close()
    if not ckpts.records:  # the time limit hit before the first validation
        ckpts.offer(model, validate(), step)
        stopped = "time_limit"

    raw = getattr(model, "module", model)

    def evaluate_state(state: dict) -> float:
        raw.load_state_dict(state)
        return validate()

    state, soup_info = make_soup(ckpts.ranked(), o.soup, evaluate_state, metric.better)
    raw.load_state_dict(state)
    if stopped == "time_limit" and schedule.total_steps > step:
        log(f"Time limit reached at step {step} of {schedule.total_steps}: the learning rate did not finish annealing.")
    return FitResult(
        state={k: v.detach().cpu() for k, v in raw.state_dict().items()},
        val_score=float(soup_info["score"]),
        soup=soup_info,
        stopped=stopped,
        steps=step,
        resumed_from=resumed_from,
        epochs=round(step / steps_per_epoch, 3),
        seconds=round(time.time() - start, 2),
        history=history,
    )

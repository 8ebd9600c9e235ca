"""The training loop, in Lightning Fabric's vocabulary.

One function, :func:`train`: AdamW with layer-wise lr groups, gradient accumulation to
the effective batch, warmup + cosine schedule, global-norm clipping, validation a few
times per epoch, early stopping, top-k checkpoints on disk, a time limit that still
leaves room for the soup, and the soup at the end. The same code runs on CPU, one GPU
or several (Fabric strategies).
"""
from __future__ import annotations

import contextlib
import os
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
from .tricks.hooks import HookContext, build_hooks, hook_states, hook_tensors, restore_hooks, step_loss
from .tricks.layer_decay import param_groups
from .tricks.schedule import WarmupCosine
from . import plan as planning
from .plan import FloorUnreachable, StepPlan, StepTimes, row_plan, validation_rows


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
    plan: dict = field(default_factory=dict)  # StepPlan.summary()
    val_outputs: Optional[np.ndarray] = None  # the final weights' validation outputs, in metric units


def resolve_precision(env) -> str:
    """``env.precision`` with 'auto' made concrete: mixed precision on GPUs (bf16 where the card
    has it, else fp16), bf16 autocast on CPUs with native bf16 instructions (``cpu_native_bf16``),
    32-true elsewhere."""
    if env.precision != "auto":
        return env.precision
    if inference_device(env.accelerator) == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_native_bf16() else "32-true"


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that run bf16 natively


def cpu_native_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (one of ``CPU_BF16_FLAGS``, as torch's cpuinfo
    reports it). Without them bf16 is emulated and no faster than fp32; ARM CPUs keep 32-bit:
    the standard profile measured bf16 only on x86 (docs/benchmarks.md, the bf16 gate)."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        found = caps()
        return any(bool(found.get(flag, False)) for flag in CPU_BF16_FLAGS)
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def inference_device(accelerator: str) -> str:
    """'cuda' when a GPU is there and ``env.accelerator`` allows it ('auto', 'cuda', 'gpu'), else 'cpu'."""
    return "cuda" if torch.cuda.is_available() and accelerator in ("auto", "cuda", "gpu") else "cpu"


GPU_MICRO_BATCH = ((40, 128), (16, 64))  # (GiB of GPU memory at least, micro batch); smaller GPUs: CPU_MICRO_BATCH
GPU_MAX_WORKERS = 8


def for_device(cfg, log: Optional[Callable[[str], None]] = None):
    """``cfg`` with ``optim.micro_batch_size`` and ``env.num_workers`` made concrete where they
    are None (the defaults), for the device the fit trains on.

    On a CPU: micro batch 32 and no loader workers (training images are decoded once into the
    image cache; workers would take the cores the model needs). On a GPU: the micro batch from
    the first device's memory (128 from 40 GiB, 64 from 16 GiB, else 32) and
    ``min(8, CPUs - 1)`` workers per process, so the GPU does not wait on the input pipeline.
    Values the user set are kept. Returns a copy; the caller's config is left alone.
    """
    import copy

    if cfg.optim.micro_batch_size is not None and cfg.env.num_workers is not None:
        return cfg
    from .plan import CPU_MICRO_BATCH

    cfg = copy.deepcopy(cfg)
    micro, workers, where = CPU_MICRO_BATCH, 0, "CPU"
    if inference_device(cfg.env.accelerator) == "cuda":
        props = torch.cuda.get_device_properties(0)
        gib = props.total_memory / 2**30
        micro = next((size for least, size in GPU_MICRO_BATCH if gib >= least), micro)
        workers = max(0, min(GPU_MAX_WORKERS, (os.cpu_count() or 1) - 1))
        where = f"GPU {props.name} ({gib:.0f} GiB)"
    chosen = []
    if cfg.optim.micro_batch_size is None:
        cfg.optim.micro_batch_size = micro
        chosen.append(f"micro batch {micro}")
    if cfg.env.num_workers is None:
        cfg.env.num_workers = workers
        chosen.append(f"{workers} loader workers")
    if log is not None and where != "CPU":
        log(f"{where}: {', '.join(chosen)} (optim.micro_batch_size, env.num_workers).")
    return cfg


def autocast_for(precision: str, device: str):
    """The autocast context of a resolved ``env.precision`` on ``device`` ('cpu' or 'cuda'):
    bf16 for 'bf16-*', fp16 for '16-*' on a GPU, else none."""
    import contextlib

    if precision.startswith("bf16"):
        return torch.autocast(device, dtype=torch.bfloat16)
    if precision.startswith("16") and device == "cuda":
        return torch.autocast(device, dtype=torch.float16)
    return contextlib.nullcontext()


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
    """``(micro_batch, accumulate)`` from row counts (``train/plan.py``, rule 1)."""
    return row_plan(n_train, optim, world_size)


def loss_fn(problem_type: str, class_weights: Optional[torch.Tensor] = None) -> Callable[..., torch.Tensor]:
    """``loss(logits, y, sample_weight=None)``: MSE on standardised targets, or cross-entropy
    (optionally weighted per class); with sample weights (mean 1 over the training rows),
    the mean of the weighted per-row losses."""
    import torch.nn.functional as F

    def loss(logits, y, sample_weight=None):
        reduction = "mean" if sample_weight is None else "none"
        if problem_type == "regression":
            rows = F.mse_loss(logits[:, 0].float(), y.float(), reduction=reduction)
        else:
            weight = class_weights.to(logits.device) if class_weights is not None else None
            rows = F.cross_entropy(logits.float(), y, weight=weight, reduction=reduction)
        return rows if sample_weight is None else (rows * sample_weight.float()).mean()
    return loss


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
          metric: Metric, run_dir: str, time_budget: Optional[float] = None, seed: int = 0,
          quiet: bool = False, log: Callable[[str], None] = print, resumable: bool = False,
          resume: bool = False, to_metric_units: Optional[Callable[[np.ndarray], np.ndarray]] = None,
          class_weights: Optional[torch.Tensor] = None, require_floor: bool = False,
          val_weights: Optional[np.ndarray] = None) -> FitResult:
    """Train ``net`` and return the soup of its best checkpoints.

    Args:
        train_loader, val_loader: DataLoaders of micro batches (Fabric sets up the training
            one; validation batches are kept after the first check, see ``env.val_cache_mb``).
        val_labels: validation targets in the units the metric is reported in.
        time_budget: seconds from now by which training, validation and soup must be done.
        resumable: write a resume point into ``run_dir/resume`` at each validation.
        resume: continue from the resume point in ``run_dir`` when there is one.
        to_metric_units: maps the model's validation outputs to the units of ``val_labels``
            (regression: standardised values back to the label's scale).
        class_weights: per-class weights of the cross-entropy (None: unweighted).
        require_floor: raise :class:`~mmtricks.train.plan.FloorUnreachable` as soon as the
            time check shows ``time_budget`` cannot hold ``optim.min_steps`` steps.
        val_weights: sample weights of the validation rows for the metric (None: equal).
    """
    from tqdm.auto import tqdm

    o = cfg.optim
    now = planning.clock
    start = now()
    deadline = start + time_budget if time_budget is not None else None
    fabric = make_fabric(cfg.env)
    fabric.seed_everything(seed, verbose=False)
    if cfg.env.precision == "auto" and fabric.device.type == "cpu" and resolve_precision(cfg.env) != "32-true":
        log("Precision: bf16 autocast (env.precision=auto on a CPU with native bf16; "
            "env.precision=32-true trains in 32-bit).")
    elif cfg.env.precision.startswith("bf16") and fabric.device.type == "cpu" and not cpu_native_bf16():
        log(f"Warning: env.precision={cfg.env.precision} on a CPU without native bf16 (no avx512_bf16 or "
            "amx_bf16): bf16 is emulated here, many times slower than 32-bit; env.precision=auto picks 32-true "
            "on this CPU.")
    optimizer = torch.optim.AdamW(
        param_groups(net, o.lr, o.weight_decay, o.layer_decay, o.head_lr_mult), lr=o.lr
    )
    model, optimizer = fabric.setup(net, optimizer)
    sampler = train_loader.sampler  # EpochSampler: order fixed by (seed, epoch)
    sampler.rank, sampler.world = fabric.global_rank, fabric.world_size  # DDP: this rank's share of each epoch
    micro = train_loader.batch_size
    n_train = len(train_loader.dataset)
    train_loader = fabric.setup_dataloaders(train_loader, use_distributed_sampler=False)
    # Several processes: rank zero's timing decides (one plan for all), and only rank zero writes.
    sync = (lambda value: fabric.broadcast(value, src=0)) if fabric.world_size > 1 else (lambda value: value)
    # Validation inputs are the same at every check: read once, replayed from memory.
    all_val = ReplayBatches(val_loader, cfg.env.val_cache_mb * 2**20)
    # What validations read while training: every row, or a subset under a tight time limit (plan.py, rule 3).
    vset = {"batches": all_val, "labels": val_labels, "weights": val_weights, "rows": None}

    def use_val_rows(rows: Optional[int]) -> None:
        if rows is None or rows == vset["rows"]:
            return
        from ..data.dataset import make_loader

        idx = np.sort(np.random.default_rng(seed).choice(len(val_labels), rows, replace=False))
        subset = torch.utils.data.Subset(val_loader.dataset, idx.tolist())
        subset.collate = val_loader.dataset.collate
        loader = make_loader(subset, val_loader.batch_size, False, val_loader.num_workers, seed)
        vset.update(batches=ReplayBatches(loader, cfg.env.val_cache_mb * 2**20), labels=val_labels[idx],
                    weights=None if val_weights is None else val_weights[idx], rows=rows)
        times.reset_val()

    plan = StepPlan.from_rows(n_train, len(train_loader), o, fabric.world_size, micro=micro)
    plan.checked = deadline is None
    schedule = WarmupCosine(plan.horizon, schedule=o.schedule, warmup_steps=plan.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    criterion = loss_fn(problem_type, class_weights)
    raw_net = getattr(model, "module", model)
    hooks = build_hooks(cfg, problem_type, int(getattr(raw_net, "n_out", 1)), raw_net)
    ctx = HookContext(seed=seed, problem_type=problem_type, criterion=criterion, net=raw_net)
    ckpts = TopKCheckpoints(os.path.join(run_dir, "checkpoints"), o.top_k, metric.greater_is_better,
                            write=fabric.is_global_zero)
    resume_dir = os.path.join(run_dir, "resume")
    times = StepTimes(now)

    last: dict = {}  # the latest validation's outputs, in metric units

    def validate(full: bool = False) -> float:
        """Score the model on the rows validations read while training (``full``: on every validation row)."""
        batches, labels, weights = (all_val, val_labels, val_weights) if full else (
            vset["batches"], vset["labels"], vset["weights"])
        scores = predict_outputs(model, batches, problem_type)
        model.train()
        last["outputs"] = to_metric_units(scores) if to_metric_units else scores
        return metric.fn(labels, last["outputs"], weights)

    def val_row_seconds() -> float:
        """Seconds a validation row takes: timed, or before any validation a third of a training row's."""
        return times.val / len(vset["labels"]) if times.val is not None else times.micro / micro / 3

    def reserve() -> float:
        """Time kept for a last validation and the soup's evaluations (and, on a subset, the final full pass)."""
        per_row = val_row_seconds()
        final = per_row * len(val_labels) if vset["rows"] else 0.0
        return per_row * len(vset["labels"]) * (o.top_k + 1) + final + 2.0

    def budget() -> float:
        return max(0.0, deadline - now() - reserve())

    def follow_plan() -> None:
        """Put a revised plan into the schedule, and its lr for the current step into the optimizer."""
        schedule.set_horizon(plan.horizon)
        schedule.warmup_steps = plan.warmup_steps
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * schedule(step)

    step, best, bad_checks, stopped = 0, metric.worst(), 0, None
    outputs_at: dict[int, np.ndarray] = {}  # validation outputs of the kept checkpoints, by step
    epoch, skip_batches, resumed_from = 0, 0, None
    history: list[dict] = []
    running_loss: Optional[float] = None
    point = read_resume_point(resume_dir) if resume else None
    if point is not None:
        extra = restore(resume_dir, point, model, optimizer)
        ckpts.load_existing()
        step, best, bad_checks, history = point["step"], point["best"], point["bad_checks"], point["history"]
        epoch, skip_batches, running_loss = point["epoch"], point["batches_in_epoch"], point["running_loss"]
        plan.restore(point["plan"])
        use_val_rows(plan.val_rows)
        restore_hooks(hooks, point, extra)
        follow_plan()
        scheduler.last_epoch = step
        stopped, resumed_from = point.get("stopped"), step
        log(f"Resuming from step {step} (epoch {epoch}, batch {skip_batches})"
            f"{'; training had ended, building the soup' if stopped else ''}.")
        if deadline is not None and stopped is None:
            log("Note: under a time limit, where the resumed fit stops depends on the time it is given; "
                "it matches the uninterrupted fit only where the limit does not bind.")
    if fabric.device.type == "cuda" and (resumable or resume):
        log("Note: some GPU kernels are not deterministic: a resumed or repeated fit on a GPU agrees closely "
            "with the uninterrupted one, not bit for bit.")

    bar = tqdm(total=plan.horizon, initial=step, desc="train", unit="step", dynamic_ncols=True, leave=False,
               disable=quiet or not fabric.is_global_zero or stopped is not None)
    model.train()
    first_epoch = epoch
    while stopped is None and epoch <= first_epoch + plan.horizon:  # the bound only guards against empty epochs
        first = skip_batches if epoch == first_epoch else 0  # batches a killed fit already trained on
        sampler.start_epoch(epoch, skip=first * micro)
        pending = 0  # micro batches accumulated into the current step
        t0 = now()
        for i, batch in enumerate(train_loader, start=first):
            pending += 1
            last_of_step = pending >= plan.accumulate or i + 1 == plan.n_batches
            with fabric.no_backward_sync(model, enabled=not last_of_step):
                ctx.step, ctx.micro = step, pending
                for hook in hooks:
                    batch = hook.batch(batch, ctx)
                with contextlib.ExitStack() as around:
                    for hook in hooks:
                        around.enter_context(hook.around_forward(raw_net, batch, ctx))
                    out = model(batch)
                loss = step_loss(hooks, out, batch, ctx)
                fabric.backward(loss / plan.accumulate)
            running_loss = loss.item() if running_loss is None else 0.9 * running_loss + 0.1 * loss.item()
            t1 = now()
            times.add_micro(t1 - t0)
            t0 = t1
            if not last_of_step:
                continue
            pending = 0
            clip_gradients(fabric, model, optimizer, o.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            for hook in hooks:
                hook.after_step(ctx)
            times.add_opt(now() - t0)
            if not plan.checked and times.ready:
                if deadline is not None:
                    plan.val_rows = sync(validation_rows(val_row_seconds(), len(val_labels), o.top_k + 1,
                                                         deadline - now()))
                    if plan.val_rows:
                        use_val_rows(plan.val_rows)
                        log(f"Time limit: validating on {plan.val_rows} of {len(val_labels)} rows while training "
                            f"(all of them would take more than a third of the time left); the final weights "
                            f"are scored on every row.")
                plan.check_time(step, budget(), times)
                plan.restore(sync(plan.state()))
                if require_floor and plan.horizon < min(plan.min_steps, plan.planned_steps()):
                    bar.close()
                    raise FloorUnreachable(plan.step_cost(plan.accumulate, times), plan.min_steps, budget())
                follow_plan()
                bar.total = plan.horizon
                if plan.source == "time_limit":
                    log(f"Time limit: {plan.horizon} steps of {plan.effective_batch} rows fit in it "
                        f"(warmup {plan.warmup_steps}); the schedule anneals over them.")
            bar.update(1)
            bar.set_postfix(loss=f"{running_loss:.4f}", val=f"{best:.4f}" if history else "-")
            out_of_time = sync(deadline is not None and now() + times.micro * plan.accumulate + reserve() > deadline)
            if step % plan.val_every == 0 or out_of_time or step >= plan.horizon:
                tv, replayed = now(), vset["batches"].batches is not None
                score = validate()
                times.add_val(now() - tv, one_off=not replayed and vset["batches"].batches is not None)
                if not np.isfinite(score):
                    score = metric.worst()
                improved = metric.better(score, best)
                best = score if improved else best
                bad_checks = 0 if improved else bad_checks + 1
                if ckpts.offer(model, score, step):  # keep the outputs of the checkpoints kept
                    outputs_at[step] = last["outputs"]
                    outputs_at = {r.step: outputs_at[r.step] for r in ckpts.records if r.step in outputs_at}
                history.append({"step": step, "epoch": round(step / plan.steps_per_epoch(), 3), "val_score": score,
                                "loss": running_loss, "lr": optimizer.param_groups[0]["lr"],
                                "seconds": round(now() - start, 2)})
                if deadline is not None and plan.checked and sync(plan.shrink(step, budget(), times)):
                    plan.restore(sync(plan.state()))
                    follow_plan()
                    bar.total = plan.horizon
                if out_of_time:
                    stopped = "time_limit"
                elif bad_checks >= o.patience:
                    stopped = "early_stopping"
                elif step >= plan.horizon:
                    stopped = {"rows": "max_epochs", "max_steps": "max_steps"}.get(plan.source, "time_limit")
                if resumable and fabric.is_global_zero:
                    save_resume_point(resume_dir, model, optimizer, {
                        "step": step, "epoch": epoch, "batches_in_epoch": i + 1, "best": best,
                        "bad_checks": bad_checks, "history": history, "running_loss": running_loss,
                        "plan": plan.state(), "stopped": stopped, **hook_states(hooks)},
                        extra_tensors=hook_tensors(hooks))
                say = bar.write if not bar.disable else log
                say(f"step {step} (epoch {step / plan.steps_per_epoch():.2f}): val {metric.name} {score:.4f}"
                    f"{' *' if improved else ''}, train loss {running_loss:.4f}, {now() - start:.0f}s")
                if stopped:
                    break
            t0 = now()
        epoch += 1
    bar.close()
    if not ckpts.records:  # the time limit hit before the first validation
        ckpts.offer(model, validate(), step)
        outputs_at[step] = last["outputs"]
        stopped = "time_limit"

    raw = getattr(model, "module", model)

    evaluated: list[tuple[float, np.ndarray]] = []  # (score, outputs) of each soup candidate

    def evaluate_state(state: dict) -> float:
        raw.load_state_dict(state)
        score = validate()
        evaluated.append((score, last["outputs"]))
        return score

    fabric.barrier()  # rank zero's checkpoint files are written before any rank reads them
    state, soup_info = make_soup(ckpts.ranked(), o.soup, evaluate_state, metric.better)
    fabric.barrier()  # and stay until every rank has read them
    raw.load_state_dict(state)
    # The final weights' validation outputs without another pass: from the soup evaluation that
    # gave its score (greedy keeps only candidates that are not worse), or the best checkpoint's.
    val_outputs = next((out for score, out in reversed(evaluated) if score == soup_info["score"]), None)
    if val_outputs is None and len(soup_info["members"]) == 1:
        val_outputs = outputs_at.get(soup_info["members"][0])
    if val_outputs is None:  # e.g. a resumed fit whose best checkpoint was validated before the kill
        validate()
        val_outputs = last["outputs"]
    if vset["rows"]:  # validated on a subset while training: the final weights on every row, once
        subset_score = soup_info["score"]
        soup_info["score"] = validate(full=True)
        val_outputs = last["outputs"]
        log(f"Final weights: validation {metric.name} {soup_info['score']:.4f} on all {len(val_labels)} rows "
            f"({subset_score:.4f} on the {vset['rows']} validated on while training).")
    if stopped == "time_limit" and plan.horizon > step:
        log(f"Time limit reached at step {step} of {plan.horizon}: the learning rate did not finish annealing.")
    return FitResult(
        state={k: v.detach().cpu() for k, v in raw.state_dict().items()},
        val_score=float(soup_info["score"]),
        soup=soup_info,
        stopped=stopped or "max_epochs",
        steps=step,
        resumed_from=resumed_from,
        epochs=round(step / plan.steps_per_epoch(), 3),
        seconds=round(now() - start, 2),
        history=history,
        plan=plan.summary(step, float(schedule(step) * o.lr)),
        val_outputs=val_outputs,
    )

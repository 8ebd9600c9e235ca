"""The step plan of a fit: micro batch, accumulation, horizon and warmup, and the clock behind them.

Three rules, in this order:

1. **From row counts (timing-free).** Without a time limit, the plan depends only on the
   training rows and the config: the effective batch is ``optim.batch_size``, shrunk so
   the whole fit has at least ``optim.min_steps`` optimizer steps
   (``n_train * max_epochs / effective >= min_steps``), but not below one micro batch
   (on tables under ten micro batches: not below a tenth of the rows, so an epoch still
   has ten steps); the horizon is ``max_epochs`` epochs of steps, or ``optim.max_steps``. The same seed and data then
   give the same model whatever the machine's load.
2. **Under a time limit**, after a few timed micro batches (the first one, which pays for
   lazy initialisation, is not counted), the plan is checked once against the time left.
   When the rule-1 plan fits in it, it stays as it is (so a limit that does not bind
   changes nothing). Otherwise the accumulation shrinks toward one micro batch until the
   fit affords ``min_steps`` steps, and the horizon becomes the affordable step count,
   rounded down to a coarse multiple so that small timing noise gives the same plan.
   Warmup is fixed in steps at that moment and never moves again.

3. **Validation rows under a time limit.** Just before that check, when the validations
   the plan keeps time for (``optim.top_k + 1``, each over every validation row, at the
   timed or, before any validation, a third of a training row's seconds a row) would take
   more than a third of the time left (:data:`VAL_SHARE`), the fit validates on a seeded
   random subset of the validation rows instead (:func:`validation_rows`: at least
   :data:`MIN_VAL_ROWS`), for early stopping, checkpoint ranking and the soup, and scores
   the final weights once on every row. ``val_rows`` records the subset's size (resume
   points keep it). A limit that leaves validations their share changes nothing.

After that the horizon may only shrink (when later validations show the fit falling
behind its time budget), so after warmup the learning rate never rises. Each change is
recorded in :attr:`StepPlan.changes` and the whole plan goes into ``fit_info['plan']``;
``optim.max_steps`` pins a recorded horizon in a rerun.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

PROBE_MICRO_BATCHES = 4  # micro batches timed before a time-limited plan is checked (the first is not counted)
VAL_SHARE = 1 / 3  # under a time limit, validations may take at most this share of the time left
MIN_VAL_ROWS = 256  # a validation subset is never smaller (nor the whole split when it has fewer rows)


class FloorUnreachable(RuntimeError):
    """The first timed steps show the time budget cannot hold ``min_steps`` steps (pool members ask
    for this: a member that cannot reach the floor is not trained at all)."""

    def __init__(self, seconds_per_step: float, min_steps: int, budget: float):
        super().__init__(f"{min_steps} steps at {seconds_per_step:.2f} s a step need "
                         f"{min_steps * seconds_per_step:.0f} s, more than the {budget:.0f} s its share leaves for "
                         "training (after its validations)")
        self.seconds_per_step, self.min_steps, self.budget = seconds_per_step, min_steps, budget


def clock() -> float:
    """Wall-clock seconds; tests replace this module attribute with a fake clock."""
    return time.time()


CPU_MICRO_BATCH = 32  # optim.micro_batch_size where it is None and no device chose one (train/loop.py, for_device)


def row_plan(n_train: int, optim, world_size: int = 1) -> tuple[int, int]:
    """``(micro_batch, accumulate)`` from row counts only (rule 1 of the module doc)."""
    effective = optim.batch_size
    largest = optim.micro_batch_size or CPU_MICRO_BATCH
    if optim.min_steps > 0:
        # Not below one micro batch, except on tiny tables: there, at least 10 steps an epoch.
        lowest = max(1, min(largest, n_train // (10 * world_size)))
        rows = n_train * optim.max_epochs
        effective = min(effective, max(lowest, rows // (optim.min_steps * world_size)))
    micro = max(1, min(largest, effective))
    return micro, max(1, round(effective / micro))


def _quantum(steps: float) -> int:
    """A coarse step multiple for a horizon of about ``steps``: a power of two near steps/8."""
    return 1 << max(0, int(math.log2(max(1.0, steps / 8))))


@dataclass
class StepPlan:
    """Where the optimizer steps of one fit come from; see the module doc."""

    micro_batch: int
    accumulate: int
    n_batches: int  # micro batches per epoch
    max_epochs: int
    min_steps: int
    warmup_fraction: float
    val_checks_per_epoch: int
    max_steps: Optional[int] = None
    horizon: int = 0
    warmup_steps: int = 0
    source: str = "rows"  # 'rows' (timing-free), 'time_limit' (revised once from timed steps), 'max_steps'
    checked: bool = False  # the time-limit check has run (or there is no limit)
    changes: list = field(default_factory=list)  # [step, horizon, reason] per change after the first plan
    val_rows: Optional[int] = None  # validation rows used while training (None: all; rule 3)

    @classmethod
    def from_rows(cls, n_train: int, n_batches: int, optim, world_size: int = 1,
                  micro: Optional[int] = None) -> "StepPlan":
        """Rule 1; ``micro``: the loader's micro batch when it was made elsewhere."""
        micro_rows, accumulate = row_plan(n_train, optim, world_size)
        if micro is not None and micro != micro_rows:
            accumulate = max(1, round(micro_rows * accumulate / micro))
        micro = micro or micro_rows
        plan = cls(micro, accumulate, n_batches, optim.max_epochs, optim.min_steps, optim.warmup_fraction,
                   optim.val_checks_per_epoch, optim.max_steps)
        plan.horizon = plan.planned_steps(accumulate)
        plan.source = "max_steps" if optim.max_steps is not None else "rows"
        plan.warmup_steps = int(round(plan.warmup_fraction * plan.horizon))
        return plan

    # ----------------------------------------------------------------- derived
    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.accumulate

    def steps_per_epoch(self, accumulate: Optional[int] = None) -> int:
        return max(1, math.ceil(self.n_batches / (accumulate or self.accumulate)))

    def planned_steps(self, accumulate: Optional[int] = None) -> int:
        if self.max_steps is not None:
            return int(self.max_steps)
        return self.steps_per_epoch(accumulate) * self.max_epochs

    @property
    def val_every(self) -> int:
        """Optimizer steps between validations: ``val_checks_per_epoch`` per epoch, or per
        horizon when the horizon is shorter than an epoch (a short fit still validates)."""
        span = min(self.steps_per_epoch(), self.horizon)
        return max(1, round(span / self.val_checks_per_epoch))

    # ------------------------------------------------------------- revisions
    def step_cost(self, accumulate: int, t: "StepTimes") -> float:
        """Seconds per optimizer step at ``accumulate``, validations included."""
        val_share = (t.val or 0.0) * self.val_checks_per_epoch / self.steps_per_epoch(accumulate)
        return accumulate * t.micro + t.opt + val_share

    def check_time(self, step: int, budget: float, t: "StepTimes") -> None:
        """Rule 2: keep the plan if it fits in ``budget`` seconds, else fit the plan to it (once)."""
        self.checked = True
        if self.max_steps is not None:  # pinned: the time limit only stops the fit
            return
        if (self.horizon - step) * self.step_cost(self.accumulate, t) <= budget:
            return
        accumulate = self.accumulate
        while accumulate > 1 and step + budget / self.step_cost(accumulate, t) < self.min_steps:
            accumulate -= 1
        affordable = step + budget / self.step_cost(accumulate, t)
        horizon = min(self.planned_steps(accumulate), int(affordable // _quantum(affordable) * _quantum(affordable)))
        self.accumulate, self.source = accumulate, "time_limit"
        self.horizon = max(step + 1, horizon)
        self.warmup_steps = int(round(self.warmup_fraction * self.horizon))
        self.changes.append([step, self.horizon, f"time limit: accumulate {accumulate}"])

    def shrink(self, step: int, budget: float, t: "StepTimes") -> bool:
        """After a validation: shorten the horizon when the steps left no longer fit in ``budget``."""
        if self.max_steps is not None or (self.horizon - step) * self.step_cost(self.accumulate, t) <= budget:
            return False
        affordable = step + budget / self.step_cost(self.accumulate, t)
        horizon = max(step + 1, int(affordable // _quantum(affordable) * _quantum(affordable)))
        if horizon >= self.horizon:
            return False
        self.horizon = horizon
        self.changes.append([step, horizon, "behind the time budget"])
        return True

    # --------------------------------------------------------------- records
    def summary(self, steps: int, final_lr: float) -> dict:
        """The plan as it ended, for ``fit_info['plan']`` and the bench's result lines."""
        return {
            "micro_batch": self.micro_batch, "accumulate": self.accumulate, "effective_batch": self.effective_batch,
            "steps_per_epoch": self.steps_per_epoch(), "planned_steps": self.planned_steps(),
            "horizon": self.horizon, "warmup_steps": self.warmup_steps, "source": self.source,
            "horizon_changes": [list(c) for c in self.changes], "min_steps": self.min_steps,
            "steps": steps, "epochs": round(steps / self.steps_per_epoch(), 3),
            "floor_reached": steps >= min(self.min_steps, self.planned_steps()), "final_lr": final_lr,
            "val_rows": self.val_rows,
        }

    def state(self) -> dict:
        """What a resume point keeps of the plan."""
        return {"accumulate": self.accumulate, "horizon": self.horizon, "warmup_steps": self.warmup_steps,
                "source": self.source, "checked": self.checked, "changes": self.changes, "val_rows": self.val_rows}

    def restore(self, state: dict) -> None:
        self.accumulate, self.horizon, self.warmup_steps = state["accumulate"], state["horizon"], state["warmup_steps"]
        self.source, self.checked, self.changes = state["source"], state["checked"], state["changes"]
        self.val_rows = state.get("val_rows")  # resume points from before the validation subset: all rows


def validation_rows(per_row: float, n_val: int, checks: int, seconds: float) -> Optional[int]:
    """Rows to validate on while a time-limited fit trains (rule 3 of the module doc).

    None (every row) when ``checks`` validations of all ``n_val`` rows, at ``per_row`` seconds
    a row, take at most :data:`VAL_SHARE` of ``seconds``. Otherwise the most rows for which
    the checks plus one final pass over every row fit in that share, but at least
    :data:`MIN_VAL_ROWS`; None again when that is the whole split.
    """
    share = VAL_SHARE * seconds
    if per_row <= 0 or n_val <= MIN_VAL_ROWS or per_row * n_val * checks <= share:
        return None
    rows = max(MIN_VAL_ROWS, int((share / per_row - n_val) / checks))
    return None if rows >= n_val else rows


class StepTimes:
    """Seconds per micro batch, per optimizer update and per validation, without one-off costs.

    The first micro batch (lazy initialisation, allocator warm-up) is not counted; nor is
    the first validation when later ones replay cached batches (it also decoded them).
    Medians, so one stall (a competing process, a garbage collection) does not swing the plan.
    """

    def __init__(self, now: Callable[[], float] = clock):
        self._micro: list[float] = []
        self._opt: list[float] = []
        self._val: list[float] = []
        self._seen_first_micro = False
        self.now = now

    def add_micro(self, seconds: float) -> None:
        if self._seen_first_micro:
            self._micro.append(seconds)
        self._seen_first_micro = True

    def add_opt(self, seconds: float) -> None:
        self._opt.append(seconds)

    def add_val(self, seconds: float, one_off: bool = False) -> None:
        """``one_off``: this validation read batches that later ones replay; not counted."""
        if not one_off:
            self._val.append(seconds)

    def reset_val(self) -> None:
        """Forget the validations timed so far (the rows validated on changed)."""
        self._val.clear()

    @property
    def ready(self) -> bool:
        return len(self._micro) >= PROBE_MICRO_BATCHES - 1

    @property
    def micro(self) -> float:
        return statistics.median(self._micro[-50:]) if self._micro else 0.0

    @property
    def opt(self) -> float:
        return statistics.median(self._opt[-50:]) if self._opt else 0.0

    @property
    def val(self) -> Optional[float]:
        return statistics.median(self._val[-5:]) if self._val else None

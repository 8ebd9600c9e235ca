"""The step plan: timing-free without a binding limit, a horizon that only shrinks, a floor on steps."""
from __future__ import annotations

import numpy as np
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.config import resolve
from mmtricks.train import plan as planning
from mmtricks.train.plan import StepPlan, StepTimes

from conftest import make_table


def _times(micro: float, opt: float = 0.0, val: float = 0.0) -> StepTimes:
    t = StepTimes()
    for _ in range(5):
        t.add_micro(micro)
        t.add_opt(opt)
    t.add_val(val)
    return t


def _optim(**kw):
    o = resolve("default").optim
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def test_rows_plan_has_the_floor_and_the_full_horizon():
    o = _optim()
    plan = StepPlan.from_rows(n_train=16_000, n_batches=500, optim=o)  # 500 micro batches of 32
    assert (plan.micro_batch, plan.accumulate, plan.effective_batch) == (32, 4, 128)
    assert plan.horizon == 125 * 20 and plan.warmup_steps == 250 and plan.source == "rows"
    small = StepPlan.from_rows(n_train=400, n_batches=13, optim=o)  # 400 x 20 / 128 = 62 rows a step
    assert small.effective_batch == 64 and small.horizon == 7 * 20 >= o.min_steps


def test_a_limit_that_affords_the_plan_changes_nothing():
    plan = StepPlan.from_rows(16_000, 500, _optim())
    before = plan.state()
    plan.check_time(step=2, budget=1e6, t=_times(micro=0.1))
    assert plan.state() == {**before, "checked": True}


def o_floor() -> int:
    return _optim().min_steps


def test_a_binding_limit_shrinks_the_batch_toward_the_floor_then_the_horizon():
    plan = StepPlan.from_rows(16_000, 500, _optim())
    # 1 s a micro batch, 300 s: 75 steps at batch 128 (accumulate 4), 100 at 3, 150 at 2 >= the floor of 128
    plan.check_time(step=1, budget=300.0, t=_times(micro=1.0))
    assert plan.accumulate == 2 and plan.source == "time_limit"
    assert o_floor() <= plan.horizon <= 150  # rounded down to a coarse multiple
    assert plan.warmup_steps == round(0.1 * plan.horizon)
    plan2 = StepPlan.from_rows(16_000, 500, _optim())
    plan2.check_time(step=1, budget=300.0 * 1.01, t=_times(micro=1.0))
    assert plan2.horizon == plan.horizon  # 1% of timing noise: the same plan
    tight = StepPlan.from_rows(16_000, 500, _optim())
    tight.check_time(step=1, budget=100.0, t=_times(micro=1.0))  # even one micro batch a step misses the floor
    assert tight.accumulate == 1 and tight.horizon < o_floor()


def test_the_horizon_only_shrinks():
    plan = StepPlan.from_rows(16_000, 500, _optim())
    plan.check_time(step=1, budget=300.0, t=_times(micro=1.0))
    first = plan.horizon
    assert not plan.shrink(step=50, budget=1e6, t=_times(micro=0.01))  # faster now: never grows
    assert plan.horizon == first
    assert plan.shrink(step=50, budget=50.0, t=_times(micro=1.0))  # behind: shorter
    assert 50 < plan.horizon < first and plan.changes[-1][2] == "behind the time budget"


def test_pinned_max_steps_ignores_timing():
    plan = StepPlan.from_rows(16_000, 500, _optim(max_steps=77))
    plan.check_time(step=1, budget=1.0, t=_times(micro=1.0))
    assert plan.horizon == 77 and plan.source == "max_steps"


def test_first_micro_batch_and_a_replayed_first_validation_are_not_counted():
    t = StepTimes()
    t.add_micro(30.0)  # lazy initialisation
    for _ in range(3):
        t.add_micro(1.0)
    assert t.micro == 1.0
    t.add_val(40.0, one_off=True)  # read and cached; later ones replay
    assert t.val is None
    t.add_val(2.0)
    assert t.val == 2.0


class FakeClock:
    """Seconds advance only when the network trains: ``slow`` per forward for the first
    ``n_slow`` forwards, then ``fast``."""

    def __init__(self, slow: float, fast: float, n_slow: int):
        self.t, self.calls, self.slow, self.fast, self.n_slow = 1000.0, 0, slow, fast, n_slow

    def __call__(self) -> float:
        return self.t

    def tick(self) -> None:
        self.calls += 1
        self.t += self.slow if self.calls <= self.n_slow else self.fast


def _fake_time(monkeypatch, clock: FakeClock) -> None:
    from mmtricks.models.net import MultimodalNet

    forward = MultimodalNet.forward

    def timed(self, batch):
        if self.training:
            clock.tick()
        return forward(self, batch)

    monkeypatch.setattr(planning, "clock", clock)
    monkeypatch.setattr(MultimodalNet, "forward", timed)


SETTINGS = dict(label="y", preset="tiny", seed=3, verbosity=0)
TABLE = dict(n=96, kinds=("numerical", "categorical", "text"))


def test_slow_start_then_fast_never_raises_the_lr_after_warmup(table_dir, monkeypatch):
    df = make_table(table_dir, **TABLE)
    clock = FakeClock(slow=5.0, fast=0.5, n_slow=8)
    _fake_time(monkeypatch, clock)
    overrides = {"optim.max_epochs": 400, "optim.patience": 10**6, "optim.val_checks_per_epoch": 4,
                 "optim.batch_size": 8, "optim.micro_batch_size": 8, "optim.warmup_fraction": 0.2}
    p = MultimodalPredictor(time_limit=120, overrides=overrides, **SETTINGS).fit(df)
    plan, history = p.fit_info_["plan"], p.fit_info_["history"]
    assert plan["source"] == "time_limit" and plan["horizon"] < plan["planned_steps"]
    horizons = [plan["horizon_changes"][0][1]] + [c[1] for c in plan["horizon_changes"][1:]]
    assert horizons == sorted(horizons, reverse=True)  # never grows
    lrs = [h["lr"] for h in history if h["step"] >= plan["warmup_steps"]]
    assert len(lrs) >= 3 and all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:]))
    assert p.fit_info_["steps"] <= plan["horizon"]


def test_same_seed_same_model_whatever_the_step_times_when_the_limit_does_not_bind(table_dir, monkeypatch):
    df = make_table(table_dir, **TABLE)
    overrides = {"optim.max_epochs": 3, "optim.val_checks_per_epoch": 2}
    outputs, plans = [], []
    for slow, fast in ((0.01, 0.01), (3.0, 0.5)):  # an idle machine, and a busy one
        _fake_time(monkeypatch, FakeClock(slow=slow, fast=fast, n_slow=5))
        p = MultimodalPredictor(time_limit=10_000, overrides=overrides, **SETTINGS).fit(df)
        outputs.append(p.predict_proba(df).to_numpy())
        plans.append(p.fit_info_["plan"])
    assert plans[0]["source"] == plans[1]["source"] == "rows"
    assert plans[0]["horizon"] == plans[1]["horizon"]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_a_binding_limit_records_a_plan_that_max_steps_pins(table_dir, monkeypatch):
    df = make_table(table_dir, **TABLE)
    overrides = {"optim.max_epochs": 50, "optim.patience": 10**6}
    _fake_time(monkeypatch, FakeClock(slow=1.0, fast=1.0, n_slow=0))
    limited = MultimodalPredictor(time_limit=40, overrides=overrides, **SETTINGS).fit(df)
    plan = limited.fit_info_["plan"]
    assert plan["source"] == "time_limit"
    pinned = {**overrides, "optim.max_steps": plan["horizon"], "optim.batch_size": plan["effective_batch"]}
    rerun = MultimodalPredictor(overrides=pinned, **SETTINGS).fit(df)
    assert rerun.fit_info_["plan"]["source"] == "max_steps"
    assert rerun.fit_info_["steps"] == plan["horizon"]


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_regression_scores_are_in_the_label_units(table_dir, metric):
    df = make_table(table_dir, n=80, kinds=("numerical",), problem_type="regression")
    df["y"] = df["y"] * 1000.0 + 5000.0  # far from standardised units
    fp32 = {"optim.max_epochs": 2, "env.precision": "32-true"}  # bf16 rounds validation and evaluate apart
    p = MultimodalPredictor(label="y", preset="tiny", eval_metric=metric, verbosity=0,
                            overrides=fp32).fit(df, tuning_data=df.iloc[:30])
    val = p.fit_info_["val_score"]
    assert val == pytest.approx(p.evaluate(df.iloc[:30])[metric], rel=1e-4)
    assert p.leaderboard()["val_score"].iloc[0] == val
    assert all(h["val_score"] > 10 for h in p.fit_info_["history"])  # not standardised (~1)


def test_micro_batch_and_loader_workers_follow_the_device(monkeypatch):
    import os

    import torch

    from mmtricks.config import resolve
    from mmtricks.train.loop import for_device

    cfg = resolve("default")
    cpu = for_device(cfg)
    assert (cpu.optim.micro_batch_size, cpu.env.num_workers) == (32, 0)
    assert cfg.optim.micro_batch_size is None and cfg.env.num_workers is None  # the caller's config is left alone

    class Props:
        name, total_memory = "NVIDIA H200", 139 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    said = []
    gpu = for_device(cfg, said.append)
    assert (gpu.optim.micro_batch_size, gpu.env.num_workers) == (128, 8)
    assert "NVIDIA H200" in said[0] and "micro batch 128" in said[0] and "8 loader workers" in said[0]
    Props.total_memory = 24 * 2**30
    assert for_device(cfg).optim.micro_batch_size == 64
    Props.total_memory = 8 * 2**30
    assert for_device(cfg).optim.micro_batch_size == 32
    mine = for_device(resolve("default", {"optim.micro_batch_size": 16, "env.num_workers": 2}))
    assert (mine.optim.micro_batch_size, mine.env.num_workers) == (16, 2)  # set by the user: kept
    on_cpu = for_device(resolve("default", {"env.accelerator": "cpu"}))
    assert (on_cpu.optim.micro_batch_size, on_cpu.env.num_workers) == (32, 0)  # a GPU is there, but not asked for


def test_a_fit_records_the_micro_batch_and_workers_it_used(table_dir):
    from mmtricks import MultimodalPredictor

    df = make_table(table_dir, n=40, kinds=("numerical",))
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                            overrides={"optim.max_epochs": 1, "optim.micro_batch_size": None}).fit(df)
    assert (p.config_.optim.micro_batch_size, p.config_.env.num_workers) == (32, 0)


def test_validation_rows_shrink_only_when_validations_would_take_more_than_their_share():
    from mmtricks.train.plan import MIN_VAL_ROWS, VAL_SHARE, validation_rows

    assert validation_rows(0.01, 1000, 4, 300.0) is None  # 40 s of checks: within a third of 300 s
    rows = validation_rows(0.05, 2000, 4, 300.0)  # 400 s of checks: too many
    assert rows is not None and MIN_VAL_ROWS <= rows < 2000
    assert rows == max(MIN_VAL_ROWS, int((VAL_SHARE * 300.0 / 0.05 - 2000) / 4))
    big = validation_rows(0.05, 20000, 4, 9000.0)  # 4,000 s of checks, room for 3,000: a subset plus one full pass
    assert big == 10000 and 0.05 * (big * 4 + 20000) <= VAL_SHARE * 9000.0 + 1e-6
    assert validation_rows(10.0, 2000, 4, 300.0) == MIN_VAL_ROWS  # never below the floor
    assert validation_rows(10.0, MIN_VAL_ROWS, 4, 300.0) is None  # a split that small is validated whole
    assert validation_rows(0.0, 5000, 4, 300.0) is None  # nothing timed yet


def test_a_resume_point_keeps_the_validation_subset():
    p = StepPlan.from_rows(1000, 125, _optim(), micro=8)
    p.val_rows = 300
    state = p.state()
    q = StepPlan.from_rows(1000, 125, _optim(), micro=8)
    q.restore(state)
    assert q.val_rows == 300 and q.summary(10, 0.0)["val_rows"] == 300
    del state["val_rows"]  # a resume point written before the subset existed: every row
    q.restore(state)
    assert q.val_rows is None


def test_a_tight_limit_validates_on_a_subset_and_scores_the_final_weights_on_every_row(table_dir, monkeypatch,
                                                                                        capsys):
    from mmtricks.train.plan import MIN_VAL_ROWS

    df = make_table(table_dir, n=700, kinds=("numerical", "categorical"))
    train, val = df.iloc[:350], df.iloc[350:]
    overrides = {"optim.max_epochs": 50, "optim.patience": 10**6, "optim.batch_size": 8,
                 "optim.micro_batch_size": 8}
    # 1 s a training micro batch of 8 rows: a validation row is estimated at 1/24 s, 350 rows at 14.6 s, and the
    # 4 validations kept for take 58 s, more than a third of the 120-s limit.
    _fake_time(monkeypatch, FakeClock(slow=1.0, fast=1.0, n_slow=0))
    p = MultimodalPredictor(time_limit=120, overrides=overrides, **{**SETTINGS, "verbosity": 1}).fit(
        train, tuning_data=val)
    said = capsys.readouterr().out
    assert p.fit_info_["plan"]["val_rows"] == MIN_VAL_ROWS
    assert f"validating on {MIN_VAL_ROWS} of 350 rows" in said and "on all 350 rows" in said
    # The reported validation score is the final weights' on every validation row.
    assert p.fit_info_["val_score"] == pytest.approx(p.evaluate(val)["accuracy"])
    assert p.fit_info_["n_val"] == 350

    # A limit that leaves validations their share validates on every row.
    _fake_time(monkeypatch, FakeClock(slow=0.01, fast=0.01, n_slow=0))
    roomy = MultimodalPredictor(time_limit=120, overrides={**overrides, "optim.max_epochs": 2}, **SETTINGS).fit(
        train, tuning_data=val)
    assert roomy.fit_info_["plan"]["val_rows"] is None

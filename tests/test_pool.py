"""The model pool: members on one shared split, ensemble selection, time shares, skipping."""
import numpy as np
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.ensemble.pool import POOL, pool_entries, skip_reason
from mmtricks.errors import ConfigError
from mmtricks.schema import infer_schema

from conftest import make_table
from test_plan import FakeClock, _fake_time

TINY_POOL = ["lightgbm", "linear", "tiny"]


@pytest.fixture(scope="module")
def pool_fit(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pool"))
    df = make_table(folder, n=120, kinds=("numerical", "categorical", "text"))
    p = MultimodalPredictor(label="y", pool=TINY_POOL, verbosity=0, seed=2,
                            overrides={"optim.max_epochs": 3}).fit(df)
    return p, df


def test_members_share_one_split_and_the_ensemble_beats_none_of_them_on_validation(pool_fit):
    p, df = pool_fit
    board = p.leaderboard()
    assert list(board["model"]) == TINY_POOL + ["ensemble"]
    members = board[board["model"] != "ensemble"]
    assert members["weight"].sum() == pytest.approx(1.0)
    assert board["val_score"].iloc[-1] >= members["val_score"].max()  # Caruana never ends below its best member
    n_val = p.fit_info_["n_val"]
    assert all(len(m.val_outputs) == n_val for m in p.members_)  # the same validation rows for everyone
    net = p.members_[2].model
    assert net.fit_info_["n_train"] == p.fit_info_["n_train"]


def test_ensemble_predictions_are_the_weighted_blend(pool_fit):
    p, df = pool_fit
    proba = p.predict_proba(df).to_numpy()
    blend = sum(m.weight * m.outputs(df.drop(columns="y")) for m in p.members_)
    np.testing.assert_allclose(proba, blend, atol=1e-12)
    assert set(p.predict(df)) <= set(df["y"])
    scores = p.evaluate(df)
    assert list(scores)[0] == "accuracy" and 0 <= scores["accuracy"] <= 1
    board = p.leaderboard(df)
    assert board["test_score"].iloc[-1] == pytest.approx(scores["accuracy"])
    assert (board["predict_seconds"] >= 0).all()


def test_pool_skips_members_the_data_cannot_feed(table_dir):
    images_only = make_table(table_dir, n=20, kinds=("image",))
    schema = infer_schema(images_only, "y")
    assert "only images" in skip_reason(pool_entries(["lightgbm"])[0], schema, images_only)
    assert "two" in skip_reason(pool_entries(["modality_dropout"])[0], schema, images_only)
    full = make_table(table_dir, n=20, kinds=("numerical", "text"))
    schema = infer_schema(full, "y")
    assert "missing" in skip_reason(pool_entries(["learnable_embed"])[0], schema, full)
    full.loc[3, "num_a"] = None
    assert skip_reason(pool_entries(["learnable_embed"])[0], schema, full) is None
    assert skip_reason(pool_entries(["baseline_plus"])[0], schema, full) is None


def test_a_skipped_member_is_logged_and_the_rest_train(table_dir, capsys):
    df = make_table(table_dir, n=80, kinds=("numerical", "categorical"))
    p = MultimodalPredictor(label="y", pool=["linear", "modality_dropout"], verbosity=1,
                            overrides={"optim.max_epochs": 1}).fit(df)
    assert "skipping modality_dropout: dropping a modality needs at least two" in capsys.readouterr().out
    assert [m.name for m in p.members_] == ["linear"]


def test_pool_names_are_checked():
    assert [e.name for e in pool_entries(["pool"])] == [e.name for e in POOL]
    with pytest.raises(ConfigError, match="lightgbm"):
        pool_entries(["lightgmb"])


def test_preset_best_is_the_whole_pool():
    from mmtricks.config import resolve

    p = MultimodalPredictor(label="y", preset="best")
    assert [e.name for e in p._pool_entries(resolve("best"))] == [e.name for e in POOL]


def test_a_network_member_that_cannot_reach_the_floor_in_its_share_is_dropped(table_dir, monkeypatch, capsys):
    df = make_table(table_dir, n=96, kinds=("numerical", "categorical"))
    _fake_time(monkeypatch, FakeClock(slow=1.0, fast=1.0, n_slow=0))  # 1 s a training forward pass
    overrides = {"optim.min_steps": 60, "optim.max_epochs": 40, "optim.batch_size": 8, "optim.micro_batch_size": 8,
                 "optim.patience": 10**6}
    p = MultimodalPredictor(label="y", pool=["tiny", "baseline+grad_clip"], time_limit=110, verbosity=1,
                            overrides={**overrides, "tabular.token_dim": 8, "tabular.n_blocks": 1}).fit(df)
    out = capsys.readouterr().out
    assert "dropping ['baseline+grad_clip']" in out
    assert [m.name for m in p.members_] == ["tiny"]
    plan = p.members_[0].model.fit_info_["plan"]
    assert plan["horizon"] >= 60 and plan["steps"] >= 60  # the member kept reached the floor


def test_a_network_member_gets_all_the_time_left_before_every_network_is_dropped(monkeypatch, capsys):
    import time

    from mmtricks.ensemble import pool
    from mmtricks.train.metrics import get_metric
    from mmtricks.train.plan import FloorUnreachable

    monkeypatch.setattr(pool, "skip_reason", lambda *args, **kwargs: None)
    shares = []

    def fit_network(entry, share):  # 1 s a step, a 100-step floor; its own plan needs 105 s
        shares.append((entry.name, round(share)))
        if share < 105:
            raise FloorUnreachable(1.0, 100, share)
        return pool.Member(entry.name, "network", None, np.zeros(3), 0.5, share)

    def fit(seconds):
        shares.clear()
        entries = [pool.PoolEntry(n, "network", n) for n in ("a", "b", "c")]
        return pool.fit_pool(entries, schema=None, train_df=None, val_df=None, y_train=None, y_val=None,
                             metric=get_metric("accuracy", "binary"), seed=0, fit_network=fit_network, log=print,
                             deadline=time.time() + pool.SELECTION_RESERVE + seconds)

    # 112 s left: the 20% margin (120 s) says no member fits, the bare 100 steps say one may:
    # the first member is tried alone with all the time and its own plan accepts it.
    assert [m.name for m in fit(112)] == ["a"]
    assert [(n, s) for n, s in shares] == [("a", 37), ("a", 112)]
    assert "dropping ['b', 'c']" in capsys.readouterr().out
    # 90 s left: not even the bare steps fit: every network member is dropped after one try.
    with pytest.raises(Exception, match="No pool member could be trained"):
        fit(90)
    assert shares == [("a", 30)]


def test_an_ensemble_saves_loads_and_predicts_identically(pool_fit, tmp_path):
    import json
    import os

    p, df = pool_fit
    path = p.save(str(tmp_path / "ens"))
    loaded = MultimodalPredictor.load(path, verbosity=0)
    np.testing.assert_array_equal(loaded.predict_proba(df).to_numpy(), p.predict_proba(df).to_numpy())
    assert [m.weight for m in loaded.members_] == [m.weight for m in p.members_]
    meta = json.load(open(os.path.join(path, "predictor.json")))
    assert meta["format_version"] == 2 and meta["kind"] == "ensemble"
    assert os.path.isfile(os.path.join(path, "members", "m0", "lightgbm.txt"))  # LightGBM's own text format
    names = {n for _, _, files in os.walk(path) for n in files}
    assert not {n for n in names if n.endswith((".pkl", ".pickle", ".pt", ".joblib"))}


@pytest.mark.parametrize("attack", ["extra_file", "unknown_kind", "outside_folder"])
def test_a_tampered_ensemble_is_refused(pool_fit, tmp_path, attack):
    import json
    import os

    from mmtricks.errors import ModelLoadError

    p, _ = pool_fit
    path = p.save(str(tmp_path / "ens"))
    meta_file = os.path.join(path, "predictor.json")
    meta = json.load(open(meta_file))
    if attack == "extra_file":
        open(os.path.join(path, "members", "m1", "evil.py"), "w").write("raise SystemExit")
    elif attack == "unknown_kind":
        meta["members"][0]["kind"] = "pickled_forest"
    else:
        meta["members"][0]["folder"] = "../../elsewhere"
    json.dump(meta, open(meta_file, "w"))
    with pytest.raises(ModelLoadError):
        MultimodalPredictor.load(path)


def test_a_model_saved_in_format_1_still_loads(monkeypatch):
    import os

    import pandas as pd

    from mmtricks.train import loop

    # Its 'auto' precision predicted in 32-bit on the CPU that saved it; bf16 would round (~1e-2).
    monkeypatch.setattr(loop, "cpu_native_bf16", lambda: False)
    here = os.path.join(os.path.dirname(__file__), "data")
    loaded = MultimodalPredictor.load(os.path.join(here, "model_format1"), verbosity=0)
    rows = pd.read_csv(os.path.join(here, "model_format1_rows.csv"))
    expected = pd.read_csv(os.path.join(here, "model_format1_proba.csv")).to_numpy()
    np.testing.assert_allclose(loaded.predict_proba(rows).to_numpy(), expected, atol=1e-6)


def test_cli_fits_a_pool_and_prints_the_leaderboard(table_dir, tmp_path, capsys):
    from mmtricks.cli import main

    df = make_table(table_dir, n=60, kinds=("numerical", "text"))
    train = tmp_path / "train.parquet"
    df.to_parquet(train)
    assert main(["fit", "--train", str(train), "--label", "y", "--pool", "linear,lightgbm", "--out",
                 str(tmp_path / "m"), "--test", str(train), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ensemble" in out and "test_score" in out and "weight" in out
    assert MultimodalPredictor.load(str(tmp_path / "m"), verbosity=0).members_[0].name == "linear"


def _ray_listeners() -> list[str]:
    """Addresses Ray's own processes listen on (``ss -ltnp``)."""
    import subprocess

    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines()
            if any(k in line for k in ("raylet", "gcs_server", "ray::", "dashboard"))]


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_trains_members_in_parallel_to_the_same_ensemble_as_sequential(tmp_path):
    import shutil

    df = make_table(str(tmp_path), n=80, kinds=("numerical", "categorical"))
    small = {"optim.max_epochs": 2, "tabular.token_dim": 8, "tabular.n_blocks": 1, "tabular.n_heads": 2}
    runs = {}
    for executor in ("local", "ray"):
        p = MultimodalPredictor(label="y", pool=["linear", "baseline_plus", "baseline"], seed=4, verbosity=0,
                                overrides={**small, "ensemble.executor": executor},
                                work_dir=str(tmp_path / executor)).fit(df)
        runs[executor] = p
    import ray

    try:
        assert ray.is_initialized()
        if shutil.which("ss"):
            listeners = _ray_listeners()
            assert listeners and all(a.startswith(("127.", "[::ffff:127.", "[::1]")) for a in listeners), listeners
    finally:
        ray.shutdown()
    local, remote = runs["local"], runs["ray"]
    assert [m.weight for m in remote.members_] == [m.weight for m in local.members_]
    np.testing.assert_array_equal(remote.predict_proba(df).to_numpy(), local.predict_proba(df).to_numpy())


def test_refit_full_retrains_the_chosen_members_on_train_and_validation(table_dir, tmp_path):
    df = make_table(table_dir, n=120, kinds=("numerical", "categorical", "text"))
    kw = dict(label="y", pool=["lightgbm", "linear", "tiny"], verbosity=0, seed=2, overrides={"optim.max_epochs": 3,
              "ensemble.method": "uniform"})  # uniform: every member has a weight, so every kind is refit
    plain = MultimodalPredictor(**kw).fit(df)
    refit = MultimodalPredictor(**{**kw, "overrides": {**kw["overrides"], "ensemble.refit_full": True}}).fit(df)
    assert refit.fit_info_["ensemble"]["refit_full"] == ["lightgbm", "linear", "tiny"]
    n_all = plain.fit_info_["n_train"] + plain.fit_info_["n_val"]
    net_plain, net_refit = plain.members_[2].model, refit.members_[2].model
    assert net_refit.fit_info_["n_train"] == n_all
    assert net_refit.fit_info_["plan"]["source"] == "max_steps"
    assert net_refit.fit_info_["steps"] == net_plain.fit_info_["steps"]  # the size it had, on more rows
    lgb_plain, lgb_refit = plain.members_[0].model, refit.members_[0].model
    assert lgb_refit.booster_.current_iteration() == lgb_plain.rounds_used
    assert [m.weight for m in refit.members_] == [m.weight for m in plain.members_]
    assert not np.allclose(refit.predict_proba(df).to_numpy(), plain.predict_proba(df).to_numpy())
    loaded = MultimodalPredictor.load(refit.save(str(tmp_path / "m")), verbosity=0)
    np.testing.assert_array_equal(loaded.predict_proba(df).to_numpy(), refit.predict_proba(df).to_numpy())


def test_without_optional_packages_the_pool_says_what_to_install(table_dir, monkeypatch, pool_fit, tmp_path):
    import builtins
    import importlib.util

    from mmtricks.ensemble import executor
    from mmtricks.errors import ModelLoadError

    df = make_table(table_dir, n=20, kinds=("numerical",))
    real_find, real_import = importlib.util.find_spec, builtins.__import__
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightgbm" else real_find(name, *a))
    reason = skip_reason(pool_entries(["lightgbm"])[0], infer_schema(df, "y"), df)
    assert "pip install 'mmtricks[pool]'" in reason
    path = pool_fit[0].save(str(tmp_path / "ens"))

    def no_optional(name, *args, **kwargs):
        if name in ("lightgbm", "ray"):
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optional)
    with pytest.raises(ModelLoadError, match=r"mmtricks\[pool\]"):
        MultimodalPredictor.load(path)
    with pytest.raises(ConfigError, match=r"mmtricks\[ray\]"):
        executor.start_ray(None, 1, str(tmp_path))

"""Real fits with tiny random encoders on CPU: every problem type and modality mix."""
import os

import numpy as np
import pandas as pd
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.errors import DataError, NotFittedError, SchemaError

from conftest import TINY, make_table


def fit(folder, kinds, problem_type="multiclass", n=72, **kwargs):
    df = make_table(folder, n=n, kinds=kinds, problem_type=problem_type)
    p = MultimodalPredictor(label="y", preset="tiny", overrides=TINY, verbosity=0, **kwargs)
    return p.fit(df, base_dir=folder), df


@pytest.mark.parametrize("problem_type", ["binary", "multiclass", "regression"])
def test_each_problem_type(table_dir, problem_type):
    p, df = fit(table_dir, ("numerical", "categorical"), problem_type, n=120)
    assert p.schema_.problem_type == problem_type
    pred = p.predict(df)
    assert len(pred) == len(df) and pred.index.equals(df.index)
    scores = p.evaluate(df)
    first = next(iter(scores))
    assert first == {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}[problem_type]
    # The signal is strong: a fitted model must beat chance clearly on its own training rows.
    assert scores[first] > {"binary": 0.8, "multiclass": 0.6, "regression": 0.5}[problem_type]
    if problem_type == "regression":
        assert pred.dtype.kind == "f" and abs(pred.mean() - df["y"].mean()) < 1.0
    else:
        proba = p.predict_proba(df)
        assert list(proba.columns) == p.schema_.classes
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        assert set(pred) <= set(df["y"])


@pytest.mark.parametrize("kinds", [
    ("numerical", "image"),
    ("categorical", "text"),
    ("text", "image"),
    ("numerical", "categorical", "text", "image"),
])
def test_modality_mixes(table_dir, kinds):
    p, df = fit(table_dir, kinds)
    expected = (["tabular"] if {"numerical", "categorical"} & set(kinds) else []) + \
        [m for m in ("text", "image") if m in kinds]
    assert p.schema_.modalities == expected
    assert sorted(p.model_.encoders) == sorted(expected)
    emb = p.extract_embedding(df)
    assert emb.shape == (len(df), p.config_.fusion.hidden) and np.isfinite(emb).all()
    assert p.leaderboard().loc[0, "val_score"] == pytest.approx(p.fit_info_["val_score"])


def test_save_load_gives_identical_predictions(table_dir, tmp_path):
    p, df = fit(table_dir, ("numerical", "categorical", "text", "image"))
    path = p.save(tmp_path / "model")
    files = sorted(os.listdir(path))
    assert "weights.safetensors" in files and "tokenizer" in files
    assert not [f for f in files if f.endswith((".pkl", ".pt", ".pth", ".bin"))]
    q = MultimodalPredictor.load(path)
    pd.testing.assert_frame_equal(p.predict_proba(df), q.predict_proba(df))
    assert (p.predict(df) == q.predict(df)).all()
    assert q.evaluate(df) == p.evaluate(df)


def test_missing_training_column_is_named(table_dir):
    p, df = fit(table_dir, ("numerical", "categorical"))
    with pytest.raises(SchemaError, match="cat_a"):
        p.predict(df.drop(columns=["cat_a"]))


def test_image_path_that_does_not_exist(table_dir):
    p, df = fit(table_dir, ("numerical", "image"))
    bad = df.copy()
    bad.loc[5, "img"] = os.path.join(table_dir, "images", "nope.png")
    with pytest.raises(DataError, match=r"row 5, column 'img'.*nope\.png.*does not exist"):
        p.predict(bad)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        MultimodalPredictor(label="y").predict(pd.DataFrame({"a": [1]}))


def test_csv_path_resolves_images_relative_to_the_file(table_dir):
    df = make_table(table_dir, n=48, kinds=("numerical", "image"), relative=True)
    csv = os.path.join(table_dir, "train.csv")
    df.to_csv(csv, index=False)
    p = MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1}, verbosity=0).fit(csv)
    assert len(p.predict(csv)) == 48


def test_time_limit_is_honoured(table_dir):
    df = make_table(table_dir, n=96, kinds=("numerical", "categorical", "text"))
    p = MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1000, "optim.patience": 10**6}, time_limit=6,
                            verbosity=0).fit(df)
    assert p.fit_info_["stopped"] == "time_limit"
    assert p.fit_info_["fit_seconds"] < 6 * 2  # generous: a loaded CI machine is slow
    assert len(p.predict(df)) == len(df)


def test_bf16_mixed_precision_trains_and_predicts_on_cpu(table_dir):
    import torch

    df = make_table(table_dir, n=60, kinds=("numerical", "text"))
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                            overrides={"optim.max_epochs": 2, "env.precision": "bf16-mixed"}).fit(df)
    with p._autocast("cpu"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    proba = p.predict_proba(df).to_numpy()
    assert proba.shape == (60, 3) and (abs(proba.sum(1) - 1) < 1e-3).all()


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_the_cpus_bf16_support(monkeypatch, native):
    from mmtricks.config import EnvConfig
    from mmtricks.train import loop

    monkeypatch.setattr(loop.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "cpu_native_bf16", lambda: native)
    assert loop.resolve_precision(EnvConfig()) == ("bf16-mixed" if native else "32-true")
    for chosen in ("32-true", "bf16-mixed"):  # a value the user set is kept either way
        assert loop.resolve_precision(EnvConfig(precision=chosen)) == chosen


def test_cpu_native_bf16_reads_the_cpus_flags(monkeypatch):
    from mmtricks.train import loop

    for flags, expected in (({"avx512_bf16": True}, True), ({"amx_bf16": True, "avx512_bf16": False}, True),
                            ({"avx512_f": True, "avx2": True}, False), ({"bf16": True, "neon": True}, False)):
        monkeypatch.setattr(loop.torch.cpu, "get_capabilities", lambda flags=flags: flags)
        assert loop.cpu_native_bf16() is expected, flags


def test_auto_precision_is_recorded_and_said_in_the_log(table_dir, monkeypatch, capsys):
    from mmtricks.train import loop

    monkeypatch.setattr(loop, "cpu_native_bf16", lambda: True)
    df = make_table(table_dir, n=40, kinds=("numerical",))
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=1, overrides={"optim.max_epochs": 1}).fit(df)
    assert p.fit_info_["precision"] == "bf16-mixed"
    assert "Precision: bf16 autocast (env.precision=auto" in capsys.readouterr().out


def test_bf16_on_a_cpu_without_native_bf16_is_warned_about(table_dir, monkeypatch, capsys):
    """Asked for explicitly, bf16 is kept, but the log says it is emulated on this CPU."""
    from mmtricks.train import loop

    df = make_table(table_dir, n=40, kinds=("numerical",))
    for native in (False, True):
        monkeypatch.setattr(loop, "cpu_native_bf16", lambda native=native: native)
        p = MultimodalPredictor(label="y", preset="tiny", verbosity=1,
                                overrides={"optim.max_epochs": 1, "env.precision": "bf16-mixed"}).fit(df)
        assert p.fit_info_["precision"] == "bf16-mixed"
        said = capsys.readouterr().out
        assert ("bf16 is emulated here" in said) is (not native), said[-2000:]

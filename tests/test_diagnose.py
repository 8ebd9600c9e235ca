"""No silent collapse: fits no better than the constant predictor are flagged and retried once."""
import numpy as np
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.train.diagnose import class_weights, constant_outputs, diagnose
from mmtricks.train.metrics import get_metric

from conftest import make_table


def test_constant_outputs_are_class_frequencies_or_the_mean():
    proba = constant_outputs(np.array([0, 0, 0, 1]), 3, "binary", 2)
    np.testing.assert_allclose(proba, [[0.75, 0.25]] * 3)
    np.testing.assert_allclose(constant_outputs(np.array([1.0, 3.0]), 2, "regression", 0), [2.0, 2.0])


def test_diagnose_flags_collapse_and_a_rising_curve():
    acc = get_metric("accuracy", "multiclass")
    one_class = np.tile([0.9, 0.05, 0.05], (6, 1))
    flat = [{"val_score": s} for s in (0.5, 0.6, 0.6)]
    d = diagnose(acc, 0.8, 0.7, flat, "early_stopping", one_class, "multiclass")
    assert d["collapsed"] and d["one_class"] and not d["still_improving"]
    varied = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    rising = [{"val_score": s} for s in (0.5, 0.6, 0.8)]
    d = diagnose(acc, 0.8, 0.7, rising, "time_limit", varied, "multiclass")
    assert not d["collapsed"] and d["still_improving"]
    assert diagnose(acc, 0.7, 0.7, rising, "early_stopping", varied, "multiclass")["collapsed"]  # a tie
    rmse = get_metric("rmse", "regression")  # lower is better
    assert not diagnose(rmse, 1.0, 2.0, [{"val_score": 3.0}, {"val_score": 1.0}], "max_epochs", None,
                        "regression")["collapsed"]


def test_balanced_class_weights_are_inverse_to_frequency():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] * 3 == pytest.approx(w[1] * 1) and w[2] == 0  # class 2 absent from training


def _imbalanced(folder):
    df = make_table(folder, n=120, kinds=("numerical", "categorical"), seed=2)
    df["y"] = np.where(np.arange(len(df)) % 10 == 0, "rare", "common")  # 90% one class, no signal
    return df


@pytest.mark.parametrize("recover", [True, False])
def test_a_collapse_made_on_purpose_is_flagged_and_retried(table_dir, recover, capsys):
    overrides = {"optim.lr": 1e-12, "optim.max_epochs": 1, "optim.recover_collapse": recover}
    p = MultimodalPredictor(label="y", preset="tiny", eval_metric="accuracy", verbosity=1,
                            overrides=overrides).fit(_imbalanced(table_dir))
    out = capsys.readouterr().out
    d = p.fit_info_["diagnosis"]
    assert "collapsed fit" in out
    assert d["constant_score"] > 0.8
    assert bool(p.leaderboard()["collapsed"].iloc[0]) == d["collapsed"]
    if recover:
        assert d["recovery"]["overrides"] == {"optim.class_weights": "balanced"}
        assert "Retrying once" in out
    else:
        assert d["collapsed"] and "recovery" not in d and "Retrying" not in out


def test_a_healthy_fit_is_not_flagged(table_dir):
    df = make_table(table_dir, n=90, kinds=("numerical", "categorical"))
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0, overrides={"optim.max_epochs": 4}).fit(df)
    assert not p.fit_info_["diagnosis"]["collapsed"]
    assert "recovery" not in p.fit_info_["diagnosis"]

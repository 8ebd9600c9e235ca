"""Ensemble selection on hand-made validation predictions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtricks.ensemble.selection import blend, caruana, select, sequential
from mmtricks.errors import ConfigError
from mmtricks.train.metrics import get_metric

RMSE = get_metric("rmse", "regression")
ACC = get_metric("accuracy", "multiclass")


def test_caruana_finds_the_known_best_mix():
    y = np.zeros(200)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 200)
    a, b = 1.0 + noise, -1.0 - noise  # each biased, errors opposite: the 50/50 mix is exact
    c = y + rng.normal(0, 2, 200)  # unbiased but noisy: never part of the best mix
    w = caruana([a, b, c], y, RMSE, rounds=20)
    np.testing.assert_allclose(w, [0.5, 0.5, 0.0])
    assert RMSE.fn(y, blend([a, b, c], w)) == pytest.approx(0.0, abs=1e-12)


def test_caruana_weights_are_counts_over_picks_at_the_best_round():
    y = np.zeros(10)
    a, b = np.full(10, 3.0), np.full(10, -1.0)  # best mix 1:3 -> 3*1/4 - 3/4 = 0
    w = caruana([a, b], y, RMSE, rounds=8)
    np.testing.assert_allclose(w, [0.25, 0.75])


def test_classification_mix_beats_each_member():
    y = np.array([0, 1, 2, 0, 1, 2])
    eye = np.eye(3)
    good_on_first_half = np.vstack([eye[[0, 1, 2]], np.full((3, 3), 1 / 3) + [[0.1, 0, 0]] * 3])
    good_on_second_half = np.vstack([np.full((3, 3), 1 / 3) + [[0, 0.1, 0]] * 3, eye[[0, 1, 2]]])
    w = select("caruana", [good_on_first_half, good_on_second_half], y, ACC)
    assert ACC.fn(y, blend([good_on_first_half, good_on_second_half], w)) == 1.0
    assert max(ACC.fn(y, good_on_first_half), ACC.fn(y, good_on_second_half)) < 1.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 6))
def test_sequential_never_scores_below_the_best_single_member(seed, m):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, 40)
    members = [y + rng.normal(rng.normal(0, 1), rng.uniform(0.1, 2), 40) for _ in range(m)]
    w = sequential(members, y, RMSE, rounds=10)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    best_single = min(RMSE.fn(y, p) for p in members)
    assert RMSE.fn(y, blend(members, w)) <= best_single + 1e-12


def test_uniform_and_unknown_method():
    assert list(select("uniform", [np.zeros(3)] * 4, np.zeros(3), RMSE)) == [0.25] * 4
    with pytest.raises(ConfigError, match="sequential"):
        select("sequentail", [np.zeros(3)], np.zeros(3), RMSE)


def test_best_puts_all_weight_on_the_best_single_member():
    y = np.zeros(20)
    far, near, nearer = np.full(20, 3.0), np.full(20, 1.0), np.full(20, -0.5)
    assert list(select("best", [far, near, nearer], y, RMSE)) == [0.0, 0.0, 1.0]
    assert list(select("best", [near, near], y, RMSE)) == [1.0, 0.0]  # ties: the earlier member
    labels = np.zeros(10, dtype=int)  # accuracy, higher is better: only the second member is right
    w = select("best", [np.eye(3)[[1] * 10], np.eye(3)[[0] * 10], np.eye(3)[[2] * 10]], labels, ACC)
    assert list(w) == [0.0, 1.0, 0.0]

"""Sample weights: a column of row weights, never a feature, in every member kind's loss and the metric."""
import numpy as np
import pandas as pd
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.errors import SchemaError

from conftest import make_table


def _data(folder, n=90, seed=0):
    df = make_table(folder, n=n, kinds=("numerical", "categorical", "text"), seed=seed)
    df["w"] = np.random.default_rng(seed).integers(1, 4, len(df)).astype(float)  # 1, 2 or 3
    return df


def _duplicated(df):
    """Each row repeated w times, with weight 1: what integer weights stand for."""
    out = df.loc[df.index.repeat(df["w"].astype(int))].reset_index(drop=True)
    out["w"] = 1.0
    return out


@pytest.mark.parametrize("pool", [["linear"], ["lightgbm"]])
def test_integer_weights_match_duplicated_rows_for_classic_members(table_dir, pool):
    df = _data(table_dir)
    train, tuning = df.iloc[:60], df.iloc[60:]
    kw = dict(label="y", pool=pool, sample_weight="w", verbosity=0)
    weighted = MultimodalPredictor(**kw).fit(train, tuning_data=tuning)
    duplicated = MultimodalPredictor(**kw).fit(_duplicated(train), tuning_data=tuning)
    # linear: the same objective, so the same model up to the solver's tolerance; trees: within 0.02
    tol = 1e-3 if pool == ["linear"] else 0.02
    assert weighted.fit_info_["val_score"] == pytest.approx(duplicated.fit_info_["val_score"], abs=tol)


def test_integer_weights_match_duplicated_rows_for_a_network(table_dir):
    df = _data(table_dir, n=120)
    train, tuning = df.iloc[:80], df.iloc[80:]
    kw = dict(label="y", preset="tiny", sample_weight="w", verbosity=0, overrides={"optim.max_epochs": 6})
    weighted = MultimodalPredictor(**kw).fit(train, tuning_data=tuning)
    duplicated = MultimodalPredictor(**kw).fit(_duplicated(train), tuning_data=tuning)
    # other batches, same objective in expectation: validation accuracy within 0.15 (6 of 40 rows)
    assert abs(weighted.fit_info_["val_score"] - duplicated.fit_info_["val_score"]) <= 0.15


@pytest.mark.parametrize("pool", [None, ["linear", "lightgbm"]])
def test_zero_weight_rows_do_not_matter(table_dir, pool):
    df = _data(table_dir)
    df.loc[df.index[:20], "w"] = 0.0
    flipped = df.copy()
    flipped.loc[flipped.index[:20], "y"] = flipped.loc[flipped.index[:20], "y"].map({"a": "b", "b": "c", "c": "a"})
    train, tuning = slice(0, 60), slice(60, None)
    kw = dict(label="y", sample_weight="w", verbosity=0, overrides={"optim.max_epochs": 3})
    kw.update({"pool": pool} if pool else {"preset": "tiny"})
    a = MultimodalPredictor(**kw).fit(df.iloc[train], tuning_data=df.iloc[tuning])
    b = MultimodalPredictor(**kw).fit(flipped.iloc[train], tuning_data=df.iloc[tuning])
    # networks: zero weight means zero gradient, so the very same model; classic members: within 1e-6
    np.testing.assert_allclose(a.predict_proba(df).to_numpy(), b.predict_proba(df).to_numpy(), atol=1e-6)


def test_the_validation_metric_is_weighted_and_the_column_is_no_feature(table_dir):
    df = _data(table_dir)
    p = MultimodalPredictor(label="y", pool=["linear"], sample_weight="w", verbosity=0).fit(
        df.iloc[:60], tuning_data=df.iloc[60:])
    assert "w" not in p.schema_.column_kinds
    tuning = df.iloc[60:]
    weighted, plain = p.evaluate(tuning)["accuracy"], p.evaluate(tuning.drop(columns="w"))["accuracy"]
    assert p.fit_info_["val_score"] == pytest.approx(weighted)
    hits = (p.predict(tuning) == tuning["y"]).to_numpy()
    assert weighted == pytest.approx(np.average(hits, weights=tuning["w"]))
    assert plain == pytest.approx(hits.mean())


@pytest.mark.parametrize("values,match", [([-1.0], "negative"), ([np.nan], "missing"), (["x"], "non-numeric"),
                                          ("zeros", "zero on every row")])
def test_bad_weights_get_a_clear_error(table_dir, values, match):
    df = _data(table_dir, n=30)
    if values == "zeros":
        df["w"] = 0.0
    else:
        df["w"] = df["w"].astype(object)
        df.loc[df.index[3], "w"] = values[0]
    with pytest.raises(SchemaError, match=match):
        MultimodalPredictor(label="y", preset="tiny", sample_weight="w", verbosity=0).fit(df)
    with pytest.raises(SchemaError, match="not in the training table"):
        MultimodalPredictor(label="y", preset="tiny", sample_weight="weight", verbosity=0).fit(df)


def test_cli_sample_weight_and_saved_predictor_keeps_it(table_dir, tmp_path):
    from mmtricks.cli import main

    df = _data(table_dir, n=60)
    path = tmp_path / "train.parquet"
    df.to_parquet(path)
    assert main(["fit", "--train", str(path), "--label", "y", "--pool", "linear", "--sample-weight", "w",
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    loaded = MultimodalPredictor.load(str(tmp_path / "m"), verbosity=0)
    assert loaded.sample_weight == "w"
    assert "w" not in loaded.schema_.column_kinds
    assert len(loaded.predict(pd.DataFrame(df.drop(columns=["w", "y"])))) == len(df)

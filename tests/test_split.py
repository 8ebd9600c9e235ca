"""The validation split: SPEC rule, groups that stay whole, duplicated text kept on one side."""
import numpy as np
import pandas as pd
import pytest
from conftest import make_table

from mmtricks import MultimodalPredictor
from mmtricks.data.split import duplicate_text_groups, train_valid_split
from mmtricks.errors import ConfigError, SchemaError


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, 60, n)  # about 3 rows per patient
    return pd.DataFrame({"patient": patient, "notes": [f"patient {p} notes: long enough text" for p in patient],
                         "x": rng.normal(size=n), "y": np.where(patient % 3 == 0, "rare", "common")})


def test_duplicate_text_groups_ties_identical_text_only():
    df = pd.DataFrame({"a": ["same", "same", "other", None, None, "  ", "x"],
                       "b": ["t", "t", "t", None, None, None, "y"]})
    ids = duplicate_text_groups(df, ["a", "b"])
    assert ids[0] == ids[1]  # identical in every text column
    assert len(set(ids[2:])) == 5  # differs in one column, or all empty: each row alone
    assert duplicate_text_groups(df.iloc[2:], ["a", "b"]) is None  # nothing shared
    assert duplicate_text_groups(df, []) is None


def test_a_very_common_text_is_not_a_group():
    # 30 of 200 rows share a hospital name: a common value (15% > 2%), not one entity.
    df = pd.DataFrame({"t": ["Mount Sinai Hospital"] * 30 + [f"row {i}" for i in range(168)] + ["dup", "dup"]})
    ids = duplicate_text_groups(df, ["t"])
    assert len(set(ids[:30])) == 30 and ids[-1] == ids[-2]


@pytest.mark.parametrize("classification", [True, False])
def test_group_split_never_puts_a_group_on_both_sides(classification):
    df = _frame()
    if not classification:
        df["y"] = df["x"] * 2
    for seed in range(3):
        tr, va = train_valid_split(df, "y", classification, seed, groups=df["patient"].to_numpy())
        assert not set(tr["patient"]) & set(va["patient"])
        assert len(tr) + len(va) == len(df) and 0.1 <= len(va) / len(df) <= 0.35
        if classification:  # stratified by label over groups: both classes on both sides
            assert set(va["y"]) == set(tr["y"]) == {"rare", "common"}
    # Without groups the old row-level split is unchanged (and mixes patients).
    tr, va = train_valid_split(df, "y", True, 0)
    assert set(tr["patient"]) & set(va["patient"])


def test_fit_keeps_duplicated_text_on_one_side(tmp_path, capsys):
    df = make_table(str(tmp_path), n=60, kinds=("numerical", "text"))
    df["txt"] = [f"entity {i // 3} " + t for i, t in enumerate(df["txt"])]  # three rows per entity share text
    df["txt"] = df.groupby(df.index // 3)["txt"].transform("first")
    p = MultimodalPredictor(label="y", preset="tiny", seed=0, verbosity=1,
                            overrides={"optim.max_epochs": 1}).fit(df)
    assert "60 rows share their text with another row" in capsys.readouterr().out
    assert p.fit_info_["n_val"] % 3 == 0  # whole entities only
    # Switched off: the row-level split (12 rows = 20% of 60).
    off = MultimodalPredictor(label="y", preset="tiny", seed=0, verbosity=0,
                              overrides={"optim.max_epochs": 1, "data.group_duplicate_text": False}).fit(df)
    assert off.fit_info_["n_val"] == 12


def test_group_column_is_used_for_the_split_only(tmp_path):
    df = make_table(str(tmp_path), n=60, kinds=("numerical", "categorical"))
    df["site"] = [f"s{i % 15}" for i in range(len(df))]
    p = MultimodalPredictor(label="y", preset="tiny", seed=0, verbosity=0,
                            overrides={"optim.max_epochs": 1, "data.group_column": "site"}).fit(df)
    assert "site" not in p.schema_.column_kinds
    assert p.fit_info_["n_val"] % 4 == 0  # 15 sites of 4 rows each
    assert len(p.predict(df)) == len(df)  # the column may still be in the frame at predict time
    with pytest.raises(ConfigError, match="'sites' is not a column.*'site'"):
        MultimodalPredictor(label="y", preset="tiny", overrides={"data.group_column": "sites"}).fit(df)
    df.loc[3, "site"] = None
    with pytest.raises(SchemaError, match="'site' has 1 empty cells"):
        MultimodalPredictor(label="y", preset="tiny", verbosity=0, overrides={"data.group_column": "site"}).fit(df)

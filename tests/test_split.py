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
    tr, va = train_valid_split(df, "y", classification, 0)
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


# ---------------------------------------------------------------- issue #15: single-row classes
def test_single_row_classes_go_to_train_with_a_warning():
    import warnings

    from mmtricks.data.split import unsplittable_classes
    from mmtricks.errors import RareClassWarning

    df = _frame().drop(columns=["notes"])
    df.index = df.index + 500  # row labels need not be positions
    df.loc[[503, 650], "y"] = ["solo", "alone"]
    with pytest.warns(RareClassWarning, match=r"2 class\(es\) with a single row \('alone', 'solo'\): they are "
                                              r"kept in training"):
        tr, va = train_valid_split(df, "y", True, 0)
    assert {"solo", "alone"} <= set(tr["y"]) and set(va["y"]) == {"rare", "common"}
    assert len(tr) + len(va) == len(df) and not set(tr.index) & set(va.index)
    assert len(va) == round(0.2 * 198)  # the other rows split as before: 20% of them
    # With groups: a single-row class takes its whole group to train, and a class whose rows
    # are all in one group counts as rare too; no group is on both sides.
    df.loc[df["patient"] == 7, "y"] = "one_patient"
    groups = df["patient"].to_numpy()
    assert unsplittable_classes(df["y"], groups) == ["alone", "one_patient", "solo"]
    for seed in range(3):
        with pytest.warns(RareClassWarning, match="'alone', 'one_patient', 'solo'"):
            tr, va = train_valid_split(df, "y", True, seed, groups=groups)
        assert set(va["y"]) == {"rare", "common"} and not set(tr["patient"]) & set(va["patient"])
        assert set(df.loc[df["y"].isin(["solo", "alone"]), "patient"]) <= set(tr["patient"])
    # No rare class: no warning, and the split is the one it always was.
    plain_df = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RareClassWarning)
        tr, va = train_valid_split(plain_df, "y", True, 0)
    assert len(va) == 40
    # Regression has no classes: nothing is forced.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RareClassWarning)
        train_valid_split(df.assign(y=df["x"]), "y", False, 0, groups=groups)


def test_every_class_single_row_leaves_nothing_to_validate_on():
    df = pd.DataFrame({"x": np.arange(4.0), "y": ["a", "b", "c", "d"]})
    with pytest.raises(SchemaError, match=r"every class has a single row \('a', 'b', 'c', 'd'\), so fewer than 2 "
                                          r"rows are left .* pass tuning_data"):
        train_valid_split(df, "y", True, 0)
    df = pd.DataFrame({"x": np.arange(6.0), "y": ["a", "a", "b", "b", "c", "d"]})
    with pytest.raises(SchemaError, match="or a single group .* fewer than 2 groups"):
        train_valid_split(df, "y", True, 0, groups=np.array([0, 0, 1, 1, 2, 2]))

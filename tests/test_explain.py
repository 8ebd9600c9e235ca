"""What each modality contributes (mmtricks.explain): the metric's drop without a group of columns."""
import copy
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmtricks.cli import main
from mmtricks.errors import ConfigError, SchemaError
from mmtricks.explain import RESULT_COLUMNS, modality_importance, plot_importance, resolve_groups

from informative import fit_tiny, informative_table


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny binary model on a table whose label only the numbers carry; the text is random words."""
    df = informative_table()
    p = fit_tiny(df)
    assert p.schema_.column_kinds == {"x": "numerical", "z": "numerical", "txt": "text"}
    model = tmp_path_factory.mktemp("explain") / "model"
    p.save(str(model))
    return p, df, model


def test_informative_modality_drops_far_more_than_the_uninformative_one(fitted):
    p, df, _ = fitted
    imp = modality_importance(p, df)
    assert list(imp.columns) == RESULT_COLUMNS
    assert list(imp["group"]) == ["tabular", "text"]
    row = imp.set_index("group")
    assert row.loc["tabular", "columns"] == "x,z" and row.loc["text", "columns"] == "txt"
    # roc_auc falls to about chance without the numbers and stays put without the random text.
    assert row.loc["tabular", "drop"] > 0.25
    assert abs(row.loc["text", "drop"]) < 0.05
    assert row.loc["tabular", "drop"] > row.loc["text", "drop"] + 3 * row.loc["tabular", "spread"]
    assert (imp["n_rows"] == len(df)).all() and (imp["repeats"] == 5).all() and (imp["metric"] == "roc_auc").all()


def test_baseline_is_evaluate_and_missing_is_deterministic(fitted):
    p, df, _ = fitted
    imp = modality_importance(p, df)
    assert imp["baseline"].iloc[0] == pytest.approx(p.evaluate(df)[p.metric_], abs=1e-12)
    without = df.assign(x=np.nan, z=np.nan)
    assert imp.set_index("group").loc["tabular", "score"] == pytest.approx(p.evaluate(without)[p.metric_], abs=1e-12)
    pd.testing.assert_frame_equal(imp, modality_importance(p, df))  # same seed, same spread
    other = modality_importance(p, df, seed=1)
    np.testing.assert_allclose(other["drop"], imp["drop"])  # the point estimate does not depend on the seed
    assert imp["spread"].iloc[0] > 0 and (imp["spread"] >= 0).all()  # the bootstrap resamples give a spread
    assert modality_importance(p, df, repeats=0)["spread"].isna().all()


def test_permute_agrees_and_is_seeded(fitted):
    p, df, _ = fitted
    imp = modality_importance(p, df, method="permute", repeats=3, seed=7).set_index("group")
    assert imp.loc["tabular", "drop"] > 0.25 and abs(imp.loc["text", "drop"]) < 0.05
    again = modality_importance(p, df, method="permute", repeats=3, seed=7).set_index("group")
    pd.testing.assert_frame_equal(imp, again)
    assert not np.allclose(modality_importance(p, df, method="permute", repeats=3, seed=8)["score"],
                           imp["score"].to_numpy())


def test_per_column_groups_and_the_method(fitted):
    p, df, _ = fitted
    imp = p.modality_importance(df, groups="all").set_index("group")
    assert list(imp.index) == ["tabular", "text", "x", "z", "txt"]
    assert imp.loc["x", "drop"] > 0.25 and imp.loc["x", "drop"] > imp.loc["z", "drop"] + 0.2
    custom = p.modality_importance(df, groups={"signal": ["x"], "noise": ["z", "txt"]}).set_index("group")
    assert custom.loc["signal", "drop"] > custom.loc["noise", "drop"] + 0.2
    assert list(p.modality_importance(df, groups=["z"])["group"]) == ["z"]
    assert list(resolve_groups(p.schema_, "columns")) == ["x", "z", "txt"]


def test_lower_is_better_metric_still_reports_a_positive_drop(fitted):
    p, df, _ = fitted
    q = copy.copy(p)
    q.metric_ = "log_loss"  # the same model judged by a metric where lower is better
    row = modality_importance(q, df).set_index("group")
    assert row.loc["tabular", "score"] > row.loc["tabular", "baseline"]  # worse log loss without the numbers
    assert row.loc["tabular", "drop"] > 0.1 and abs(row.loc["text", "drop"]) < 0.05


def test_rows_without_label_are_left_out(fitted):
    p, df, _ = fitted
    holey = df.copy()
    holey.loc[:9, "y"] = None
    assert (modality_importance(p, holey, repeats=0)["n_rows"] == len(df) - 10).all()


def test_bad_arguments_are_named(fitted):
    p, df, _ = fitted
    with pytest.raises(SchemaError, match=r"'xx' is not a feature column.*Did you mean 'x'"):
        modality_importance(p, df, groups=["xx"])
    with pytest.raises(ConfigError, match="method"):
        modality_importance(p, df, method="drop")
    with pytest.raises(ConfigError, match="repeats"):
        modality_importance(p, df, method="permute", repeats=0)
    with pytest.raises(ConfigError, match="groups"):
        modality_importance(p, df, groups="modality")
    with pytest.raises(SchemaError, match="label column 'y'"):
        modality_importance(p, df.drop(columns=["y"]))


def test_plot_has_a_bar_per_group(fitted, tmp_path):
    p, df, _ = fitted
    path = plot_importance(modality_importance(p, df), str(tmp_path / "imp.png"))
    with Image.open(path) as im:
        assert im.size[0] > 300 and len(im.convert("RGB").getcolors(1 << 20)) > 2


def test_cli_prints_the_table_and_writes_the_plot(fitted, tmp_path, capsys):
    _, df, model = fitted
    data = tmp_path / "test.parquet"
    df.to_parquet(data)
    png = tmp_path / "drops.png"
    assert main(["explain", "--model", str(model), "--data", str(data), "--columns", "--plot", str(png)]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split()[:6] == ["group", "columns", "metric", "baseline", "score", "drop"]
    names = [line.split()[0] for line in lines[1:]]
    assert names[:2] == ["tabular", "text"] and sorted(names[2:]) == ["txt", "x", "z"]  # modalities, then columns
    assert png.is_file() and "plot written" in err
    assert main(["explain", "--model", str(model), "--data", str(data), "--json", "--method", "permute",
                 "--repeats", "2"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["group"] for r in records] == ["tabular", "text"] and records[0]["drop"] > 0.25
    assert main(["explain", "--model", str(model), "--data", str(data), "--method", "permute", "--repeats", "0"]) == 2
    err = capsys.readouterr().err
    assert "repeats" in err and "Traceback" not in err


def test_every_modality_can_be_taken_away(table_dir):
    """Images and categories too: empty image cells and unknown categories are imputed, not errors."""
    from conftest import make_table

    df = make_table(table_dir, n=60, kinds=("numerical", "categorical", "text", "image"))
    p = fit_tiny(df)
    for method in ("missing", "permute"):
        imp = modality_importance(p, df, groups="all", repeats=2, method=method)
        assert list(imp["group"][:3]) == ["tabular", "text", "image"]
        assert set(imp["group"][3:]) == {"num_a", "num_b", "cat_a", "txt", "img"}
        assert imp[["baseline", "score", "drop"]].notna().all().all()

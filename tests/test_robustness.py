"""The bad-input catalogue of docs/robustness.md: each row gets a typed error or a tested recovery."""
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmtricks import MultimodalPredictor
from mmtricks.errors import DataError, MMTricksError, SchemaError

from conftest import make_table

ALL = ("numerical", "categorical", "text", "image")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("fitted"))
    df = make_table(folder, n=48, kinds=ALL)
    p = MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1}, verbosity=0).fit(df)
    return p, df, folder


def quick_fit(df, **kwargs):
    return MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1}, verbosity=0,
                               **kwargs).fit(df)


# ---------------------------------------------------------------- tables and labels
def test_empty_frame():
    with pytest.raises(SchemaError, match="no rows"):
        quick_fit(pd.DataFrame({"a": pd.Series([], dtype=float), "y": pd.Series([], dtype=str)}))


@pytest.mark.parametrize("label, match", [
    (None, "Label column 'y' is not in the table"),
    ([None] * 6, "all values missing"),
    (["a"] * 6, "single value"),
])
def test_label_absent_all_nan_or_constant(label, match):
    df = pd.DataFrame({"a": np.arange(6.0), "b": list("xyxyxy")})
    if label is not None:
        df["y"] = label
    with pytest.raises(SchemaError, match=match):
        quick_fit(df)


def test_one_row_per_class():
    df = pd.DataFrame({"a": np.arange(4.0), "y": ["a", "b", "c", "d"]})
    with pytest.raises(SchemaError, match="every class has a single row .* pass tuning_data"):
        quick_fit(df)


def test_a_class_with_a_single_row_is_kept_in_training(table_dir):
    import warnings

    from mmtricks.errors import RareClassWarning

    df = make_table(table_dir, n=48, kinds=("numerical", "categorical"))
    df.index = df.index + 100
    df.loc[[105, 130], "y"] = ["zz", "solo"]  # long tail: two classes of one row each
    with pytest.warns(RareClassWarning, match=r"2 class\(es\) with a single row \('solo', 'zz'\)"):
        p = quick_fit(df)
    assert p.schema_.classes == ["a", "b", "c", "solo", "zz"]
    assert p.fit_info_["n_val"] == round(0.2 * 46)  # validation drawn from the other rows only
    proba = p.predict_proba(df)
    assert list(proba.columns) == p.schema_.classes and np.isfinite(proba.to_numpy()).all()
    scores = p.evaluate(df)
    assert all(np.isfinite(v) for v in scores.values())
    # With tuning_data the split is not made: nothing to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RareClassWarning)
        MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1},
                            verbosity=0).fit(df, tuning_data=df[~df["y"].isin(["zz", "solo"])])


def test_unseen_class_at_evaluate(fitted):
    p, df, _ = fitted
    other = df.copy()
    other.loc[0, "y"] = "zebra"
    with pytest.raises(SchemaError, match="zebra"):
        p.evaluate(other)


def test_duplicate_column_names(fitted):
    p, df, _ = fitted
    dup = pd.concat([df, df[["num_a"]]], axis=1)
    with pytest.raises(SchemaError, match="[Dd]uplicate column"):
        quick_fit(dup)
    with pytest.raises(SchemaError, match="[Dd]uplicate column"):
        p.predict(dup)


def test_columns_named_like_internal_fields_are_plain_columns(table_dir):
    df = make_table(table_dir, n=40, kinds=("numerical", "categorical")).rename(
        columns={"num_a": "num", "num_b": "label", "cat_a": "image_missing"})
    p = quick_fit(df)
    assert p.schema_.column_kinds == {"num": "numerical", "label": "numerical", "image_missing": "categorical"}
    assert len(p.predict(df)) == 40


# ---------------------------------------------------------------- cell values
def test_mixed_types_and_numbers_as_strings_and_inf(table_dir):
    df = make_table(table_dir, n=40, kinds=("numerical", "categorical"))
    df["mixed"] = [1, "a", 2.5, None] * 10
    df["num_str"] = [f"{v:.3f}" for v in df["num_a"]]
    df.loc[0, "num_a"] = np.inf
    df.loc[1, "num_b"] = -np.inf
    p = quick_fit(df)
    assert p.schema_.column_kinds["mixed"] == "categorical"
    assert p.schema_.column_kinds["num_str"] == "numerical"
    assert np.isfinite(p.predict_proba(df).to_numpy()).all()


def test_wrong_dtype_at_predict_time_warns_and_recovers(fitted):
    p, df, _ = fitted
    bad = df.copy()
    bad["num_a"] = bad["num_a"].astype(object)
    bad.loc[:4, "num_a"] = "oops"
    with pytest.warns(UserWarning, match="num_a.*not numbers"):
        proba = p.predict_proba(bad)
    assert np.isfinite(proba.to_numpy()).all()


def test_text_huge_empty_and_non_utf8(fitted):
    p, df, _ = fitted
    bad = df.copy().astype({"txt": object})
    bad.loc[0, "txt"] = "word " * 500_000  # 2.5 MB in one cell
    bad.loc[1, "txt"] = ""
    bad.loc[2, "txt"] = b"caf\xe9 \xff\xfe broken bytes"
    bad.loc[3, "txt"] = None
    assert np.isfinite(p.predict_proba(bad).to_numpy()).all()


def test_predict_frame_with_missing_extra_and_reordered_columns(fitted):
    p, df, _ = fitted
    reordered = df[list(reversed(df.columns))].assign(extra=np.arange(len(df)))
    pd.testing.assert_frame_equal(p.predict_proba(reordered), p.predict_proba(df))
    with pytest.raises(SchemaError, match="txt"):
        p.predict(df.drop(columns=["txt"]))


# ---------------------------------------------------------------- image files
def _png(folder, name, img):
    path = os.path.join(folder, name)
    img.save(path)
    return path


def _bad_images(folder):
    good = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    out = {}
    out["corrupt"] = os.path.join(folder, "corrupt.png")
    with open(out["corrupt"], "wb") as f:
        f.write(os.urandom(200))
    full = _png(folder, "full.jpg", good)
    out["truncated"] = os.path.join(folder, "truncated.jpg")
    with open(full, "rb") as f, open(out["truncated"], "wb") as g:
        g.write(f.read()[: os.path.getsize(full) // 2])
    out["directory"] = folder
    out["one_pixel"] = _png(folder, "one.png", Image.new("RGB", (1, 1), (255, 0, 0)))
    out["16_bit"] = _png(folder, "deep.png", Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 200))
    out["cmyk"] = _png(folder, "cmyk.jpg", good.convert("CMYK"))
    pal = good.convert("P")
    pal.info["transparency"] = 0
    out["palette"] = _png(folder, "pal.png", pal)
    anim = os.path.join(folder, "anim.gif")
    good.save(anim, save_all=True, append_images=[good.rotate(90)], duration=100, loop=0)
    out["animated"] = anim
    return out


RECOVERED = ("one_pixel", "16_bit", "cmyk", "palette", "animated")


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "directory"] + list(RECOVERED))
def test_image_files(fitted, kind):
    p, df, folder = fitted
    path = _bad_images(folder)[kind]
    bad = df.copy()
    bad.loc[7, "img"] = path
    if kind in RECOVERED:
        assert np.isfinite(p.predict_proba(bad).to_numpy()).all()
    else:
        with pytest.raises(DataError, match=os.path.basename(path.rstrip("/")) if kind != "directory" else "directory"):
            p.predict(bad)


def test_missing_image_names_the_row_label_plainly(fitted):
    p, df, _ = fitted
    bad = df.copy()
    bad.index = pd.Index(np.arange(len(df)) * 10, dtype="int64")  # numpy int64 row labels
    bad.loc[70, "img"] = "nowhere/lost.png"
    with pytest.raises(DataError, match=r"Image in row 70, column 'img': '.*lost.png' does not exist") as err:
        p.predict(bad)
    assert "np." not in str(err.value)


def test_regression_label_errors_name_rows():
    from mmtricks.data.processors import LabelProcessor

    y = pd.Series([1.0, np.nan, "x", 2.0], index=pd.Index([10, 11, 12, 13], dtype="int64"), dtype=object)
    proc = LabelProcessor("regression").fit(pd.Series([1.0, 2.0]))
    with pytest.raises(SchemaError, match=r"'y' has 2 missing or non-numeric value\(s\), in rows 11 \(nan\), "
                                          r"12 \('x'\); fix or drop those rows"):
        proc.transform(y, "y")


def test_decompression_bomb_is_refused(fitted, monkeypatch):
    p, df, folder = fitted
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64)  # a 16x16 image is then "enormous"
    with pytest.raises(DataError, match="DecompressionBomb"):
        p.predict(df)


def test_every_error_is_an_mmtricks_error_subclassing_a_builtin():
    for cls in (DataError, SchemaError):
        assert issubclass(cls, MMTricksError) and issubclass(cls, ValueError)


def test_prediction_in_chunks_matches_one_pass(fitted, monkeypatch):
    import mmtricks.predictor as predictor_module

    p, df, _ = fitted
    whole = p.predict_proba(df)
    monkeypatch.setattr(predictor_module, "PREDICT_CHUNK", 7)  # bounded memory: encode 7 rows at a time
    pd.testing.assert_frame_equal(p.predict_proba(df), whole, atol=1e-6, rtol=0)

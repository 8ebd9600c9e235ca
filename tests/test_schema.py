"""Column kind and problem type inference; schema errors name the column."""
import numpy as np
import pandas as pd
import pytest

from mmtricks.errors import SchemaError
from mmtricks.schema import infer_schema, validate_frame
from mmtricks.schema.infer import infer_column_kind, infer_problem_type


def test_kinds_on_a_mixed_frame():
    n = 40
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "price": rng.normal(size=n),
        "count": rng.integers(0, 100, n),
        "flag": rng.integers(0, 2, n),
        "color": rng.choice(["red", "green", "blue"], n),
        "review": [f"this product was really quite good number {i}" for i in range(n)],
        "photo": [f"imgs/{i}.jpg" for i in range(n)],
        "multi_photo": [f"a/{i}.png;b/{i}.png" for i in range(n)],
        "price_str": [f"{x:.2f}" for x in rng.normal(size=n)],
        "zip_str": [str(10000 + i % 7) for i in range(n)],
        "const": ["same"] * n,
        "empty": [None] * n,
        "y": rng.integers(0, 3, n),
    })
    schema = infer_schema(df, "y")
    assert schema.column_kinds == {
        "price": "numerical", "count": "numerical", "flag": "categorical", "color": "categorical",
        "review": "text", "photo": "image", "multi_photo": "image", "price_str": "numerical",
        "zip_str": "categorical",
    }
    assert schema.problem_type == "multiclass"
    assert schema.classes == [0, 1, 2]
    assert schema.modalities == ["tabular", "text", "image"]


def test_column_type_overrides_and_ignore():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x y z w", "p q r s", "x y z w", "k l m n"], "y": [0, 1, 0, 1]})
    schema = infer_schema(df, "y", column_types={"a": "categorical", "b": "ignore"})
    assert schema.column_kinds == {"a": "categorical"}
    with pytest.raises(SchemaError, match="'nope'"):
        infer_schema(df, "y", column_types={"nope": "text"})
    with pytest.raises(SchemaError, match="textt"):
        infer_schema(df, "y", column_types={"a": "textt"})


@pytest.mark.parametrize("values, expected", [
    ([0, 1, 0, 1, 1], "binary"),
    (["cat", "dog", "cat", "dog"], "binary"),
    (["a", "b", "c", "a"], "multiclass"),
    ([1, 2, 3, 1, 2, 3, 1, 2, 3, 3], "multiclass"),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 1.0], "regression"),  # a float label is a quantity
    ([0.1, 2.5, 3.3, 4.9, 1.2], "regression"),
])
def test_problem_type(values, expected):
    assert infer_problem_type(pd.Series(values)) == expected


def test_problem_type_override_is_checked():
    df = pd.DataFrame({"a": np.arange(6.0), "y": ["a", "b", "c", "a", "b", "c"]})
    assert infer_schema(df, "y", problem_type="multiclass").problem_type == "multiclass"
    with pytest.raises(SchemaError, match="binary"):
        infer_schema(df, "y", problem_type="binary")
    with pytest.raises(SchemaError, match="regresion"):
        infer_schema(df, "y", problem_type="regresion")


def test_label_errors():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "label": [1, 1, 1]})
    with pytest.raises(SchemaError, match="Did you mean 'label'"):
        infer_schema(df, "labl")
    with pytest.raises(SchemaError, match="single value"):
        infer_schema(df, "label")
    with pytest.raises(SchemaError, match="no rows"):
        infer_schema(df.iloc[:0], "label")


def test_validate_frame_names_missing_columns_and_ignores_order():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "x", "y"], "y": [0, 1, 0, 1]})
    schema = infer_schema(df, "y")
    reordered = df[["b", "a"]].assign(extra=1)
    assert list(validate_frame(reordered, schema).columns) == ["a", "b"]
    with pytest.raises(SchemaError, match=r"\['b'\]"):
        validate_frame(df[["a"]], schema)


def test_kind_of_empty_column_is_none():
    assert infer_column_kind(pd.Series([None, None])) is None


# ---------------------------------------------------------------- issue #15: messages
def _floats_with(strays, n=40, start=100):
    """A float label (object dtype) with ``strays`` (row label -> value); row labels start at ``start``."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": np.arange(float(n)), "y": rng.normal(size=n).astype(object)},
                      index=pd.Index(np.arange(start, start + n), dtype="int64"))
    for row, value in strays.items():
        df.loc[row, "y"] = value
    return df


def test_numeric_label_with_a_stray_string_names_it():
    df = _floats_with({107: "oops"})
    with pytest.raises(SchemaError) as err:
        infer_schema(df, "y")
    msg = str(err.value)
    assert "Label column 'y' looks numeric except for 1 value(s) that are not numbers: 'oops' in row 107." in msg
    assert "Fix or drop those rows" in msg and "problem_type='multiclass'" in msg
    assert "np." not in msg
    with pytest.raises(SchemaError, match="'oops' in row 107. Fix or drop those rows.$"):
        infer_schema(df, "y", problem_type="regression")
    assert infer_schema(df, "y", problem_type="multiclass").problem_type == "multiclass"  # as asked
    # Dropping the row leaves an object column of floats: read as numbers.
    assert infer_schema(df.drop(index=107), "y").problem_type == "regression"


def test_stray_label_values_list_five_rows_and_the_rule():
    strays = {100 + i: f"bad{i}" for i in range(0, 14, 2)}  # 7 of 140 = 5%: still "a few"
    df = _floats_with(strays, n=140)
    with pytest.raises(SchemaError, match=r"for 7 value\(s\) that are not numbers: 'bad0' in row 100, 'bad2' "
                                          r"in row 102, 'bad4' in row 104, 'bad6' in row 106, 'bad8' in row 108 "
                                          r"and 2 more\."):
        infer_schema(df, "y")
    # More than 5% non-numeric (or one class of many rows): a set of classes, as before.
    df = _floats_with({100 + i: "n/a" for i in range(8)}, n=140)
    assert infer_schema(df, "y").problem_type == "multiclass"
    strings = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["1", "2", "1", "2"]})  # all numbers: no stray
    assert infer_schema(strings, "y").problem_type == "binary"


def test_messages_show_plain_values_not_numpy_reprs():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "label": np.array([3, 3, 3], dtype=np.int64)})
    with pytest.raises(SchemaError, match=r"has a single value 3: nothing to learn") as err:
        infer_schema(df, "label")
    assert "np." not in str(err.value)
    from mmtricks.errors import show, show_list

    assert show(np.int64(7)) == "7" and show(np.str_("a")) == "'a'" and show((np.int64(1), "b")) == "(1, 'b')"
    assert show_list(pd.Index(np.arange(8)), 3) == "0, 1, 2 ... (5 more)"

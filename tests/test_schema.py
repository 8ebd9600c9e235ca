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

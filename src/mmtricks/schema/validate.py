"""Check a frame against a fitted schema before predicting on it."""
from __future__ import annotations

import pandas as pd

from ..errors import SchemaError
from .infer import Schema


def validate_frame(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Return the feature columns of ``df`` in training order, or raise naming what is missing.

    Extra columns (the label included) are ignored; order does not matter.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"Expected a pandas DataFrame or a CSV/Parquet path, got {type(df).__name__}.")
    if len(df.columns) != len(set(map(str, df.columns))):
        raise SchemaError("The table has duplicate column names: rename them so each column is unique.")
    missing = [c for c in schema.column_kinds if c not in df.columns]
    if missing:
        raise SchemaError(
            f"Columns used in training are missing from this table: {missing}. "
            f"Add them (empty values are allowed) and try again."
        )
    if df.empty:
        raise SchemaError("The table has no rows.")
    return df[list(schema.column_kinds)]

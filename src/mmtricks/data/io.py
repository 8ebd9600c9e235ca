"""Read a table given as a DataFrame or a CSV/Parquet path; remember its folder for images."""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import pandas as pd

from ..errors import SchemaError

TableLike = Union[pd.DataFrame, str, os.PathLike]


def read_table(data: TableLike, base_dir: Optional[str] = None) -> Tuple[pd.DataFrame, Optional[str]]:
    """Return ``(frame, base_dir)``; relative image paths resolve against ``base_dir``.

    For a path, ``base_dir`` defaults to the file's folder; for a DataFrame, to the
    ``base_dir`` given (or the current directory when None).
    """
    if isinstance(data, pd.DataFrame):
        return data, base_dir
    if not isinstance(data, (str, os.PathLike)):
        raise SchemaError(f"Expected a pandas DataFrame or a CSV/Parquet path, got {type(data).__name__}.")
    path = os.fspath(data)
    if not os.path.isfile(path):
        raise SchemaError(f"Table file '{path}' does not exist.")
    low = path.lower()
    try:
        if low.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif low.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
            frame = pd.read_csv(path, sep="\t" if low.endswith(".tsv") else ",")
        else:
            raise SchemaError(f"Table file '{path}': unknown format. Use .csv, .tsv or .parquet.")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, SchemaError):
            raise
        raise SchemaError(f"Could not read table '{path}': {exc}") from exc
    return frame, base_dir or os.path.dirname(os.path.abspath(path))

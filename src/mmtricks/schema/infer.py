"""Infer each column's kind (numerical, categorical, text, image) and the problem type."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from ..errors import SchemaError, did_you_mean, one_of, show

KINDS = ("numerical", "categorical", "text", "image")
PROBLEM_TYPES = ("binary", "multiclass", "regression")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Schema:
    """What the predictor learned about the table's shape. JSON-serialisable."""

    label: str
    problem_type: str
    column_kinds: dict[str, str]  # feature column -> kind, in training column order
    classes: list = field(default_factory=list)  # classification labels, sorted

    def columns(self, kind: str) -> list[str]:
        return [c for c, k in self.column_kinds.items() if k == kind]

    @property
    def modalities(self) -> list[str]:
        """'tabular', 'text', 'image' present, in that order."""
        kinds = set(self.column_kinds.values())
        out = []
        if kinds & {"numerical", "categorical"}:
            out.append("tabular")
        out += [k for k in ("text", "image") if k in kinds]
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Schema":
        return cls(
            label=str(data["label"]),
            problem_type=str(data["problem_type"]),
            column_kinds={str(k): str(v) for k, v in data["column_kinds"].items()},
            classes=list(data.get("classes", [])),
        )


def _looks_like_image_paths(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    if sample.empty:
        return False
    first = sample.str.split(";").str[0].str.strip().str.lower()
    return bool(first.str.endswith(IMAGE_EXTENSIONS).mean() > 0.9)


def infer_column_kind(values: pd.Series) -> Optional[str]:
    """Kind of one feature column, or None for a column that carries nothing."""
    non_null = values.dropna()
    if non_null.empty:
        return None
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        n_unique = non_null.nunique()
        if n_unique <= 1:
            return None
        # Small integer codes (e.g. 0/1 flags) behave as categories.
        if pd.api.types.is_integer_dtype(values) and n_unique <= 2:
            return "categorical"
        return "numerical"
    as_str = non_null.astype(str)
    if _looks_like_image_paths(as_str):
        return "image"
    numeric = pd.to_numeric(as_str, errors="coerce")
    if numeric.notna().mean() > 0.95 and numeric.nunique() > 2:
        # Numbers stored as strings: decimals are measurements; whole numbers are
        # usually codes or ids (zip codes, product ids), so they stay categories.
        if (np.mod(numeric.dropna(), 1) != 0).any():
            return "numerical"
        return "categorical"
    n_unique = as_str.nunique()
    if n_unique <= 1:
        return None
    words = as_str.str.split().str.len().mean()
    unique_ratio = n_unique / len(as_str)
    # Free text: several words per cell, or mostly distinct multi-word phrases.
    if words >= 3 or (unique_ratio > 0.3 and words >= 1.5) or (unique_ratio > 0.5 and as_str.str.len().mean() > 20):
        return "text"
    return "categorical"


def infer_problem_type(label: pd.Series) -> str:
    y = label.dropna().infer_objects()  # Python numbers in an object column are numbers
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "binary" if y.nunique() == 2 else "multiclass"
    n_unique = y.nunique()
    if n_unique == 2:
        return "binary"
    # Integer labels with few values are classes; a float column is a quantity, even
    # when its values happen to be whole (ratings stored as 1.0 .. 5.0).
    if pd.api.types.is_integer_dtype(y) and n_unique <= 20 and n_unique / max(len(y), 1) < 0.5:
        return "multiclass"
    return "regression"


# A non-numeric label whose values are numbers but for at most this share of them (or one
# value, in a small table) is a numeric label with stray entries, not a set of classes.
STRAY_LABEL_SHARE = 0.05


def stray_label_values(label: pd.Series) -> Optional[pd.Series]:
    """The values that keep a label column from being numeric, or None when there are none to report.

    A label stored as text or mixed objects is taken as "numeric with stray values" when all
    but ``max(1, 5%)`` of its non-missing values parse as numbers and those take 2+ distinct
    values (``"oops"`` among floats, ``"n/a"`` among ratings). Returned with their row labels.
    """
    y = label.dropna()
    if y.empty or pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return None
    numeric = pd.to_numeric(y.astype(str).str.strip(), errors="coerce")
    bad = numeric.isna()
    n_bad = int(bad.sum())
    if n_bad == 0 or n_bad > max(1, int(STRAY_LABEL_SHARE * len(y))) or numeric.nunique() < 2:
        return None
    return y[bad]


def _stray_label_error(label: str, stray: pd.Series, problem_type: Optional[str]) -> SchemaError:
    n = len(stray)
    rows = ", ".join(f"{show(v)} in row {show(r)}" for r, v in zip(stray.index[:5], stray.iloc[:5]))
    more = f" and {n - 5} more" if n > 5 else ""
    if problem_type == "regression":
        todo = "Fix or drop those rows."
    else:
        todo = ("Fix or drop those rows (the problem type is then inferred from the numbers), or pass "
                "problem_type='multiclass' (or 'binary') to treat every value as a class.")
    return SchemaError(
        f"Label column '{label}' looks numeric except for {n} value(s) that are not numbers: {rows}{more}. {todo}"
    )


def infer_schema(
    df: pd.DataFrame,
    label: str,
    problem_type: Optional[str] = None,
    column_types: Optional[Mapping[str, str]] = None,
) -> Schema:
    """Infer a :class:`Schema` from a training frame.

    Args:
        df: The training table, label included.
        label: Name of the label column.
        problem_type: 'binary', 'multiclass' or 'regression'; inferred when None.
        column_types: Overrides, column -> kind ('numerical', 'categorical', 'text',
            'image', or 'ignore' to drop the column).
    """
    if len(df.columns) != len(set(map(str, df.columns))):
        dupes = sorted({str(c) for c in df.columns if list(map(str, df.columns)).count(str(c)) > 1})
        raise SchemaError(f"Duplicate column names {dupes}: rename them so each column is unique.")
    if df.empty:
        raise SchemaError("The training table has no rows.")
    if label not in df.columns:
        raise SchemaError(
            f"Label column '{label}' is not in the table.{did_you_mean(label, map(str, df.columns))} "
            f"Columns: {list(map(str, df.columns))}."
        )
    y = df[label]
    if y.isna().all():
        raise SchemaError(f"Label column '{label}' is empty (all values missing).")
    if y.dropna().nunique() < 2:
        raise SchemaError(f"Label column '{label}' has a single value {show(y.dropna().iloc[0])}: nothing to learn.")
    if problem_type is None:
        stray = stray_label_values(y)
        if stray is not None:
            raise _stray_label_error(label, stray, None)
        problem_type = infer_problem_type(y)
    elif problem_type not in PROBLEM_TYPES:
        raise SchemaError(one_of("problem_type", problem_type, PROBLEM_TYPES))
    if problem_type == "regression" and not pd.api.types.is_numeric_dtype(y):
        if pd.to_numeric(y.dropna(), errors="coerce").isna().any():
            stray = stray_label_values(y)
            if stray is not None:
                raise _stray_label_error(label, stray, problem_type)
            raise SchemaError(f"problem_type 'regression' needs a numeric label; column '{label}' is not numeric.")
    if problem_type == "binary" and y.dropna().nunique() != 2:
        raise SchemaError(f"problem_type 'binary' needs 2 label values; '{label}' has {y.dropna().nunique()}.")

    overrides = dict(column_types or {})
    for col, kind in overrides.items():
        if col not in df.columns:
            raise SchemaError(f"column_types names '{col}', which is not in the table.{did_you_mean(col, map(str, df.columns))}")
        if kind not in KINDS + ("ignore",):
            raise SchemaError(one_of(f"column_types['{col}']", kind, KINDS + ("ignore",)))
    kinds: dict[str, str] = {}
    for col in df.columns:
        if col == label:
            continue
        kind = overrides.get(col) or infer_column_kind(df[col])
        if kind and kind != "ignore":
            kinds[str(col)] = kind
    if not kinds:
        raise SchemaError("No usable feature column: every column besides the label is empty or constant.")
    classes: list = []
    if problem_type != "regression":
        classes = sorted(y.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        classes = [c.item() if hasattr(c, "item") else c for c in classes]
    return Schema(label=label, problem_type=problem_type, column_kinds=kinds, classes=classes)


def resolve_image_path(value: object, base_dir: Optional[str], separator: str = ";") -> Optional[str]:
    """First path of a cell, made absolute against ``base_dir``; None for an empty cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).split(separator)[0].strip()
    if not text:
        return None
    path = os.path.expanduser(text)
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    return path

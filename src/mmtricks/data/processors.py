"""Per-kind processors, fitted on the training split only, with JSON-serialisable state.

Each processor turns the columns of one kind into arrays for the dataset:
numbers scaled and mean-imputed (with a missing mask), categories indexed with an
unknown bucket (index 0), texts tokenised with the text encoder's own tokenizer,
image cells resolved to file paths (read lazily by the dataset).
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError, show, show_list
from ..schema.infer import resolve_image_path


def as_numbers(df: pd.DataFrame, col: str) -> np.ndarray:
    """Column ``col`` as float64; unparsable and non-finite values become NaN (with one warning)."""
    values = df[col]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        parsed = pd.to_numeric(values.astype(object).where(values.notna(), None), errors="coerce")
        bad = int((parsed.isna() & values.notna()).sum())
        if bad:
            warnings.warn(f"Column '{col}': {bad} value(s) are not numbers (e.g. "
                          f"{show(values[parsed.isna() & values.notna()].iloc[0])}); they are treated as missing.",
                          stacklevel=4)
        values = parsed
    arr = np.array(values, dtype=np.float64, copy=True)
    arr[~np.isfinite(arr)] = np.nan
    return arr


class NumericalProcessor:
    """Standardise numbers with train mean/std; missing and non-finite values become the mean."""

    def __init__(self, columns: list[str], mean: Optional[list] = None, std: Optional[list] = None):
        self.columns = list(columns)
        self.mean = mean
        self.std = std

    @staticmethod
    def _as_numbers(df: pd.DataFrame, col: str) -> np.ndarray:
        return as_numbers(df, col)

    def fit(self, df: pd.DataFrame) -> "NumericalProcessor":
        self.mean, self.std = [], []
        for col in self.columns:
            arr = self._as_numbers(df, col)
            mean = float(np.nanmean(arr)) if np.isfinite(arr).any() else 0.0
            std = float(np.nanstd(arr)) if np.isfinite(arr).sum() > 1 else 1.0
            self.mean.append(mean)
            self.std.append(std if std > 1e-12 else 1.0)
        return self

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(values, missing)``, both (n_rows, n_columns); values float32, missing bool."""
        n = len(df)
        values = np.zeros((n, len(self.columns)), dtype=np.float32)
        missing = np.zeros((n, len(self.columns)), dtype=bool)
        for j, col in enumerate(self.columns):
            arr = self._as_numbers(df, col)
            miss = np.isnan(arr)
            scaled = (arr - self.mean[j]) / self.std[j]
            scaled[miss] = 0.0  # the mean, after scaling
            values[:, j] = np.clip(scaled, -1e4, 1e4)
            missing[:, j] = miss
        return values, missing

    def state(self) -> dict:
        return {"columns": self.columns, "mean": self.mean, "std": self.std}


class CategoricalProcessor:
    """Index each column's levels; index 0 is the unknown/missing bucket."""

    def __init__(self, columns: list[str], vocab: Optional[list[list[str]]] = None, max_levels: int = 2000):
        self.columns = list(columns)
        self.vocab = vocab
        self.max_levels = max_levels

    @staticmethod
    def _as_strings(series: pd.Series) -> pd.Series:
        return series.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))

    def fit(self, df: pd.DataFrame) -> "CategoricalProcessor":
        self.vocab = []
        for col in self.columns:
            counts = self._as_strings(df[col]).dropna().value_counts()
            levels = sorted(counts.index[: self.max_levels].tolist())
            self.vocab.append(levels)
        return self

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per column, the unknown bucket included."""
        return [len(v) + 1 for v in self.vocab]

    def _indices(self) -> list[dict[str, int]]:
        """Level -> index per column, built once per vocabulary (not on every call: one-row prediction)."""
        if getattr(self, "_indices_of", None) is not self.vocab:
            self._index = [{level: i + 1 for i, level in enumerate(levels)} for levels in self.vocab]
            self._indices_of = self.vocab
        return self._index

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(df), len(self.columns)), dtype=np.int64)
        for j, (col, index) in enumerate(zip(self.columns, self._indices())):
            out[:, j] = self._as_strings(df[col]).map(lambda v: index.get(v, 0)).to_numpy(dtype=np.int64)
        return out

    def state(self) -> dict:
        return {"columns": self.columns, "vocab": self.vocab, "max_levels": self.max_levels}


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def render_cells(df: pd.DataFrame, col: str, rendered: Optional[dict] = None) -> list[str]:
    """Column ``col`` as text, one string per row ("" when missing).

    ``rendered``: column -> {"template": ..., "numeric": bool} for tabular columns rendered as
    text (``data.tabular_to_text``): the template's ``{col}`` becomes the column name and
    ``{value}`` the cell (numbers with 3 decimals); a missing cell stays "". Plain text
    columns are read as they are. Shared by TextProcessor and serving.
    """
    spec = (rendered or {}).get(col)
    if spec is None:
        return df[col].map(_cell_text).tolist()
    if spec["numeric"]:
        cells = [f"{v:.3f}" if np.isfinite(v) else "" for v in as_numbers(df, col)]
    else:
        cells = df[col].map(_cell_text).tolist()
    template = spec["template"]
    return [template.replace("{col}", col).replace("{value}", c) if c else "" for c in cells]


def join_columns(cols: list, prefix: list[int], sep: list[int], max_length: int) -> list[int]:
    """``prefix col1 sep col2 sep ...`` within ``max_length`` tokens, the budget shared fairly:
    columns shorter than their share give the rest to the others (also used by serving)."""
    budget = max(0, max_length - len(prefix) - len(sep) * max(1, len(cols)))
    caps = [0] * len(cols)
    order = sorted(range(len(cols)), key=lambda j: len(cols[j]))
    for rank, j in enumerate(order):
        caps[j] = min(len(cols[j]), budget // (len(cols) - rank))
        budget -= caps[j]
    ids = list(prefix)
    for j, col in enumerate(cols):
        if caps[j]:
            ids += [int(t) for t in col[: caps[j]]] + list(sep)
    return ids if len(ids) > len(prefix) else ids + list(sep)


class TextProcessor:
    """Tokenise each text column with the text encoder's own tokenizer; join them per row.

    Columns are tokenised separately (no special tokens) so a column can be dropped or
    be missing on its own; :meth:`join` builds ``[CLS] col1 [SEP] col2 [SEP]`` within
    ``max_length``, sharing the budget fairly between columns.
    """

    def __init__(self, columns: list[str], tokenizer, max_length: int, rendered: Optional[dict] = None):
        self.columns = list(columns)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.rendered = dict(rendered or {})  # tabular columns rendered as text (render_cells)
        tok = tokenizer
        first = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        sep = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        self._prefix = [int(first)] if first is not None else []
        self._sep = [int(sep)] if sep is not None else []

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else 0)

    def transform(self, df: pd.DataFrame) -> list[list[np.ndarray]]:
        """Per row, per text column: int32 token ids without special tokens (empty for missing text).

        Arrays, not lists of Python ints: a 100,000-row table of long texts stays small.
        """
        per_col = []
        for col in self.columns:
            # A huge cell is cut before tokenising: a token is rarely under one character.
            texts = [t[: self.max_length * 16] for t in render_cells(df, col, self.rendered)]
            enc = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)
            per_col.append([np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"]])
        return [list(cols) for cols in zip(*per_col)]

    def raw_texts(self, df: pd.DataFrame) -> list[list[str]]:
        """Per row, per text column: the string :meth:`transform` tokenises (for text augmentation)."""
        per_col = [[t[: self.max_length * 16] for t in render_cells(df, col, self.rendered)] for col in self.columns]
        return [list(cols) for cols in zip(*per_col)]

    def tokenize_one(self, text: str) -> np.ndarray:
        """One column's string as :meth:`transform` would tokenise it."""
        ids = self.tokenizer(text, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]
        return np.asarray(ids, dtype=np.int32)

    def needed_length(self, cols: list) -> int:
        """Tokens :meth:`join` needs to keep all of a row's text (special tokens included)."""
        return len(self._prefix) + len(self._sep) * max(1, len(cols)) + sum(len(c) for c in cols)

    def choose_length(self, df: pd.DataFrame, seed: int = 0) -> str:
        """Set ``max_length`` from the training rows (the current value is the cap); say what was chosen.

        The 95th percentile of :meth:`needed_length` over the rows that have any text (a seeded
        sample of at most 5000 rows), rounded up to a multiple of 8 (``data/input_sizes.py``).
        """
        from .input_sizes import TEXT_LENGTH_PERCENTILE, TEXT_SAMPLE, choose_text_length, seeded_sample

        cap = self.max_length
        rows = df.iloc[seeded_sample(list(range(len(df))), seed, TEXT_SAMPLE)]
        lengths = [self.needed_length(cols) for cols in self.transform(rows) if any(len(c) for c in cols)]
        self.max_length = choose_text_length(lengths, cap)
        return (f"text length {self.max_length} tokens per row, from the training rows ({TEXT_LENGTH_PERCENTILE:g}th "
                f"percentile of {len(lengths)} rows: "
                f"{np.percentile(lengths, TEXT_LENGTH_PERCENTILE) if lengths else 0:.0f}; cap data.text_max_length={cap})")

    def join(self, cols: list) -> list[int]:
        """One sequence for the encoder; columns shorter than their share give room to others."""
        return join_columns(cols, self._prefix, self._sep, self.max_length)

    def state(self) -> dict:
        return {"columns": self.columns, "max_length": self.max_length, "rendered": self.rendered}


class ImageProcessor:
    """Resolve image cells to paths and hold the encoder's preprocessing config."""

    def __init__(self, columns: list[str], size: int, mean: list[float], std: list[float],
                 interpolation: str = "bicubic", crop_pct: float = 1.0, separator: str = ";",
                 allow_missing_files: bool = False):
        self.columns = list(columns)
        self.size = int(size)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.interpolation = interpolation
        self.crop_pct = float(crop_pct)
        self.separator = separator
        self.allow_missing_files = bool(allow_missing_files)

    def transform(self, df: pd.DataFrame, base_dir: Optional[str]) -> list[list[Optional[str]]]:
        """Per row, per image column: an existing file path, or None for an empty cell."""
        out: list[list[Optional[str]]] = []
        cols = [df[c].tolist() for c in self.columns]
        for i, cells in enumerate(zip(*cols)):
            row = []
            for col, cell in zip(self.columns, cells):
                path = resolve_image_path(cell, base_dir, self.separator)
                if path is not None and not os.path.isfile(path):
                    if self.allow_missing_files and not os.path.isdir(path):
                        path = None  # declared as possibly absent: a missing image
                        row.append(path)
                        continue
                    what = "is a directory" if os.path.isdir(path) else "does not exist"
                    raise DataError(
                        f"Image in row {show(df.index[i])}, column '{col}': '{path}' {what}. "
                        f"Fix the path (relative paths resolve against {base_dir or os.getcwd()!r}) "
                        f"or leave the cell empty to mark the image as missing (or set "
                        f"data.allow_missing_images=true to treat absent files as missing images)."
                    )
                row.append(path)
            out.append(row)
        return out

    def choose_size(self, df: pd.DataFrame, base_dir: Optional[str], seed: int = 0) -> str:
        """Set ``size`` from the training images (the current value is the encoder's native size).

        The median short side of a seeded sample of at most 200 images, read from their headers,
        rounded down to a multiple of 32, between 64 and the native size (``data/input_sizes.py``).
        Below the native size the short side is resized to ``size`` itself (``crop_pct`` 1, as
        with ``data.image_size``); at the native size the encoder's own crop is kept.
        """
        from .input_sizes import IMAGE_SAMPLE, choose_image_size, image_short_sides, seeded_sample

        native = self.size
        rows = seeded_sample(list(range(len(df))), seed, max(1, IMAGE_SAMPLE // max(1, len(self.columns))))
        paths = seeded_sample([p for row in self.transform(df.iloc[rows], base_dir) for p in row], seed, IMAGE_SAMPLE)
        sides = image_short_sides(paths)
        size = choose_image_size(sides, native)
        if size != native:
            self.size, self.crop_pct = size, 1.0
        median = f"median short side {np.median(sides):.0f} px of {len(sides)} sampled" if sides else "no image read"
        return f"image size {self.size} px, from the training images ({median}; the encoder's native size {native})"

    def build_resize_crop(self):
        """PIL image -> uint8 tensor (3, size, size): resize the short side, centre crop.

        The part of the eval transform worth caching: :class:`~mmtricks.data.image_cache.ImageCache`
        keeps its output, and training augmentation works on it.
        """
        from torchvision import transforms as T

        interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
                  "nearest": T.InterpolationMode.NEAREST}.get(self.interpolation, T.InterpolationMode.BICUBIC)
        resize = int(round(self.size / self.crop_pct)) if self.crop_pct > 0 else self.size
        return T.Compose([T.Resize(resize, interpolation=interp), T.CenterCrop(self.size), T.PILToTensor()])

    def build_normalise(self):
        """uint8 tensor (3, H, W) -> float32 (3, H, W): ``ToTensor``'s scaling to [0, 1], then mean/std."""
        import torch
        from torchvision import transforms as T

        return T.Compose([T.ConvertImageDtype(torch.float32), T.Normalize(self.mean, self.std)])

    def build_transform(self):
        """The whole eval transform, PIL image -> float32 (3, size, size): resize, crop, normalise."""
        from torchvision import transforms as T

        return T.Compose([self.build_resize_crop(), self.build_normalise()])

    def state(self) -> dict:
        return {"columns": self.columns, "size": self.size, "mean": self.mean, "std": self.std,
                "interpolation": self.interpolation, "crop_pct": self.crop_pct, "separator": self.separator,
                "allow_missing_files": self.allow_missing_files}


class LabelProcessor:
    """Classes <-> indices for classification; standardisation for regression."""

    def __init__(self, problem_type: str, classes: Optional[list] = None,
                 mean: float = 0.0, std: float = 1.0):
        self.problem_type = problem_type
        self.classes = list(classes or [])
        self.mean = float(mean)
        self.std = float(std)

    def fit(self, y: pd.Series) -> "LabelProcessor":
        if self.problem_type == "regression":
            arr = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)
            self.mean = float(np.nanmean(arr))
            std = float(np.nanstd(arr))
            self.std = std if std > 1e-12 else 1.0
        return self

    def targets(self, y: pd.Series, column: str) -> np.ndarray:
        """Labels in the metric's units: class indices, or float64 values in the label's scale."""
        if self.problem_type == "regression":
            return self._numbers(y, column)
        return self.transform(y, column)

    def transform(self, y: pd.Series, column: str) -> np.ndarray:
        if self.problem_type == "regression":
            return ((self._numbers(y, column) - self.mean) / self.std).astype(np.float32)
        return self._indices(y, column)

    def _numbers(self, y: pd.Series, column: str) -> np.ndarray:
        arr = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(arr).all():
            bad = ~np.isfinite(arr)
            rows = ", ".join(f"{show(r)} ({show(v)})" for r, v in zip(y.index[bad][:5], y[bad].iloc[:5]))
            more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
            raise SchemaError(f"Label column '{column}' has {int(bad.sum())} missing or non-numeric value(s), "
                              f"in rows {rows}{more}; fix or drop those rows.")
        return arr

    def _indices(self, y: pd.Series, column: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        keys = [c.item() if hasattr(c, "item") else c for c in y.tolist()]
        unknown = sorted({str(k) for k in keys if k not in index})
        if unknown:
            raise SchemaError(
                f"Label column '{column}' has values not seen in training: {show_list(unknown, 10)}. "
                f"Known classes: {show_list(self.classes, 20)}."
            )
        return np.asarray([index[k] for k in keys], dtype=np.int64)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Standardised regression outputs back to the label's scale."""
        return values * self.std + self.mean

    def state(self) -> dict:
        return {"problem_type": self.problem_type, "classes": self.classes, "mean": self.mean, "std": self.std}

"""Predict from an export (``MultimodalPredictor.export`` / ``mmtricks export``) without torch.

Needs onnxruntime, numpy and pandas; PIL for image columns, ``tokenizers`` for text columns,
``lightgbm`` only when the export holds a LightGBM member. It imports neither torch nor any
mmtricks module that does (only :mod:`mmtricks.errors`)::

    from mmtricks.serving import load_export

    model = load_export("export_dir")               # threads=1 pins ONNX Runtime and LightGBM
    proba = model.predict_proba(df)                 # DataFrame, one column per class
    labels = model.predict(df)                      # Series (classes, or values for regression)
    out = model.predict_outputs(df)                 # ndarray in the metric's units

``df`` is a DataFrame (or a CSV/Parquet path) with the training feature columns; relative
image paths resolve against ``base_dir`` (a table file's folder by default). Every step is
the predictor's own, reimplemented in numpy: numbers standardised and mean-filled with a
missing flag, categories indexed (0 = unknown), text columns tokenised separately and joined
as ``[CLS] col1 [SEP] col2 [SEP]`` within the saved length (the budget shared as
``TextProcessor.join`` shares it), images resized (short side, bicubic by default) and
centre cropped with PIL and normalised; rows go to ONNX Runtime in the predictor's
evaluation batch size; members are blended with the ensemble weights. The served graph
computes in 32-bit: its probabilities match ``predictor.predict_proba`` under
``env.precision=32-true`` to about 1e-6 (tests allow 1e-4); a predictor under bf16 autocast
(``auto`` on CPUs with native bf16, and on GPUs) differs from it by bf16's rounding (about 1e-2).
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Optional, Union

import numpy as np
import pandas as pd

from .data.images import load_image
from .data.io import read_table
from .data.processors import _cell_text as cell_text
from .data.processors import as_numbers, join_columns, render_cells
from .errors import DataError, ModelLoadError, SchemaError
from .schema.infer import resolve_image_path

EXPORT_FORMAT = "mmtricks-export"
READABLE_VERSIONS = (1,)
__all__ = ["load_export", "ExportedModel"]


def load_export(path: Union[str, os.PathLike], threads: Optional[int] = None) -> "ExportedModel":
    """Open an export folder. ``threads``: ONNX Runtime intra-op (and LightGBM) threads; None = their default."""
    return ExportedModel(os.fspath(path), threads)


def _read_json(folder: str, name: str):
    file = os.path.join(folder, name)
    if not os.path.isfile(file):
        raise ModelLoadError(f"'{folder}' is not a complete mmtricks export: '{name}' is missing.")
    with open(file, encoding="utf-8") as f:
        return json.load(f)


class ExportedModel:
    """A loaded export: ``predict_outputs``, ``predict_proba``, ``predict`` on tables."""

    def __init__(self, path: str, threads: Optional[int] = None):
        if not os.path.isdir(path):
            raise ModelLoadError(f"Export folder '{path}' does not exist.")
        meta = _read_json(path, "export.json")
        if meta.get("format") != EXPORT_FORMAT or meta.get("format_version") not in READABLE_VERSIONS:
            raise ModelLoadError(f"'{path}' is not an mmtricks export this version reads "
                                 f"(format {meta.get('format')!r}, version {meta.get('format_version')!r}).")
        self.path, self.threads = path, threads
        self.label, self.problem_type = meta["label"], meta["problem_type"]
        self.classes = list(meta["classes"])
        self.columns = dict(meta["columns"])
        self.members = []
        members_dir = os.path.join(path, "members")
        folders = set(os.listdir(members_dir)) if os.path.isdir(members_dir) else set()
        for item in meta["members"]:
            if item["folder"] not in folders:  # only folders that exist: no path from the JSON is followed
                raise ModelLoadError(f"'{path}' lists member folder {item['folder']!r}, which it does not hold.")
            sub = os.path.join(path, "members", item["folder"])
            kind = item["kind"]
            if kind == "network":
                model = _Network(sub, self.problem_type, threads)
            elif kind == "linear":
                model = _Linear(sub, self.problem_type, len(self.classes))
            elif kind == "lightgbm":
                model = _LightGBM(sub, self.problem_type, threads)
            else:
                raise ModelLoadError(f"'{path}' holds a member of unknown kind {kind!r}.")
            self.members.append((item["name"], float(item["weight"]), model))

    def _features(self, data, base_dir):
        df, base = read_table(data, base_dir)
        if len(df.columns) != len(set(map(str, df.columns))):
            raise SchemaError("The table has duplicate column names: rename them so each column is unique.")
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise SchemaError(f"Columns used in training are missing from this table: {missing}. "
                              f"Add them (empty values are allowed) and try again.")
        if df.empty:
            raise SchemaError("The table has no rows.")
        return df, df[list(self.columns)], base

    def _outputs(self, data, base_dir):
        df, features, base = self._features(data, base_dir)
        total = None
        for _, weight, model in self.members:
            if weight:
                out = weight * np.asarray(model.outputs(features, base), dtype=np.float64)
                total = out if total is None else total + out
        return total, df

    def predict_outputs(self, data, base_dir: Optional[str] = None) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` in ``classes`` order, or regression values ``(n,)``."""
        return self._outputs(data, base_dir)[0]

    def predict_proba(self, data, base_dir: Optional[str] = None) -> pd.DataFrame:
        """Class probabilities, one column per class (classification only)."""
        if self.problem_type == "regression":
            raise SchemaError("predict_proba is for classification; this model does regression. Use predict().")
        out, df = self._outputs(data, base_dir)
        return pd.DataFrame(out, columns=self.classes, index=df.index)

    def predict(self, data, base_dir: Optional[str] = None) -> pd.Series:
        """Predicted labels (classification) or values in the label's scale (regression)."""
        out, df = self._outputs(data, base_dir)
        if self.problem_type != "regression":
            out = pd.Series(np.asarray(self.classes, dtype=object)[out.argmax(1)]).infer_objects().to_numpy()
        return pd.Series(out, index=df.index, name=self.label)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n} ({w:.2f})" for n, w, _ in self.members)
        return f"ExportedModel({self.path!r}, {self.problem_type}, members: {kinds})"


# --------------------------------------------------------------------------- shared processors
def _numbers(state: dict, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Standardised float32 values (missing -> 0, the mean) and the bool missing mask."""
    cols = state["columns"]
    values = np.zeros((len(df), len(cols)), dtype=np.float32)
    missing = np.zeros((len(df), len(cols)), dtype=bool)
    for j, col in enumerate(cols):
        arr = as_numbers(df, col)
        miss = np.isnan(arr)
        scaled = (arr - state["mean"][j]) / state["std"][j]
        scaled[miss] = 0.0
        values[:, j] = np.clip(scaled, -1e4, 1e4)
        missing[:, j] = miss
    return values, missing


def _as_string(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _categories(state: dict, df: pd.DataFrame) -> np.ndarray:
    """int64 level indices, 0 for missing or unseen."""
    out = np.zeros((len(df), len(state["columns"])), dtype=np.int64)
    for j, col in enumerate(state["columns"]):
        index = {level: i + 1 for i, level in enumerate(state["vocab"][j])}
        out[:, j] = df[col].map(lambda v: index.get(_as_string(v), 0)).to_numpy(dtype=np.int64)
    return out


# --------------------------------------------------------------------------- networks
class _Text:
    """Tokenise per column (no special tokens, cut at max_length), join as TextProcessor.join does."""

    def __init__(self, state: dict, tokenizer_file: str):
        from tokenizers import Tokenizer

        self.columns, self.max_length = state["columns"], int(state["max_length"])
        self.rendered = state.get("rendered") or {}
        self.prefix, self.sep, self.pad_id = list(state["prefix"]), list(state["sep"]), int(state["pad_id"])
        self.left = state.get("truncation_side", "right") == "left"
        self.tokenizer = Tokenizer.from_file(tokenizer_file)
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def rows(self, df: pd.DataFrame) -> list[list[int]]:
        per_col = []
        for col in self.columns:
            texts = [t[: self.max_length * 16] for t in render_cells(df, col, self.rendered)]
            encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
            n = self.max_length
            per_col.append([e.ids[len(e.ids) - n:] if self.left and len(e.ids) > n else e.ids[:n] for e in encoded])
        return [list(cols) for cols in zip(*per_col)]

    def join(self, cols: list) -> list[int]:
        return join_columns(cols, self.prefix, self.sep, self.max_length)


_RESAMPLE = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling values


class _Images:
    """Resize the short side, centre crop, scale to [0, 1] and normalise (torchvision's eval transform)."""

    def __init__(self, state: dict):
        self.columns, self.size, self.separator = state["columns"], int(state["size"]), state["separator"]
        self.crop_pct, self.allow_missing = float(state["crop_pct"]), bool(state["allow_missing_files"])
        self.resample = _RESAMPLE.get(state["interpolation"], 3)
        self.mean = np.asarray(state["mean"], dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(state["std"], dtype=np.float32).reshape(3, 1, 1)
        self.resize = int(round(self.size / self.crop_pct)) if self.crop_pct > 0 else self.size

    def paths(self, df: pd.DataFrame, base_dir: Optional[str]) -> list[list[Optional[str]]]:
        out = []
        for i, cells in enumerate(zip(*[df[c].tolist() for c in self.columns])):
            row = []
            for col, cell in zip(self.columns, cells):
                path = resolve_image_path(cell, base_dir, self.separator)
                if path is not None and not os.path.isfile(path):
                    if self.allow_missing and not os.path.isdir(path):
                        path = None
                    else:
                        what = "is a directory" if os.path.isdir(path) else "does not exist"
                        raise DataError(f"Image in row {df.index[i]!r}, column '{col}': '{path}' {what}. Fix the "
                                        f"path (relative paths resolve against {base_dir or os.getcwd()!r}) or "
                                        f"leave the cell empty to mark the image as missing.")
                row.append(path)
            out.append(row)
        return out

    def read(self, path: str) -> np.ndarray:
        from PIL import Image

        img = load_image(path)
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.resize, int(self.resize * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), Image.Resampling(self.resample))
        s = self.size
        if s > new_w or s > new_h:  # padded with zeros, then cropped (as torchvision's CenterCrop)
            pw, ph = max(0, s - new_w), max(0, s - new_h)
            padded = Image.new("RGB", (new_w + pw, new_h + ph), (0, 0, 0))
            padded.paste(img, (pw // 2, ph // 2))
            img, new_w, new_h = padded, new_w + pw, new_h + ph
        top, left = int(round((new_h - s) / 2.0)), int(round((new_w - s) / 2.0))
        img = img.crop((left, top, left + s, top + s))
        arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return (arr - self.mean) / self.std


def _session(file: str, threads: Optional[int]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])


class _Network:
    def __init__(self, folder: str, problem_type: str, threads: Optional[int]):
        self.state = _read_json(folder, "preprocess.json")
        self.problem_type = problem_type
        self.session = _session(os.path.join(folder, "model.onnx"), threads)
        self.inputs = list(self.state["inputs"])
        self.batch_size = int(self.state["batch_size"])
        self.text = _Text(self.state["text"], os.path.join(folder, "tokenizer.json")) if self.state["text"] else None
        self.images = _Images(self.state["image"]) if self.state["image"] else None
        self.label = self.state["label"]

    def outputs(self, df: pd.DataFrame, base_dir: Optional[str]) -> np.ndarray:
        """Probabilities (float32, as the predictor's softmax) or regression values in the label's scale."""
        num, num_missing = _numbers(self.state["numerical"], df)
        cat = _categories(self.state["categorical"], df)
        text = self.text.rows(df) if self.text is not None else None
        paths = self.images.paths(df, base_dir) if self.images is not None else None
        outs = []
        for begin in range(0, len(df), self.batch_size):
            rows = range(begin, min(begin + self.batch_size, len(df)))
            feed = {"num": num[rows.start:rows.stop], "num_missing": num_missing[rows.start:rows.stop],
                    "cat": cat[rows.start:rows.stop]}
            if text is not None:
                joined = [self.text.join(text[i]) for i in rows]
                longest = max(1, max(len(j) for j in joined))
                ids = np.full((len(rows), longest), self.text.pad_id, dtype=np.int64)
                mask = np.zeros((len(rows), longest), dtype=np.int64)
                for r, j in enumerate(joined):
                    ids[r, :len(j)] = j
                    mask[r, :len(j)] = 1
                feed["text_ids"], feed["text_mask"] = ids, mask
                feed["text_missing"] = np.array([not any(len(c) for c in text[i]) for i in rows], dtype=bool)
            if paths is not None:
                s, n_img = self.images.size, len(self.images.columns)
                image = np.zeros((len(rows), n_img, 3, s, s), dtype=np.float32)
                missing = np.zeros((len(rows), n_img), dtype=bool)
                for r, i in enumerate(rows):
                    for k, path in enumerate(paths[i]):
                        if path is None:
                            missing[r, k] = True
                        else:
                            image[r, k] = self.images.read(path)
                feed["image"], feed["image_missing"] = image, missing
            logits = self.session.run(None, {name: feed[name[3:]] for name in self.inputs})[0]
            if self.problem_type == "regression":
                outs.append(logits[:, 0].astype(np.float32))
            else:
                z = logits.astype(np.float32)
                e = np.exp(z - z.max(axis=1, keepdims=True))
                outs.append(e / e.sum(axis=1, keepdims=True))
        out = np.concatenate(outs)
        if self.problem_type == "regression":
            out = out.astype(np.float64) * self.label["std"] + self.label["mean"]
        return out


# --------------------------------------------------------------------------- classic members
class _TableFeatures:
    """TableFeatures of ensemble/classic.py in numpy: TF-IDF (word 1-2-grams), categories, numbers."""

    def __init__(self, state: dict):
        self.state = state
        self.text_columns = state["text_columns"]
        self.vocab = [dict(v) for v in state["vocabularies"]]
        self.idf = [np.asarray(v, dtype=np.float64) for v in state["idf"]]
        self.settings = state["tfidf"]
        for s in self.settings:
            if (tuple(s["ngram_range"]) != (1, 2) or s["analyzer"] != "word" or s["norm"] != "l2" or not s["use_idf"]
                    or s["strip_accents"] is not None or s["binary"]):
                raise ModelLoadError(f"This export's TF-IDF settings {s} are not the ones serving implements.")
        self.patterns = [re.compile(s["token_pattern"]) for s in self.settings]

    def tfidf(self, j: int, texts: list[str]):
        """Row indices, column indices and values (float64) of text column j's TF-IDF block."""
        vocab, idf, s, pattern = self.vocab[j], self.idf[j], self.settings[j], self.patterns[j]
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            tokens = pattern.findall(text.lower() if s["lowercase"] else text)
            terms = list(tokens) + [f"{tokens[i]} {tokens[i + 1]}" for i in range(len(tokens) - 1)]
            counts: dict[int, int] = {}
            for term in terms:
                k = vocab.get(term)
                if k is not None:
                    counts[k] = counts.get(k, 0) + 1
            if not counts:
                continue
            keys = sorted(counts)
            tf = np.asarray([counts[k] for k in keys], dtype=np.float64)
            if s["sublinear_tf"]:
                tf = np.log(tf) + 1.0
            v = tf * idf[keys]
            norm = math.sqrt(float(np.dot(v, v)))
            if norm > 0:
                v = v / norm
            rows += [r] * len(keys)
            cols += keys
            vals += v.tolist()
        return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=np.float64)

    def text_blocks(self, df: pd.DataFrame):
        for j, col in enumerate(self.text_columns):
            yield len(self.vocab[j]), self.tfidf(j, df[col].map(cell_text).tolist())

    def linear(self, df: pd.DataFrame):
        """(rows, cols, vals, width) of [standardised numbers | missing flags | one-hot categories | tf-idf]."""
        values, missing = _numbers(self.state["num"], df)
        n = len(df)
        blocks = [values.astype(np.float64), missing.astype(np.float64)]
        cat_state = self.state["cat"]
        rows, cols, vals, width = [], [], [], 0
        for block in blocks:
            r, c = np.nonzero(block)
            rows.append(r), cols.append(c + width), vals.append(block[r, c])
            width += block.shape[1]
        if cat_state["columns"]:
            codes = _categories(cat_state, df)
            cards = [len(v) + 1 for v in cat_state["vocab"]]
            offsets = np.cumsum([0] + cards[:-1])
            rows.append(np.repeat(np.arange(n), codes.shape[1]))
            cols.append((codes + offsets).ravel() + width)
            vals.append(np.ones(codes.size))
            width += sum(cards)
        for size, (r, c, v) in self.text_blocks(df):
            rows.append(r), cols.append(c + width), vals.append(v)
            width += size
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), width

    def trees(self, df: pd.DataFrame):
        """scipy CSR ``[numbers (NaN = missing) | category indices (NaN = unknown) | tf-idf]``."""
        import scipy.sparse as sp

        n = len(df)
        nums = np.column_stack([as_numbers(df, c) for c in self.state["num"]["columns"]]) \
            if self.state["num"]["columns"] else np.empty((n, 0))
        cats = _categories(self.state["cat"], df).astype(np.float64) if self.state["cat"]["columns"] \
            else np.empty((n, 0))
        cats[cats == 0] = np.nan
        blocks = [sp.csr_matrix(np.hstack([nums, cats]))]
        for size, (r, c, v) in self.text_blocks(df):
            blocks.append(sp.csr_matrix((v, (r, c)), shape=(n, size)))
        return sp.hstack(blocks, format="csr")


def _full_proba(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(proba), n_classes))
    out[:, present.astype(int)] = proba
    return out


class _Linear:
    def __init__(self, folder: str, problem_type: str, n_classes: int):
        self.features = _TableFeatures(_read_json(folder, "features.json"))
        state = _read_json(folder, "linear.json")
        self.coef = np.asarray(state["coef"], dtype=np.float64)  # (k, n_features)
        self.intercept = np.asarray(state["intercept"], dtype=np.float64)
        self.classes = np.asarray(state["classes"], dtype=np.int64)
        self.regression, self.n_classes = bool(state["regression"]), n_classes

    def outputs(self, df: pd.DataFrame, base_dir: Optional[str] = None) -> np.ndarray:
        rows, cols, vals, width = self.features.linear(df)
        if width != self.coef.shape[1]:
            raise ModelLoadError(f"Linear member: {width} features, but {self.coef.shape[1]} coefficients.")
        scores = np.zeros((len(df), self.coef.shape[0]))
        for k in range(self.coef.shape[0]):
            scores[:, k] = np.bincount(rows, weights=vals * self.coef[k, cols], minlength=len(df))
        scores += self.intercept
        if self.regression:
            return scores[:, 0]
        if scores.shape[1] == 1:  # binary logistic regression: sigmoid of the one score
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            proba = np.column_stack([1.0 - p, p])
        else:
            z = scores - scores.max(axis=1, keepdims=True)
            e = np.exp(z)
            proba = e / e.sum(axis=1, keepdims=True)
        return _full_proba(proba, self.classes, self.n_classes)


class _LightGBM:
    def __init__(self, folder: str, problem_type: str, threads: Optional[int]):
        import lightgbm as lgb

        self.features = _TableFeatures(_read_json(folder, "features.json"))
        state = _read_json(folder, "lightgbm.json")
        with open(os.path.join(folder, "lightgbm.txt"), encoding="utf-8") as f:
            self.booster = lgb.Booster(model_str=f.read())
        self.best_iteration = int(state["best_iteration"]) or None
        self.problem_type, self.threads = problem_type, threads

    def outputs(self, df: pd.DataFrame, base_dir: Optional[str] = None) -> np.ndarray:
        kwargs = {"num_threads": int(self.threads)} if self.threads else {}
        out = self.booster.predict(self.features.trees(df), num_iteration=self.best_iteration, **kwargs)
        if self.problem_type == "regression":
            return np.asarray(out, dtype=np.float64)
        if self.problem_type == "binary":
            return np.column_stack([1.0 - out, out])
        return np.asarray(out, dtype=np.float64)

"""Classic pool members: gradient-boosted trees and a linear model on tabular columns and text n-grams.

They train in seconds, and give the ensemble a floor set by the strongest simple peer
(short-text tables are where a fine-tuned network alone loses to trees). Both read the
same features (:class:`TableFeatures`): TF-IDF of word 1-2-grams per text column, category
indices from the project's :class:`~mmtricks.data.processors.CategoricalProcessor`, and the
numbers (raw with NaN for trees; standardised with a missing flag for the linear model).
Image columns are used only by ``lightgbm_embed``, which adds frozen text and image embeddings
(:mod:`mmtricks.ensemble.embeddings`) to the trees' features. Everything saves without pickle: the vectorisers' vocabulary and
idf, the processors' JSON state, LightGBM's own text model format, the linear coefficients.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import pandas as pd

from ..data.processors import CategoricalProcessor, NumericalProcessor, _cell_text
from ..errors import SchemaError


class TableFeatures:
    """Sparse features of a table's text, categorical and numerical columns (images ignored)."""

    def __init__(self, schema, max_text_features: int = 20_000):
        kinds = schema.column_kinds
        self.text_columns = [c for c, k in kinds.items() if k == "text"]
        self.max_text_features = int(max_text_features)
        self.cat = CategoricalProcessor([c for c, k in kinds.items() if k == "categorical"])
        self.num = NumericalProcessor([c for c, k in kinds.items() if k == "numerical"])
        self.vectorizers: list = []

    @staticmethod
    def _texts(df: pd.DataFrame, col: str) -> list[str]:
        return df[col].map(_cell_text).tolist()

    def _vectorizer(self, vocabulary=None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2 if vocabulary is None else 1,
                               max_features=self.max_text_features, vocabulary=vocabulary)

    def fit(self, df: pd.DataFrame) -> "TableFeatures":
        if not (self.text_columns or self.cat.columns or self.num.columns):
            raise SchemaError("Classic pool members need a text, categorical or numerical column; this table "
                              "has only images.")
        self.cat.fit(df)
        self.num.fit(df)
        self.vectorizers = []
        for col in self.text_columns:
            vec = self._vectorizer()
            try:
                vec.fit(self._texts(df, col))
            except ValueError:  # no term appears twice: keep every term
                vec = self._vectorizer()
                vec.min_df = 1
                vec.fit(self._texts(df, col) + [""])
            self.vectorizers.append(vec)
        return self

    @property
    def n_text(self) -> int:
        return sum(len(v.vocabulary_) for v in self.vectorizers)

    def trees(self, df: pd.DataFrame):
        """CSR matrix ``[numbers (NaN = missing) | category indices | tf-idf]`` and the category positions."""
        import scipy.sparse as sp

        nums = np.column_stack([NumericalProcessor._as_numbers(df, c) for c in self.num.columns]) \
            if self.num.columns else np.empty((len(df), 0))
        cats = self.cat.transform(df).astype(np.float64) if self.cat.columns else np.empty((len(df), 0))
        cats[cats == 0] = np.nan  # index 0 is the unknown/missing bucket
        dense = sp.csr_matrix(np.hstack([nums, cats]))
        blocks = [dense] + [v.transform(self._texts(df, c)) for v, c in zip(self.vectorizers, self.text_columns)]
        categorical = list(range(nums.shape[1], nums.shape[1] + cats.shape[1]))
        return sp.hstack(blocks, format="csr"), categorical

    def linear(self, df: pd.DataFrame):
        """CSR matrix ``[standardised numbers | missing flags | one-hot categories | tf-idf]``."""
        import scipy.sparse as sp

        values, missing = self.num.transform(df)
        blocks = [sp.csr_matrix(values), sp.csr_matrix(missing.astype(np.float64))]
        if self.cat.columns:
            codes = self.cat.transform(df)
            offsets = np.cumsum([0] + self.cat.cardinalities[:-1])
            rows = np.repeat(np.arange(len(df)), codes.shape[1])
            cols = (codes + offsets).ravel()
            blocks.append(sp.csr_matrix((np.ones(len(cols)), (rows, cols)),
                                        shape=(len(df), sum(self.cat.cardinalities))))
        blocks += [v.transform(self._texts(df, c)) for v, c in zip(self.vectorizers, self.text_columns)]
        return sp.hstack(blocks, format="csr")

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"text_columns": self.text_columns, "max_text_features": self.max_text_features,
                "cat": self.cat.state(), "num": self.num.state(),
                "vocabularies": [{t: int(i) for t, i in v.vocabulary_.items()} for v in self.vectorizers]}
        arrays = {f"idf.{j}": np.asarray(v.idf_, dtype=np.float64) for j, v in enumerate(self.vectorizers)}
        return meta, arrays

    @classmethod
    def from_state(cls, schema, meta: dict, arrays: dict[str, np.ndarray]) -> "TableFeatures":
        feats = cls(schema, meta["max_text_features"])
        feats.text_columns = meta["text_columns"]
        feats.cat = CategoricalProcessor(meta["cat"]["columns"], meta["cat"]["vocab"], meta["cat"]["max_levels"])
        feats.num = NumericalProcessor(meta["num"]["columns"], meta["num"]["mean"], meta["num"]["std"])
        feats.vectorizers = []
        for j, vocab in enumerate(meta["vocabularies"]):
            vec = feats._vectorizer(vocabulary=vocab)
            vec.idf_ = arrays[f"idf.{j}"]
            feats.vectorizers.append(vec)
        return feats


def _full_proba(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over every class, from a model that saw only ``present`` classes."""
    out = np.zeros((len(proba), n_classes))
    out[:, present.astype(int)] = proba
    return out


class LinearMember:
    """TF-IDF + one-hot + numbers into LogisticRegression(C=4) or Ridge(alpha=3)."""

    kind = "linear"

    def __init__(self, schema, seed: int = 0):
        self.schema, self.seed = schema, seed
        self.regression = schema.problem_type == "regression"

    def fit(self, train: pd.DataFrame, y: np.ndarray, val: pd.DataFrame = None, y_val: np.ndarray = None,
            time_budget: Optional[float] = None, sample_weight: Optional[np.ndarray] = None,
            val_weight: Optional[np.ndarray] = None) -> "LinearMember":
        from sklearn.linear_model import LogisticRegression, Ridge

        self.features_ = TableFeatures(self.schema).fit(train)
        x = self.features_.linear(train)
        self.model_ = Ridge(alpha=3.0) if self.regression else \
            LogisticRegression(C=4.0, max_iter=2000, random_state=self.seed)
        self.model_.fit(x, y, sample_weight=sample_weight)
        return self

    def outputs(self, df: pd.DataFrame, base_dir: Optional[str] = None) -> np.ndarray:
        x = self.features_.linear(df)
        if self.regression:
            return self.model_.predict(x).astype(np.float64)
        return _full_proba(self.model_.predict_proba(x), self.model_.classes_, len(self.schema.classes))

    def state(self) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
        meta, arrays = self.features_.state()
        arrays = {**arrays, "coef": np.asarray(self.model_.coef_, dtype=np.float64),
                  "intercept": np.atleast_1d(np.asarray(self.model_.intercept_, dtype=np.float64))}
        if not self.regression:
            arrays["classes"] = np.asarray(self.model_.classes_, dtype=np.int64)
        return {"features": meta, "seed": self.seed}, arrays, {}

    @classmethod
    def from_state(cls, schema, meta: dict, arrays: dict, files: dict, tokenizer=None) -> "LinearMember":
        from sklearn.linear_model import LogisticRegression, Ridge

        member = cls(schema, meta["seed"])
        member.features_ = TableFeatures.from_state(schema, meta["features"], arrays)
        member.model_ = Ridge(alpha=3.0) if member.regression else LogisticRegression(C=4.0)
        member.model_.coef_ = arrays["coef"]
        member.model_.intercept_ = arrays["intercept"] if not member.regression else float(arrays["intercept"][0])
        if not member.regression:
            member.model_.classes_ = arrays["classes"]
        return member


class LightGBMMember:
    """LightGBM on numbers, categories and text n-grams, early-stopped on the validation split."""

    kind = "lightgbm"
    MODEL_FILE = "lightgbm.txt"

    def __init__(self, schema, seed: int = 0, threads: int = 0, rounds: int = 2000, learning_rate: float = 0.05):
        self.schema, self.seed, self.threads = schema, seed, threads
        self.rounds, self.learning_rate = rounds, learning_rate
        self.regression = schema.problem_type == "regression"

    def _params(self) -> dict:
        n = len(self.schema.classes)
        objective = {"regression": "regression", "binary": "binary"}.get(self.schema.problem_type, "multiclass")
        params = {"objective": objective, "learning_rate": self.learning_rate, "num_leaves": 31,
                  "min_data_in_leaf": 10, "feature_fraction": 0.8, "lambda_l2": 1.0, "verbose": -1,
                  "seed": self.seed, "deterministic": True, "force_row_wise": True, "num_threads": self.threads}
        if objective == "multiclass":
            params["num_class"] = n
        return params

    def fit(self, train: pd.DataFrame, y: np.ndarray, val: Optional[pd.DataFrame], y_val: Optional[np.ndarray],
            time_budget: Optional[float] = None, sample_weight: Optional[np.ndarray] = None,
            val_weight: Optional[np.ndarray] = None, base_dir: Optional[str] = None,
            embeddings=None) -> "LightGBMMember":
        """Early-stopped on ``val``; with ``val=None``, exactly ``rounds`` rounds (a refit).

        ``base_dir``: where relative image paths resolve; ``embeddings``: the pool's shared
        :class:`~mmtricks.ensemble.embeddings.SharedEmbeddings` (members that read them)."""
        import lightgbm as lgb

        self.features_ = TableFeatures(self.schema, max_text_features=5000).fit(train)
        self._fit_extra(train, base_dir, embeddings)
        x, categorical = self._design(train, base_dir, None if embeddings is None else embeddings.train)
        data = lgb.Dataset(x, label=y, weight=sample_weight, categorical_feature=categorical, free_raw_data=False)
        start = time.time()

        def within_budget(env):
            if time_budget is not None and time.time() - start > time_budget:
                raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        valid, callbacks = [], [within_budget]
        if val is not None:
            xv, _ = self._design(val, base_dir, None if embeddings is None else embeddings.val)
            valid = [lgb.Dataset(xv, label=y_val, weight=val_weight, reference=data, categorical_feature=categorical)]
            callbacks.insert(0, lgb.early_stopping(50, verbose=False))
        self.booster_ = lgb.train(self._params(), data, num_boost_round=self.rounds, valid_sets=valid,
                                  callbacks=callbacks)
        return self

    def _fit_extra(self, train: pd.DataFrame, base_dir: Optional[str], embeddings) -> None:
        """Anything beyond the table features that fit needs (none here)."""

    def _design(self, df: pd.DataFrame, base_dir: Optional[str], embedded: Optional[np.ndarray] = None):
        """The trees' input matrix for ``df`` and the category columns' positions."""
        return self.features_.trees(df)

    @property
    def rounds_used(self) -> int:
        """Boosting rounds the fitted model uses (the early-stopped best, or all)."""
        return int(self.booster_.best_iteration or self.booster_.current_iteration())

    def outputs(self, df: pd.DataFrame, base_dir: Optional[str] = None,
                embedded: Optional[np.ndarray] = None) -> np.ndarray:
        """Probabilities or values; ``embedded``: ``df``'s frozen embeddings when already made."""
        x, _ = self._design(df, base_dir, embedded)
        out = self.booster_.predict(x, num_iteration=self.booster_.best_iteration or None)
        if self.regression:
            return np.asarray(out, dtype=np.float64)
        if self.schema.problem_type == "binary":
            return np.column_stack([1.0 - out, out])
        return np.asarray(out, dtype=np.float64)

    def state(self) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
        meta, arrays = self.features_.state()
        meta = {"features": meta, "seed": self.seed, "best_iteration": int(self.booster_.best_iteration or 0)}
        return meta, arrays, {self.MODEL_FILE: self.booster_.model_to_string()}

    @classmethod
    def from_state(cls, schema, meta: dict, arrays: dict, files: dict, tokenizer=None) -> "LightGBMMember":
        import lightgbm as lgb

        member = cls(schema, meta["seed"])
        member.features_ = TableFeatures.from_state(schema, meta["features"], arrays)
        member.booster_ = lgb.Booster(model_str=files[cls.MODEL_FILE])
        member.booster_.best_iteration = meta["best_iteration"]
        return member


class LightGBMEmbedMember(LightGBMMember):
    """LightGBM on the table features plus frozen text and image embeddings
    (:mod:`mmtricks.ensemble.embeddings`): the one member that reads the images."""

    kind = "lightgbm_embed"

    def _fit_extra(self, train: pd.DataFrame, base_dir: Optional[str], embeddings) -> None:
        if embeddings is None:
            raise ValueError("lightgbm_embed needs the pool's frozen embeddings (SharedEmbeddings).")
        self.embedder_ = embeddings.embedder
        self.shared_ = embeddings  # the training rows' embeddings, for a refit on train + validation (not saved)

    def _design(self, df: pd.DataFrame, base_dir: Optional[str], embedded: Optional[np.ndarray] = None):
        import scipy.sparse as sp

        x, categorical = self.features_.trees(df)
        if embedded is None:
            embedded = self.embedder_.transform(df, base_dir)
        return sp.hstack([x, sp.csr_matrix(embedded.astype(np.float64))], format="csr"), categorical

    @property
    def tokenizer(self):
        """The embedder's tokenizer: saved in the member's folder."""
        return self.embedder_.tokenizer

    def state(self) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
        meta, arrays, files = super().state()
        embed_meta, embed_arrays = self.embedder_.state()
        return {**meta, "embedder": embed_meta}, {**arrays, **embed_arrays}, files

    @classmethod
    def from_state(cls, schema, meta: dict, arrays: dict, files: dict, tokenizer=None) -> "LightGBMEmbedMember":
        from .embeddings import FrozenEmbedder

        member = super().from_state(schema, meta, arrays, files)
        member.embedder_ = FrozenEmbedder.from_state(schema, meta["embedder"], arrays, tokenizer)
        return member


CLASSIC_MEMBERS = {m.kind: m for m in (LinearMember, LightGBMMember, LightGBMEmbedMember)}

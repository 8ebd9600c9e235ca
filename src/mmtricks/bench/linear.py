"""The `linear` peer: a scikit-learn pipeline, fitted in process (images ignored).

Text columns: TF-IDF of word 1-2-grams (one vectoriser per column). Categorical columns:
one-hot (unknown levels ignored, missing is its own level). Numerical columns: median
imputation, then standardisation. Classification: LogisticRegression(C=4, max_iter=2000);
regression: Ridge(alpha=3). Numerical vs categorical follows mmtricks' own inference.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MISSING_LEVEL = "__missing__"


def _as_text(frame: "pd.DataFrame"):
    """One text column as strings, missing -> ''."""
    col = frame.iloc[:, 0]
    return col.astype(object).where(col.notna(), "").astype(str).to_numpy()


def _as_levels(frame: "pd.DataFrame"):
    """Categorical columns as strings, missing -> its own level."""
    import numpy as np

    out = frame.astype(object).where(frame.notna(), MISSING_LEVEL).astype(str)
    return out.to_numpy(dtype=object) if len(out.columns) else np.empty((len(frame), 0), dtype=object)


def _as_numbers(frame: "pd.DataFrame"):
    """Numerical columns as float64 (unparseable -> NaN)."""
    import pandas as pd

    return frame.apply(lambda c: pd.to_numeric(c, errors="coerce")).to_numpy(dtype="float64")


class LinearPeer:
    """The linear baseline peer.

    Args:
        label: Label column.
        problem_type: 'binary', 'multiclass' or 'regression'.
        text_columns: Free-text columns.
        tabular_columns: Numerical and categorical columns (kinds are inferred).
        seed: Random seed (solver ties).
    """

    def __init__(self, label: str, problem_type: str, text_columns: list[str], tabular_columns: list[str],
                 seed: int = 0):
        self.label = label
        self.problem_type = problem_type
        self.text_columns = list(text_columns)
        self.tabular_columns = list(tabular_columns)
        self.seed = seed

    def _kinds(self, train: "pd.DataFrame") -> tuple[list[str], list[str], list[str]]:
        """(text, categorical, numerical) columns that carry something in ``train``."""
        from ..schema.infer import infer_column_kind

        texts = [c for c in self.text_columns if train[c].notna().any()
                 and train[c].astype(object).dropna().astype(str).str.strip().ne("").any()]
        cats, nums = [], []
        for c in self.tabular_columns:
            kind = infer_column_kind(train[c])
            if kind == "numerical":
                nums.append(c)
            elif kind is not None:
                cats.append(c)  # text-looking or image-looking tabular columns count as categories
        return texts, cats, nums

    def _pipeline(self, texts: list[str], cats: list[str], nums: list[str]):
        from sklearn.compose import ColumnTransformer
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

        parts: list[Any] = []
        for i, c in enumerate(texts):
            parts.append((f"text{i}", make_pipeline(FunctionTransformer(_as_text),
                                                    TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)), [c]))
        if cats:
            parts.append(("cat", make_pipeline(FunctionTransformer(_as_levels),
                                               OneHotEncoder(handle_unknown="ignore")), cats))
        if nums:
            parts.append(("num", make_pipeline(FunctionTransformer(_as_numbers), SimpleImputer(strategy="median"),
                                               StandardScaler()), nums))
        if self.problem_type == "regression":
            model = Ridge(alpha=3.0)
        else:
            model = LogisticRegression(C=4.0, max_iter=2000, random_state=self.seed)
        return make_pipeline(ColumnTransformer(parts, sparse_threshold=1.0), model)

    def fit(self, train: "pd.DataFrame") -> "LinearPeer":
        """Fit on ``train`` (rows with a missing label are dropped); returns self.

        Raises:
            SchemaError: No usable text or tabular column.
        """
        from ..errors import SchemaError

        train = train[train[self.label].notna()]
        texts, cats, nums = self._kinds(train)
        if not (texts or cats or nums):
            raise SchemaError("The linear peer needs a text or tabular column; this data set has none usable.")
        self.columns_ = texts + cats + nums
        self.pipeline_ = self._pipeline(texts, cats, nums)
        y = train[self.label]
        if self.problem_type == "regression":
            y = y.astype("float64")
        self.pipeline_.fit(train[self.columns_], y.to_numpy())
        return self

    @property
    def classes(self) -> list:
        """Class labels in output order (empty for regression)."""
        if self.problem_type == "regression":
            return []
        return list(self.pipeline_[-1].classes_)

    def outputs(self, data: "pd.DataFrame") -> Optional[Any]:
        """(n, n_classes) probabilities in :attr:`classes` order, or (n,) regression values."""
        x = data[self.columns_]
        if self.problem_type == "regression":
            return self.pipeline_.predict(x)
        return self.pipeline_.predict_proba(x)

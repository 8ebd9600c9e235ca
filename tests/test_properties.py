"""Property-based tests: schema inference and processors on random frames never crash.

Either a typed mmtricks error or a valid result: finite arrays of the right shapes.
"""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtricks.data.preprocessor import Preprocessor
from mmtricks.errors import MMTricksError
from mmtricks.schema import infer_schema, validate_frame

cells = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**6, 10**6),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(["a", "b", "c", "1", "2.5", "x y z w", "img.png", ""]),
)


def column(n):
    return st.one_of(
        st.lists(cells, min_size=n, max_size=n),
        st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n),
        st.lists(st.sampled_from(["red", "blue", None]), min_size=n, max_size=n),
        st.lists(st.text(alphabet="abc de", min_size=0, max_size=40), min_size=n, max_size=n),
    )


@st.composite
def frames(draw):
    n = draw(st.integers(1, 25))
    n_cols = draw(st.integers(1, 5))
    data = {f"c{j}": draw(column(n)) for j in range(n_cols)}
    data["y"] = draw(st.lists(st.one_of(st.sampled_from(["p", "q", "r"]), st.floats(-5, 5), st.none()),
                              min_size=n, max_size=n))
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from mmtricks.zoo import resolve_text_backbone

    return AutoTokenizer.from_pretrained(resolve_text_backbone("minilm-l6"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(df=frames())
def test_inference_and_processors_never_crash(df, tokenizer):
    df["y"] = df["y"].astype(object)
    try:
        schema = infer_schema(df, "y")
    except MMTricksError:
        return
    assert set(schema.column_kinds.values()) <= {"numerical", "categorical", "text", "image"}
    labelled = df[df["y"].notna()]
    if schema.problem_type == "regression":
        labelled = labelled[pd.to_numeric(labelled["y"], errors="coerce").notna()]
    if labelled.empty:
        return
    schema.column_kinds = {c: k for c, k in schema.column_kinds.items() if k != "image"}  # no files here
    if not schema.column_kinds:
        return
    try:
        pre = Preprocessor.fit(labelled, schema, tokenizer=tokenizer, text_max_length=16)
        enc = pre.encode(validate_frame(df, schema), None, with_labels=False)
    except MMTricksError:
        return
    n = len(df)
    assert enc.num.shape == (n, len(schema.columns("numerical"))) and np.isfinite(enc.num).all()
    assert enc.cat.shape == (n, len(schema.columns("categorical"))) and (enc.cat >= 0).all()
    assert (enc.cat < np.array(pre.cat.cardinalities or [1])).all()
    if enc.text_ids is not None:
        joined = [pre.text.join(row) for row in enc.text_ids]
        assert all(0 < len(ids) <= 16 for ids in joined)

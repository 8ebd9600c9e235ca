"""Export for serving: ONNX networks + JSON state, served by mmtricks.serving without torch.

Served outputs must match the predictor's in 32-bit (the fits pin ``env.precision=32-true``:
``auto`` is bf16 on CPUs with native bf16, the export is 32-bit): probabilities within ATOL
(observed: about 1e-6), regression values within RTOL of the label's scale.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from mmtricks import MultimodalPredictor  # noqa: E402
from mmtricks.errors import ConfigError, SchemaError  # noqa: E402

from conftest import make_table  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Column 'num_b'")  # with_holes' 'n/a', on purpose
ATOL = 1e-4  # on probabilities
RTOL = 1e-4  # on regression values, relative to the label's spread
ALL = ("numerical", "categorical", "text", "image")
FP32 = {"optim.max_epochs": 2, "env.precision": "32-true"}


def with_holes(df: pd.DataFrame) -> pd.DataFrame:
    """Missing and unseen cells of every kind, and a few long texts, in some rows."""
    df = df.copy()
    if "num_a" in df:
        df.loc[[1, 5], "num_a"] = np.nan
        df["num_b"] = df["num_b"].astype(object)
        df.loc[7, "num_b"] = "n/a"
    if "cat_a" in df:
        df.loc[[2, 6], "cat_a"] = None
        df.loc[8, "cat_a"] = "purple"  # unseen level
    if "txt" in df:
        df.loc[[3, 9], "txt"] = None
        df.loc[10, "txt"] = " ".join(["sunny rainy forest"] * 40)  # longer than the saved text length
    if "img" in df:
        df.loc[[4, 11], "img"] = ""
    return df


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A tiny image + text + tabular network, its export and its table."""
    folder = str(tmp_path_factory.mktemp("net"))
    df = make_table(folder, n=72, kinds=ALL)
    p = MultimodalPredictor(label="y", preset="tiny", overrides=FP32, verbosity=0).fit(df)
    out = p.export(os.path.join(folder, "export"))
    return p, out, with_holes(df), folder


def served(path):
    from mmtricks.serving import load_export

    return load_export(path, threads=1)


def test_export_layout(network):
    _, out, _, _ = network
    meta = json.load(open(os.path.join(out, "export.json")))
    assert meta["kind"] == "network" and meta["problem_type"] == "multiclass" and meta["classes"] == ["a", "b", "c"]
    assert [m["kind"] for m in meta["members"]] == ["network"]
    assert meta["members"][0]["check_max_abs_diff"] < 1e-3
    files = sorted(os.listdir(os.path.join(out, "members", "m0")))
    assert files == ["model.onnx", "preprocess.json", "tokenizer.json"]
    import onnx

    model = onnx.load(os.path.join(out, "members", "m0", "model.onnx"))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims["in_text_ids"] == ["batch", "seq"] and dims["in_image"][0] == "batch"


def test_network_served_matches_predictor(network):
    p, out, df, _ = network
    m = served(out)
    expected = p.predict_proba(df)
    got = m.predict_proba(df)
    assert list(got.columns) == list(expected.columns) and got.index.equals(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=ATOL, rtol=0)
    assert (m.predict(df) == p.predict(df)).all()
    # one row at a time (another padding of the text) gives the same
    one = pd.concat([m.predict_proba(df.iloc[[i]]) for i in (0, 3, 10)])
    np.testing.assert_allclose(one.to_numpy(), expected.iloc[[0, 3, 10]].to_numpy(), atol=ATOL, rtol=0)


def test_served_errors_name_the_problem(network):
    from mmtricks.errors import DataError

    _, out, df, _ = network
    m = served(out)
    with pytest.raises(SchemaError, match="txt"):
        m.predict(df.drop(columns=["txt"]))
    bad = df.copy()
    bad.loc[5, "img"] = "/nowhere/nope.png"
    with pytest.raises(DataError, match=r"row 5, column 'img'.*nope\.png.*does not exist"):
        m.predict(bad)


def test_unknown_export_format(network):
    p, _, _, folder = network
    with pytest.raises(ConfigError, match="onnx"):
        p.export(os.path.join(folder, "x"), format="tflite")


BLOCK_TORCH = r"""
import importlib.abc, json, sys
BLOCKED = ("torch", "torchvision", "transformers", "timm", "lightning_fabric")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
import pandas as pd
from mmtricks.serving import load_export
m = load_export(sys.argv[1], threads=1)
df = pd.read_pickle(sys.argv[2])
out = m.predict_outputs(df)
assert not [k for k in sys.modules if k.split(".")[0] in BLOCKED]
print(json.dumps({"out": out.tolist(), "pred": [str(v) for v in m.predict(df)]}))
"""


def test_serving_runs_with_torch_blocked(network, tmp_path):
    p, out, df, _ = network
    table = tmp_path / "table.pkl"
    df.to_pickle(table)
    run = subprocess.run([sys.executable, "-c", BLOCK_TORCH, out, str(table)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(result["out"]), p.predict_outputs(df), atol=ATOL, rtol=0)
    assert result["pred"] == [str(v) for v in p.predict(df)]


def test_cli_export(network, tmp_path):
    from mmtricks.cli import main

    p, _, df, _ = network
    saved = p.save(tmp_path / "model")
    assert main(["export", "--model", saved, "--out", str(tmp_path / "served")]) == 0
    np.testing.assert_allclose(served(tmp_path / "served").predict_outputs(df), p.predict_outputs(df), atol=ATOL,
                               rtol=0)


def _pool(folder, kinds, problem_type, n=96):
    df = make_table(folder, n=n, kinds=kinds, problem_type=problem_type)
    p = MultimodalPredictor(label="y", pool=["lightgbm", "linear", "tiny"], overrides=FP32,
                            verbosity=0).fit(df)
    return p, with_holes(df)


def _compare(p, df, out, problem_type, scale=1.0):
    m = served(out)
    got, expected = m.predict_outputs(df), p.predict_outputs(df)
    if problem_type == "regression":
        np.testing.assert_allclose(got, expected, atol=RTOL * scale, rtol=0)
    else:
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
        assert (m.predict(df) == p.predict(df)).all()
    return m


def test_ensemble_served_matches_predictor(tmp_path):
    p, df = _pool(str(tmp_path), ALL, "multiclass")
    m = _compare(p, df, p.export(tmp_path / "export"), "multiclass")
    assert [(n, w) for n, w, _ in m.members] == [(x.name, x.weight) for x in p.members_ if x.weight > 0]
    # every member kind, whatever the weights chose: each member served on its own, then blended
    for x in p.members_:
        x.weight = 1.0 / len(p.members_)
    m = _compare(p, df, p.export(tmp_path / "uniform"), "multiclass")
    assert sorted(n for n, _, _ in m.members) == ["lightgbm", "linear", "tiny"]
    features = df[list(p.schema_.column_kinds)]
    by_name = {x.name: x for x in p.members_}
    for name, _, member in m.members:
        np.testing.assert_allclose(member.outputs(features, None), by_name[name].outputs(features), atol=ATOL, rtol=0)


@pytest.mark.parametrize("problem_type", ["binary", "regression"])
def test_ensemble_other_problem_types(tmp_path, problem_type):
    p, df = _pool(str(tmp_path), ("numerical", "categorical", "text"), problem_type, n=120)
    for x in p.members_:
        x.weight = 1.0 / len(p.members_)
    out = p.export(tmp_path / "export")
    scale = float(df["y"].std()) if problem_type == "regression" else 1.0
    m = _compare(p, df, out, problem_type, scale)
    if problem_type == "regression":
        with pytest.raises(SchemaError, match="predict_proba"):
            m.predict_proba(df)

"""Single-row prediction and loading do no avoidable work; scripts/latency.py runs.

Nothing here is timed (timings belong in scripts/latency.py and docs/benchmarks.md): the
tests check the behaviour that keeps one row fast. Predicting reuses the predictor's image
transforms and tokenizer, starts no DataLoader worker for a few rows, and does not move the
model again; loading reads no pretrained backbone and runs no random initialisation.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmtricks import MultimodalPredictor
from mmtricks.data.processors import ImageProcessor

from conftest import save_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latency")
    p, df, path = save_tiny_model(folder)
    return p, df, str(path), folder


def _count_builds(monkeypatch) -> list:
    """Record every call of an ImageProcessor ``build_*`` method (the image transforms)."""
    calls = []
    for name in [n for n in vars(ImageProcessor) if n.startswith("build_")]:
        original = getattr(ImageProcessor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            calls.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(ImageProcessor, name, counted)
    return calls


def _refuse(what):
    def refuse(*a, **k):
        raise AssertionError(f"unexpected call: {what}")
    return refuse


def test_one_row_twice_reuses_transforms_tokenizer_and_starts_no_workers(saved, monkeypatch):
    _, df, path, _ = saved
    q = MultimodalPredictor.load(path, verbosity=0)
    q.config_.env.num_workers = 2  # workers configured: a few rows must still not start any
    builds = _count_builds(monkeypatch)
    tokenizer = q.preprocessor_.text.tokenizer
    row = df.iloc[[3]]
    first = q.predict_proba(row)
    cat_index = q.preprocessor_.cat._indices()
    assert q.preprocessor_.cat.columns and cat_index[0], "the tiny model has a categorical column (test sanity)"
    n_builds = len(builds)
    assert n_builds > 0, "the first call builds the image transforms (test sanity)"

    import transformers
    from torch.utils.data import dataloader

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", _refuse("DataLoader workers"))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", _refuse("tokenizer load"))
    monkeypatch.setattr(type(q.model_), "to", _refuse("model.to()"))
    monkeypatch.setattr(type(q.model_), "cpu", _refuse("model.cpu()"))
    second = q.predict_proba(row)
    assert len(builds) == n_builds, f"image transforms rebuilt on the second call: {builds[n_builds:]}"
    assert q.preprocessor_.text.tokenizer is tokenizer
    assert q.preprocessor_.cat._indices() is cat_index  # the category index is not rebuilt per call
    np.testing.assert_array_equal(first.to_numpy(), second.to_numpy())
    # the same as a batch of every row, row 3 picked out
    np.testing.assert_allclose(q.predict_proba(df).to_numpy()[3], second.to_numpy()[0], rtol=1e-5, atol=1e-6)


def test_category_index_follows_a_refit():
    import pandas as pd

    from mmtricks.data.processors import CategoricalProcessor

    proc = CategoricalProcessor(["c"]).fit(pd.DataFrame({"c": ["a", "b", "a"]}))
    np.testing.assert_array_equal(proc.transform(pd.DataFrame({"c": ["b", "z", None]}))[:, 0], [2, 0, 0])
    proc.fit(pd.DataFrame({"c": ["x", "z"]}))  # new levels: the index is rebuilt for them
    np.testing.assert_array_equal(proc.transform(pd.DataFrame({"c": ["z", "b"]}))[:, 0], [2, 0])


def test_large_tables_still_use_workers_with_the_same_results(saved, monkeypatch):
    from mmtricks import predictor as predictor_module
    from torch.utils.data import dataloader

    _, df, path, _ = saved
    q = MultimodalPredictor.load(path, verbosity=0)
    monkeypatch.setattr(predictor_module, "PREDICT_WORKER_MIN_ROWS", len(df))  # this table counts as large
    without = q.predict_proba(df).to_numpy()
    started = []
    original = dataloader._MultiProcessingDataLoaderIter.__init__

    def record(self, *a, **k):
        started.append(True)
        original(self, *a, **k)

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", record)
    q.config_.env.num_workers = 1
    with_workers = q.predict_proba(df).to_numpy()
    assert started, "a large table with env.num_workers > 0 reads through DataLoader workers"
    np.testing.assert_array_equal(without, with_workers)


def test_load_reads_no_pretrained_weights_and_skips_random_init(saved, monkeypatch):
    import timm
    import transformers
    from transformers.modeling_utils import PreTrainedModel

    import mmtricks.zoo as zoo
    from mmtricks.models.net import MultimodalNet

    p, df, path, _ = saved
    for name in ("create_image_backbone", "resolve_text_backbone", "efficientnet_lite0_state_dict", "_load_weights"):
        monkeypatch.setattr(zoo, name, _refuse(f"zoo.{name}"))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", _refuse("AutoModel.from_pretrained"))
    create = timm.create_model

    def no_pretrained(*a, pretrained=False, **k):
        assert not pretrained, "timm.create_model(pretrained=True) at load"
        return create(*a, pretrained=pretrained, **k)

    monkeypatch.setattr(timm, "create_model", no_pretrained)
    # Random initialisation is wasted work at load (every weight comes from the file).
    for name in ("kaiming_uniform_", "normal_", "uniform_", "trunc_normal_", "xavier_uniform_"):
        monkeypatch.setattr(torch.nn.init, name, _refuse(f"torch.nn.init.{name}"))
    for name in ("initialize_weights", "_initialize_weights"):
        if name in vars(PreTrainedModel):
            monkeypatch.setattr(PreTrainedModel, name, _refuse(f"PreTrainedModel.{name}"))
    with open(os.path.join(path, "network.json")) as f:
        spec = json.load(f)
    with pytest.raises(AssertionError):  # the check can fail: building with init does call them
        MultimodalNet.from_spec(spec)

    q = MultimodalPredictor.load(path, verbosity=0)
    np.testing.assert_array_equal(q.predict_proba(df).to_numpy(), p.predict_proba(df).to_numpy())
    assert torch.nn.init.normal_ is not torch.nn.init.kaiming_uniform_  # patches restored after load
    with pytest.raises(AssertionError):
        torch.nn.init.normal_(torch.empty(2))


_AFTER_LOAD = """
import sys, torch
torch.set_num_threads(1)
import mmtricks
from mmtricks.models.net import MultimodalNet
mmtricks.load(sys.argv[1], verbosity=0)
from transformers import initialization as hf_init
from transformers.modeling_utils import PreTrainedModel
for fn in (torch.nn.init.normal_, hf_init.normal_, hf_init.TORCH_INIT_FUNCTIONS["normal_"]):
    t = torch.zeros(1000)
    fn(t)
    assert t.std() > 0.5, f"{fn} left disabled after a load"
import json
spec = json.load(open(sys.argv[1] + "/network.json"))
torch.manual_seed(0)
a = MultimodalNet.from_spec(spec).state_dict()
torch.manual_seed(0)
b = MultimodalNet.from_spec(spec).state_dict()
assert all(torch.equal(a[k], b[k]) for k in a), "random init after a load is not the seeded init"
assert a["head.weight"].std() > 0
print("INIT_OK")
"""


def test_random_init_works_again_after_a_load(saved):
    """Skipping the init at load must not leave it off (a fresh process: libraries first imported by load)."""
    _, _, path, _ = saved
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", _AFTER_LOAD, path], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0 and "INIT_OK" in out.stdout, out.stderr[-3000:]


def test_latency_script_prints_its_fields(saved):
    _, df, path, folder = saved
    table = os.path.join(str(folder), "rows.parquet")
    df.to_parquet(table)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "latency.py"), path, "--data", table,
                          "--repeats", "3", "--rows", "50", "--loads", "1", "--threads", "1", "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for field in ("single-row predict: median", "p95", "throughput:", "rows/s on 50 rows", "load (fresh process",
                  "load (in process)", "import mmtricks:", "model size:", "torch threads: 1"):
        assert field in text, f"{field!r} missing from:\n{text}"
    res = json.loads([x for x in text.splitlines() if x.startswith("LATENCY_JSON ")][-1].split(" ", 1)[1])
    for key in ("single_row_median_ms", "single_row_p95_ms", "rows_per_s", "load_fresh_s", "load_in_process_s",
                "import_mmtricks_s", "model_bytes", "torch_threads"):
        assert isinstance(res[key], (int, float)) and res[key] >= 0, key
    assert res["rows"] == 50 and res["repeats"] == 3 and res["torch_threads"] == 1
    assert res["single_row_p95_ms"] >= res["single_row_median_ms"] * 0.999

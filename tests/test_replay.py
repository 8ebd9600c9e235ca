"""Validation batches read once and replayed (env.val_cache_mb)."""
from __future__ import annotations

import numpy as np
import torch
from conftest import make_table

from mmtricks import MultimodalPredictor
from mmtricks.data.dataset import ReplayBatches


class CountingLoader:
    """A loader stand-in that counts the passes made over it."""

    def __init__(self, n_batches: int = 3, rows: int = 4):
        self.passes = 0
        self.data = [{"x": torch.full((rows, 8), float(i))} for i in range(n_batches)]

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        self.passes += 1
        return iter([{k: v.clone() for k, v in b.items()} for b in self.data])


def _values(batches):
    return [b["x"][0, 0].item() for b in batches]


def test_second_pass_replays_without_reading_the_loader():
    loader = CountingLoader()
    replay = ReplayBatches(loader, max_bytes=10**6)
    first, second, third = list(replay), list(replay), list(replay)
    assert loader.passes == 1
    assert _values(first) == _values(second) == _values(third) == [0.0, 1.0, 2.0]
    assert len(replay) == 3


def test_over_budget_or_zero_reads_the_loader_every_pass():
    for budget in (0, 2 * 4 * 8 * 4):  # zero, or room for two of the three batches
        loader = CountingLoader()
        replay = ReplayBatches(loader, max_bytes=budget)
        for _ in range(3):
            assert _values(replay) == [0.0, 1.0, 2.0]
        assert loader.passes == 3
        assert replay.batches is None


def test_an_interrupted_pass_keeps_nothing():
    loader = CountingLoader()
    replay = ReplayBatches(loader, max_bytes=10**6)
    for batch in replay:
        break
    assert replay.batches is None
    assert _values(replay) == [0.0, 1.0, 2.0] and loader.passes == 2
    assert _values(replay) == [0.0, 1.0, 2.0] and loader.passes == 2


def test_replayed_real_batches_give_the_same_outputs(table_dir):
    """The collated batches of a real table (numbers, token ids, images) replay to the same outputs."""
    from mmtricks.data.dataset import make_loader
    from mmtricks.schema import validate_frame
    from mmtricks.train.loop import predict_outputs

    df = make_table(table_dir, n=40, kinds=("numerical", "categorical", "text", "image"))
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0, overrides={"optim.max_epochs": 1}).fit(df)
    encoded = p.preprocessor_.encode(validate_frame(df, p.schema_), None, with_labels=False)
    loader = make_loader(p._dataset(p.preprocessor_, encoded), 16, False)
    replay = ReplayBatches(loader, max_bytes=2**30)
    read = predict_outputs(p.model_, loader, p.schema_.problem_type)
    first, second = (predict_outputs(p.model_, replay, p.schema_.problem_type) for _ in range(2))
    assert replay.batches is not None and len(replay.batches) == 3
    np.testing.assert_array_equal(read, first)
    np.testing.assert_array_equal(read, second)


def test_a_fit_reads_each_validation_row_once(table_dir, monkeypatch):
    """With the cache, every validation check after the first reuses the decoded rows."""
    from mmtricks.data import dataset as ds

    reads: dict[int, int] = {}
    original = ds.TableDataset.__getitem__

    def counting(self, i):
        reads[len(self)] = reads.get(len(self), 0) + 1
        return original(self, i)

    monkeypatch.setattr(ds.TableDataset, "__getitem__", counting)
    df = make_table(table_dir, n=60, kinds=("numerical", "text", "image"))
    for mb, expect_once in ((512, True), (0, False)):
        reads.clear()
        p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                                overrides={"optim.max_epochs": 2, "env.val_cache_mb": mb}).fit(df)
        n_val, checks = p.fit_info_["n_val"], len(p.fit_info_["history"])
        assert checks >= 2
        if expect_once:
            assert reads[n_val] == n_val
        else:
            assert reads[n_val] >= n_val * checks

"""Training images decoded once per fit (env.image_cache_mb, data/image_cache.py)."""
from __future__ import annotations

import collections
import os
import tempfile

import torch
from conftest import make_table

import mmtricks.data.dataset as dataset_module
from mmtricks import MultimodalPredictor
from mmtricks.config import resolve
from mmtricks.data.dataset import TableDataset, make_loader
from mmtricks.schema import infer_schema

ALL = ("numerical", "categorical", "text", "image")


def _datasets(folder, n=12):
    """An uncached training dataset over make_table's images, and a function making more of it."""
    df = make_table(folder, n=n, kinds=ALL)
    df.loc[2, "img"] = None  # a missing image stays a zero tensor with its flag
    df.loc[5, "img"] = df.loc[4, "img"]  # one file in two rows: cached once
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0)
    _, pre = p._build(infer_schema(df, "y"), resolve("tiny", {"data.image_size": 24}), df)
    enc = pre.encode(df, None, with_labels=True)
    return lambda: TableDataset(enc, pre.image, pre.text)


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cached_items_equal_uncached_in_memory_on_disk_and_both(tmp_path):
    make = _datasets(str(tmp_path / "table"))
    plain = make()
    one_image = 3 * 24 * 24
    folder = tmp_path / "cache"
    folder.mkdir()
    for budget, n_memory, n_disk in [(1 << 30, 10, 0), (0, 0, 10), (4 * one_image, 4, 6)]:
        ds = make()
        cache = ds.cache_images(budget, folder=str(folder))
        assert (len(cache), cache.n_memory, cache.n_disk) == (10, n_memory, n_disk)  # 12 rows, 1 empty, 1 repeat
        for i in range(len(plain)):
            _same(ds[i], plain[i])
        assert ds[2]["image_missing"].all() and not ds[2]["image"].any()
        ds.close()
        assert os.listdir(folder) == []  # the disk part is gone


def test_cache_reads_each_file_once_and_the_augmentation_sees_uint8(table_dir, monkeypatch):
    make = _datasets(table_dir)
    calls = collections.Counter()
    real = dataset_module.load_image
    monkeypatch.setattr(dataset_module, "load_image", lambda path: (calls.update([path]), real(path))[1])
    ds = make()
    ds.cache_images(1 << 20)
    assert set(calls.values()) == {1} and len(calls) == 10
    seen = []
    ds.image_augment = lambda img, key: (seen.append(img.dtype), img.flip(-1))[1]
    flipped = ds[0]["image"]
    plain = make()
    plain.image_augment = ds.image_augment
    assert torch.equal(flipped, plain[0]["image"]) and seen == [torch.uint8, torch.uint8]


def test_dataloader_worker_reads_the_cache(table_dir, tmp_path):
    make = _datasets(table_dir)
    ds = make()
    ds.cache_images(3 * 3 * 24 * 24, folder=str(tmp_path))  # 3 images in memory, 7 on disk
    for cached, plain in zip(make_loader(ds, 5, False, num_workers=1), make_loader(make(), 5, False)):
        _same(cached, plain)
    ds.close()


def _train_reads(df, monkeypatch, overrides):
    """Fit; how many times each image file was read, and the paths the training cache holds."""
    calls, cached = collections.Counter(), []
    real, cache_images = dataset_module.load_image, TableDataset.cache_images
    monkeypatch.setattr(dataset_module, "load_image", lambda path: (calls.update([path]), real(path))[1])
    monkeypatch.setattr(TableDataset, "cache_images",
                        lambda self, *a, **k: (c := cache_images(self, *a, **k), cached.append(set(c.slots)))[0])
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0, overrides={"optim.max_epochs": 2, **overrides})
    p.fit(df)
    monkeypatch.undo()
    return calls, cached


def test_fit_decodes_each_training_image_once(table_dir, monkeypatch):
    df = make_table(table_dir, n=40, kinds=ALL)
    calls, cached = _train_reads(df, monkeypatch, {})
    assert len(cached) == 1 and len(cached[0]) == 32  # the training split only
    assert all(calls[p] == 1 for p in cached[0])  # two epochs (and a retry if any), one read each
    uncached, none = _train_reads(df, monkeypatch, {"env.image_cache_mb": 0})
    assert none == [] and sum(uncached[p] for p in cached[0]) > 40  # without the cache: read every epoch


def test_disk_cache_with_a_worker_is_removed_after_the_fit(table_dir, monkeypatch, tmp_path):
    df = make_table(table_dir, n=40, kinds=ALL)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    made = []
    real = TableDataset.cache_images

    def on_disk(self, memory_bytes, folder=None):  # every image on disk
        cache = real(self, 0, folder)
        made.append((cache.n_disk, os.path.isfile(cache.disk_path)))
        return cache

    monkeypatch.setattr(TableDataset, "cache_images", on_disk)
    overrides = {"optim.max_epochs": 1, "env.num_workers": 1}  # a loader worker reads the disk part
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0, overrides=overrides).fit(df)
    assert made == [(32, True)] and len(p.predict(df)) == 40
    assert os.listdir(temp) == []

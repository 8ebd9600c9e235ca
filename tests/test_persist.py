"""Saved models: no pickle, atomic writes, tampered folders refused, versions, reproducibility."""
import errno
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.errors import ModelLoadError, ModelSaveError

from conftest import make_table, save_tiny_model

ALL = ("numerical", "categorical", "text", "image")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("saved"))


def _copy(path, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


def test_folder_holds_no_pickle_and_load_never_unpickles(saved, monkeypatch):
    p, df, path = saved
    for root, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert fh.read(1) != b"\x80", f"{f} looks like a pickle"

    def refuse(*a, **k):
        raise AssertionError("unpickling during load")

    import torch

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    q = MultimodalPredictor.load(path)
    np.testing.assert_array_equal(q.predict_proba(df).to_numpy(), p.predict_proba(df).to_numpy())


def _edit_json(folder, name, fn):
    file = folder / name
    data = json.loads(file.read_text())
    fn(data)
    file.write_text(json.dumps(data))


ATTACKS = {
    "unexpected file": lambda d: (d / "payload.pkl").write_bytes(pickle.dumps({"x": 1})),
    "link outside": lambda d: os.symlink("/etc/passwd", d / "schema2.json"),
    "tokenizer link": lambda d: (os.remove(d / "tokenizer" / "tokenizer.json"),
                                 os.symlink("/etc/hostname", d / "tokenizer" / "tokenizer.json")),
    "missing file": lambda d: os.remove(d / "schema.json"),
    "invalid json": lambda d: (d / "config.json").write_text("{not json"),
    "unknown component": lambda d: _edit_json(d, "network.json",
                                              lambda n: n["encoders"]["tabular"].update(name="evil_encoder")),
    "hub architecture": lambda d: _edit_json(d, "network.json",
                                             lambda n: n["encoders"]["image"]["kwargs"].update(arch="hf-hub:evil/x")),
    "remote code": lambda d: _edit_json(d, "network.json",
                                        lambda n: n["encoders"]["text"]["kwargs"]["hf_config"].update(
                                            auto_map={"AutoModel": "evil.Model"})),
    "unknown config key": lambda d: _edit_json(d, "config.json", lambda c: c["optim"].update(evil=1)),
    "format version": lambda d: _edit_json(d, "predictor.json", lambda m: m.update(format_version=99)),
    "wrong shapes": lambda d: _edit_json(d, "network.json",
                                         lambda n: n["fusion"]["kwargs"].update(hidden=7)),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_tampered_folder_is_refused(saved, tmp_path, attack):
    _, _, path = saved
    folder = _copy(path, tmp_path)
    ATTACKS[attack](folder)
    with pytest.raises(ModelLoadError):
        MultimodalPredictor.load(folder)


def test_version_change_warns(saved, tmp_path):
    _, _, path = saved
    folder = _copy(path, tmp_path)
    _edit_json(folder, "versions.json", lambda v: v.update(torch="0.0.1"))
    with pytest.warns(UserWarning, match="torch"):
        MultimodalPredictor.load(folder)


def test_disk_full_keeps_the_previous_model(saved, tmp_path, monkeypatch):
    p, df, path = saved
    target = tmp_path / "model"
    p.save(target)
    before = sorted(os.listdir(target))
    import safetensors.torch

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", full)
    with pytest.raises(ModelSaveError, match="intact"):
        p.save(target)
    monkeypatch.undo()
    assert sorted(os.listdir(target)) == before
    assert [n for n in os.listdir(tmp_path) if n.startswith(".mmtricks")] == []  # no half-written leftovers
    MultimodalPredictor.load(target).predict(df)


def test_same_seed_gives_identical_predictions(table_dir):
    df = make_table(table_dir, n=40, kinds=ALL)

    def fit():
        return MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1}, seed=3,
                                   verbosity=0).fit(df).predict_proba(df)

    np.testing.assert_array_equal(fit().to_numpy(), fit().to_numpy())

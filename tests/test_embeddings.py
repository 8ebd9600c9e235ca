"""LightGBM on frozen text and image embeddings (``lightgbm_embed``): computed once, shared, saved."""
import os

import numpy as np
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.ensemble.embeddings import FrozenEmbedder
from mmtricks.ensemble.pool import pool_entries, skip_reason
from mmtricks.schema import infer_schema

from conftest import make_table

pytest.importorskip("lightgbm")

TINY_ENCODERS = {"text.pretrained": False, "text.tiny": True, "image.backbone": "test_efficientnet",
                 "image.pretrained": False, "data.image_size": 32, "data.text_max_length": 16}


def _count_transforms(monkeypatch) -> list:
    calls = []
    real = FrozenEmbedder.transform

    def counted(self, df, base_dir=None):
        calls.append(len(df))
        return real(self, df, base_dir)

    monkeypatch.setattr(FrozenEmbedder, "transform", counted)
    return calls


def test_frozen_image_embeddings_let_the_trees_read_images(table_dir, monkeypatch):
    df = make_table(table_dir, n=150, kinds=("image",), seed=3)  # the label is in the image's colour only
    df["noise"] = np.random.default_rng(0).normal(size=len(df))
    calls = _count_transforms(monkeypatch)
    p = MultimodalPredictor(label="y", pool=["lightgbm", "lightgbm_embed"], verbosity=0, seed=1,
                            overrides=TINY_ENCODERS).fit(df)
    n_train, n_val = p.fit_info_["n_train"], p.fit_info_["n_val"]
    assert calls == [n_train, n_val]  # one pass over the training rows, one over the validation rows
    facts = p.fit_info_["embeddings"]
    assert facts["rows"] == n_train + n_val and facts["encoders"] == ["image"] and facts["seconds"] > 0
    scores = {m.name: m.val_score for m in p.members_}
    assert scores["lightgbm_embed"] > scores["lightgbm"] + 0.25, scores  # the noise column alone is chance
    assert scores["lightgbm_embed"] > 0.8, scores
    member = p.members_[1].model
    assert member.booster_.num_feature() == 1 + member.embedder_.dim  # noise + one vector for the image column


def test_an_embedding_member_saves_its_encoders_and_tokenizer_and_predicts_identically(table_dir, tmp_path):
    from mmtricks.errors import ModelLoadError

    df = make_table(table_dir, n=90, kinds=("numerical", "text", "image"), seed=4)
    p = MultimodalPredictor(label="y", pool=["lightgbm_embed"], verbosity=0, seed=2,
                            overrides={**TINY_ENCODERS, "ensemble.refit_full": True}).fit(df)
    assert p.fit_info_["ensemble"]["refit_full"] == ["lightgbm_embed"]
    path = p.save(str(tmp_path / "ens"))
    sub = os.path.join(path, "members", "m0")
    assert {"member.json", "arrays.safetensors", "lightgbm.txt", "tokenizer"} <= set(os.listdir(sub))
    loaded = MultimodalPredictor.load(path, verbosity=0)
    np.testing.assert_allclose(loaded.predict_proba(df).to_numpy(), p.predict_proba(df).to_numpy(), atol=1e-6)
    board = loaded.leaderboard(df)
    assert list(board["model"]) == ["lightgbm_embed", "ensemble"]
    open(os.path.join(sub, "tokenizer", "evil.py"), "w").write("raise SystemExit")
    with pytest.raises(ModelLoadError, match="evil.py"):
        MultimodalPredictor.load(path)


def test_embeddings_that_would_take_too_long_are_skipped_and_said(table_dir, monkeypatch, capsys):
    df = make_table(table_dir, n=60, kinds=("numerical", "text"), seed=5)
    monkeypatch.setattr(FrozenEmbedder, "seconds_per_row", lambda self, df, base_dir=None: 5.0)
    p = MultimodalPredictor(label="y", pool=["lightgbm", "lightgbm_embed"], verbosity=1, time_limit=120,
                            overrides=TINY_ENCODERS).fit(df)
    out = capsys.readouterr().out
    assert "no frozen embeddings: embedding 60 rows would take about 300 s" in out
    assert [m.name for m in p.members_] == ["lightgbm"]


def test_an_embedding_member_needs_text_or_images(table_dir):
    df = make_table(table_dir, n=20, kinds=("numerical", "categorical"))
    assert "no text or image column" in skip_reason(pool_entries(["lightgbm_embed"])[0], infer_schema(df, "y"), df)
    assert "lightgbm_embed" in [e.name for e in pool_entries(["pool"])]


def test_an_embedding_member_is_refused_by_export_with_a_reason(table_dir, tmp_path):
    from mmtricks.export import ExportError

    df = make_table(table_dir, n=60, kinds=("text",), seed=6)
    p = MultimodalPredictor(label="y", pool=["lightgbm_embed"], verbosity=0, overrides=TINY_ENCODERS).fit(df)
    with pytest.raises(ExportError, match="without it"):
        p.export(str(tmp_path / "exported"))

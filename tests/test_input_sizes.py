"""Input sizes chosen from the training data (data.auto_input_size, data/input_sizes.py)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mmtricks import MultimodalPredictor
from mmtricks.config import resolve
from mmtricks.data.input_sizes import choose_image_size, choose_text_length, seeded_sample
from mmtricks.schema import infer_schema

WORDS = ["sun", "rain", "tree", "cold"]


def _images(folder, sizes, n=24, seed=0):
    """n rows, image sizes (w, h) cycling through ``sizes``; label follows the colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rows = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        c = i % 2
        arr = np.clip(np.array([[200, 40, 40], [40, 40, 200]][c]) + rng.normal(0, 20, (h, w, 3)), 0, 255)
        path = os.path.join(folder, "images", f"{i}.png")
        Image.fromarray(arr.astype(np.uint8)).save(path)
        rows.append({"img": path, "num": float(c) + rng.normal(0, 0.1), "y": "ab"[c]})
    return pd.DataFrame(rows)


def _build(df, overrides, capsys=None):
    """Processors as fit() builds them (no training); the log lines when capsys is given."""
    cfg = resolve("tiny", overrides)
    schema = infer_schema(df, "y")
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=1)
    _, pre = p._build(schema, cfg, df)
    return pre, (capsys.readouterr().out if capsys else "")


AUTO = {"data.image_size": None}  # the tiny preset fixes 32 px; None lets the data choose


def test_rules():
    assert choose_image_size([44, 44], native=224) == 64  # never below the floor
    assert choose_image_size([100, 170], native=224) == 128  # median 135, down to a multiple of 32
    assert choose_image_size([500, 600], native=224) == 224  # never above the native size
    assert choose_image_size([], native=224) == 224  # nothing readable: the native size
    assert choose_text_length(list(range(3, 23)), cap=128) == 24  # 95th percentile 21.05, up to a multiple of 8
    assert choose_text_length(list(range(3, 23)), cap=16) == 16
    assert choose_text_length([2, 3], cap=128) == 8
    paths = [f"{i}" for i in range(500)] + [None]
    assert seeded_sample(paths, seed=3, limit=200) == seeded_sample(paths, seed=3, limit=200)
    assert len(seeded_sample(paths, seed=3, limit=200)) == 200 and None not in seeded_sample(paths, 3, 600)


@pytest.mark.parametrize("sizes, expected, crop_pct", [
    ([(40, 40), (64, 48)], 64, 1.0),  # median short side 44: the floor
    ([(130, 100), (200, 170)], 128, 1.0),  # median 135
    ([(300, 250), (400, 260)], 160, 0.95),  # larger than test_efficientnet's 160: native size and crop kept
])
def test_image_size_from_the_training_images(tmp_path, capsys, sizes, expected, crop_pct):
    df = _images(str(tmp_path), sizes)
    pre, log = _build(df, AUTO, capsys)
    assert (pre.image.size, pre.image.crop_pct) == (expected, crop_pct)
    assert f"image size {expected} px, from the training images" in log


def test_explicit_or_switched_off_image_size_is_kept(tmp_path):
    df = _images(str(tmp_path), [(130, 100), (200, 170)])
    assert _build(df, {"data.image_size": 96})[0].image.size == 96
    assert _build(df, {"data.image_size": 96, "data.auto_input_size": False})[0].image.size == 96
    pre = _build(df, {**AUTO, "data.auto_input_size": False})[0]
    assert (pre.image.size, pre.image.crop_pct) == (160, 0.95)  # the encoder's own input config


def _texts(n_words):
    n_words = list(n_words)
    return pd.DataFrame({"txt": [" ".join(WORDS[j % 4] for j in range(k)) for k in n_words],
                         "y": ["ab"[i % 2] for i in range(len(n_words))]})


def test_text_length_from_the_training_rows(capsys):
    df = _texts(range(1, 21))  # rows of 1..20 words
    pre, log = _build(df, {"data.text_max_length": 64}, capsys)
    counts = [len(pre.text.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in df["txt"]]
    assert counts == list(range(1, 21))  # one token a word
    # [CLS] + words + [SEP]: 3..22 tokens; 95th percentile 21.05 -> 24
    assert pre.text.max_length == 24
    assert "text length 24 tokens per row" in log
    assert _build(df, {"data.text_max_length": 16})[0].text.max_length == 16  # the cap
    assert _build(df, {"data.text_max_length": 64, "data.auto_input_size": False})[0].text.max_length == 64


def test_rows_without_text_do_not_count():
    df = _texts([30] * 4 + [0] * 16)
    assert _build(df, {"data.text_max_length": 128})[0].text.max_length == 32  # 32 tokens, not the empty rows


def test_chosen_sizes_survive_save_and_load(tmp_path):
    df = _images(str(tmp_path), [(130, 100), (200, 170)], n=32)
    df["txt"] = [" ".join(WORDS[: 1 + i % 4] + [str(i)]) for i in range(len(df))]  # distinct: no text groups
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0, column_types={"txt": "text"},
                            overrides={**AUTO, "optim.max_epochs": 1}).fit(df)
    assert p.preprocessor_.image.size == 128 and p.preprocessor_.text.max_length == 8
    q = MultimodalPredictor.load(p.save(str(tmp_path / "model")))
    assert q.preprocessor_.image.size == 128 and q.preprocessor_.image.crop_pct == 1.0
    assert q.preprocessor_.text.max_length == 8
    np.testing.assert_array_equal(q.predict_proba(df).to_numpy(), p.predict_proba(df).to_numpy())

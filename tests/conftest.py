"""Shared fixtures: one torch thread, and small synthetic multimodal tables with real files."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(1)  # tiny ops run far slower with two competing threads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = [
    ["sunny", "bright", "warm", "happy", "summer", "beach"],
    ["rainy", "cold", "grey", "winter", "storm", "wind"],
    ["green", "forest", "tree", "leaf", "spring", "moss"],
]
COLORS = [(220, 40, 40), (40, 40, 220), (40, 200, 40)]


def make_table(folder, n: int = 72, kinds=("numerical", "categorical", "text", "image"),
               problem_type: str = "multiclass", seed: int = 0, relative: bool = False) -> pd.DataFrame:
    """A learnable table: every feature kind carries the label's signal.

    Images are 16x16 PNG files in ``folder/images``; column 'img' holds their absolute paths,
    or paths relative to ``folder`` with ``relative=True``.
    """
    rng = np.random.default_rng(seed)
    n_classes = 2 if problem_type == "binary" else 3
    cls = rng.integers(0, n_classes, n)
    data: dict = {}
    if "numerical" in kinds:
        data["num_a"] = cls * 2.0 + rng.normal(0, 0.3, n)
        data["num_b"] = rng.normal(0, 1, n)
    if "categorical" in kinds:
        data["cat_a"] = np.array(["red", "blue", "green"])[cls]
    if "text" in kinds:
        data["txt"] = [" ".join(rng.choice(WORDS[c], 4)) for c in cls]
    if "image" in kinds:
        from PIL import Image

        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        paths = []
        for i, c in enumerate(cls):
            arr = np.clip(np.array(COLORS[c]) + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            rel = f"images/{i}.png"
            Image.fromarray(arr).save(os.path.join(folder, rel))
            paths.append(rel if relative else os.path.join(folder, rel))
        data["img"] = paths
    if problem_type == "regression":
        data["y"] = cls * 1.5 + rng.normal(0, 0.1, n)
    else:
        data["y"] = np.array(["a", "b", "c"])[cls]
    return pd.DataFrame(data)


def save_tiny_model(folder) -> tuple:
    """A one-epoch tiny model of every feature kind, saved in ``folder/model``: (predictor, table, path)."""
    from mmtricks import MultimodalPredictor

    df = make_table(str(folder), n=40, kinds=("numerical", "categorical", "text", "image"))
    p = MultimodalPredictor(label="y", preset="tiny", overrides={"optim.max_epochs": 1}, verbosity=0).fit(df)
    return p, df, p.save(os.path.join(str(folder), "model"))


@pytest.fixture
def table_dir(tmp_path):
    return str(tmp_path)


TINY = {"optim.max_epochs": 3}


def write_tiny_clip(folder) -> str:
    """A random CLIP checkpoint small enough for tests, written as a hub checkpoint is: CLIPModel,
    an in-memory CLIPTokenizer (letters and two merges) and a CLIPImageProcessor, in ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab: dict = {}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    merges = [("s", "u"), ("su", "n</w>")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for t in ("<|startoftext|>", "<|endoftext|>"):
        vocab[t] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, projection_dim=16)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=48, eos_token_id=tok.eos_token_id,
                                      bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, **layers),
                     vision_config=dict(image_size=32, patch_size=8, **layers), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))

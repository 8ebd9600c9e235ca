"""Frozen pretrained embeddings of a table's text and images, as features for classic members.

:class:`FrozenEmbedder` runs the configured text and image encoders (``text.*`` and
``image.*``: the packaged MiniLM and EfficientNet-Lite0 by default), pretrained and never
trained, once over the rows and flattens their pooled tokens: one vector for all text
columns (the text encoder joins them into one sequence, as in the networks) and one per
image column. The pool computes the training and validation rows' embeddings once per fit
and shares them with every member that reads them (``EMBEDDING_KINDS``); a fitted member
keeps the embedder (encoder weights in its safetensors, tokenizer files in its folder) to
embed new rows at prediction. Prediction and training use the fit's ``env.precision``
(bf16 autocast where it is set).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import pandas as pd

EMBEDDING_KINDS = ("lightgbm_embed",)  # classic member kinds that read frozen embeddings
EMBED_SHARE = 0.2  # under a time limit, embedding every row may take at most this share of the time left
BATCH_ROWS = 32  # rows per forward pass


class FrozenEmbedder:
    """Pooled embeddings of the text and image columns from frozen pretrained encoders.

    Args:
        encoders: ``{'text': ..., 'image': ...}`` (either may be absent), in eval mode.
        pre: processors fitted for those encoders (tokenizer, image size).
        precision: ``env.precision`` as resolved for the fit ('bf16-mixed' autocasts).
        accelerator: ``env.accelerator`` of the fit.
    """

    def __init__(self, encoders: dict, pre, precision: str = "32-true", accelerator: str = "auto"):
        self.encoders = {m: enc.eval().requires_grad_(False) for m, enc in encoders.items()}
        self.pre = pre
        self.precision = precision
        self.accelerator = accelerator  # env.accelerator: 'auto' and 'cuda'/'gpu' use a GPU when there is one

    @classmethod
    def fit(cls, schema, cfg, train_df: pd.DataFrame, base_dir: Optional[str] = None, seed: int = 0,
            log: Optional[Callable[[str], None]] = None) -> "FrozenEmbedder":
        """The configured encoders with their pretrained weights; processors fitted on ``train_df``."""
        import torch

        from ..data.preprocessor import fit_for_encoders
        from ..errors import SchemaError
        from ..models.net import build_encoders_for
        from ..train.loop import resolve_precision

        modalities = [m for m in ("text", "image") if schema.columns(m)]
        if not modalities:
            raise SchemaError("Frozen embeddings need a text or image column; this table has neither.")
        with torch.random.fork_rng(devices=[]):  # any random init repeats with the seed; the global stream is left alone
            torch.manual_seed(seed)
            encoders = build_encoders_for(modalities, cfg, len(schema.columns("image")))
        pre = fit_for_encoders(train_df, schema, cfg, encoders, base_dir, seed, log)
        return cls(encoders, pre, resolve_precision(cfg.env), cfg.env.accelerator)

    @property
    def dim(self) -> int:
        return sum(enc.n_tokens * enc.out_dim for enc in self.encoders.values())

    def _batches(self, df: pd.DataFrame, base_dir: Optional[str]):
        from ..data.dataset import TableDataset

        dataset = TableDataset(self.pre.encode(df, base_dir, with_labels=False), self.pre.image, self.pre.text)
        for begin in range(0, len(dataset), BATCH_ROWS):
            yield dataset.collate([dataset[i] for i in range(begin, min(begin + BATCH_ROWS, len(dataset)))])

    def transform(self, df: pd.DataFrame, base_dir: Optional[str] = None) -> np.ndarray:
        """``(len(df), dim)`` float32: the text vector, then one vector per image column."""
        import torch

        from ..train.loop import autocast_for, inference_device

        device = inference_device(self.accelerator)
        for enc in self.encoders.values():
            enc.to(device)
        outs = []
        with torch.no_grad(), autocast_for(self.precision, device):
            for batch in self._batches(df, base_dir):
                batch = {k: v.to(device) for k, v in batch.items()}
                parts = [self.encoders[m](batch).flatten(1).float() for m in ("text", "image") if m in self.encoders]
                outs.append(torch.cat(parts, dim=1).cpu())
        if not outs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(outs).numpy().astype(np.float32)

    def seconds_per_row(self, df: pd.DataFrame, base_dir: Optional[str] = None) -> float:
        """Measured on a second batch of ``df``'s rows (the first pays one-off costs)."""
        sample = df.iloc[:2 * BATCH_ROWS]
        first = sample.iloc[:BATCH_ROWS]
        self.transform(first, base_dir)
        second = sample.iloc[BATCH_ROWS:] if len(sample) > BATCH_ROWS else first
        start = time.perf_counter()
        self.transform(second, base_dir)
        return (time.perf_counter() - start) / max(1, len(second))

    # ------------------------------------------------------------------ saving
    @property
    def tokenizer(self):
        """The text encoder's tokenizer (saved beside the member), or None without text."""
        return self.pre.text.tokenizer if self.pre.text is not None else None

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON (encoder specs, processors, precision) and arrays (``embed.<modality>.<param>``)."""
        meta = {"encoders": {m: {"name": enc.registry_name, "kwargs": enc.spec()} for m, enc in self.encoders.items()},
                "processors": self.pre.state(), "precision": self.precision, "accelerator": self.accelerator}
        arrays = {f"embed.{m}.{k}": v.detach().cpu().numpy()
                  for m, enc in self.encoders.items() for k, v in enc.state_dict().items()}
        return meta, arrays

    @classmethod
    def from_state(cls, schema, meta: dict, arrays: dict[str, np.ndarray], tokenizer=None) -> "FrozenEmbedder":
        """Rebuild from :meth:`state`: architectures from their specs (no pretrained file is read,
        no random init is drawn), then every weight loaded strictly."""
        import torch

        from ..data.preprocessor import Preprocessor
        from ..models.net import HF_ENCODERS, skip_weight_init
        from ..models.registry import create_encoder

        encoders = {}
        uses_hf = any(item["name"] in HF_ENCODERS for item in meta["encoders"].values())
        with skip_weight_init(transformers=uses_hf):
            for m, item in meta["encoders"].items():
                encoders[m] = create_encoder(item["name"], **item["kwargs"])
        for m, enc in encoders.items():
            prefix = f"embed.{m}."
            enc.load_state_dict({k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                                 if k.startswith(prefix)}, strict=True)
        return cls(encoders, Preprocessor.from_state(schema, meta["processors"], tokenizer), meta["precision"],
                   meta["accelerator"])


class SharedEmbeddings:
    """The training and validation rows' embeddings, computed once per pool fit."""

    def __init__(self, embedder: FrozenEmbedder, train: np.ndarray, val: np.ndarray, seconds: float):
        self.embedder, self.train, self.val, self.seconds = embedder, train, val, seconds


def shared_embeddings(make_embedder: Callable[[], FrozenEmbedder], train_df: pd.DataFrame, val_df: pd.DataFrame,
                      base_dir: Optional[str], val_base: Optional[str], left: Optional[float],
                      log: Callable[[str], None]) -> Optional[SharedEmbeddings]:
    """Embed the training and validation rows once, or None (logged) when, under a time limit,
    that would take more than ``EMBED_SHARE`` of the ``left`` seconds."""
    start = time.time()
    embedder = make_embedder()
    if left is not None:
        estimate = embedder.seconds_per_row(train_df, base_dir) * (len(train_df) + len(val_df))
        if estimate > EMBED_SHARE * left:
            log(f"pool: no frozen embeddings: embedding {len(train_df) + len(val_df)} rows would take about "
                f"{estimate:.0f} s, more than {EMBED_SHARE:.0%} of the {left:.0f} s left.")
            return None
    train, val = embedder.transform(train_df, base_dir), embedder.transform(val_df, val_base)
    seconds = round(time.time() - start, 2)
    log(f"pool: frozen embeddings of {len(train_df) + len(val_df)} rows ({embedder.dim} values a row, "
        f"{' + '.join(embedder.encoders)}) in {seconds:.1f} s.")
    return SharedEmbeddings(embedder, train, val, seconds)

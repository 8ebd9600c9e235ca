"""What input-level augmentation costs per training row on this CPU (one process, one thread).

    python scripts/aug_cost.py [--data ../shared/data/cloth/train.parquet] [--rows 1000]

Text: the rows' text columns through input_aug's row hook (one op, re-tokenising what changed,
MiniLM's tokenizer, WordNet synonyms when installed) against joining their ready token ids.
Images: TrivialAugment-Wide on a 224-px uint8 image against normalising it alone. Prints
milliseconds per row (median of 5 passes) and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def median_ms(fn, n: int, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / n * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/cloth/train.parquet")
    p.add_argument("--rows", type=int, default=1000)
    a = p.parse_args()
    torch.set_num_threads(1)
    import pandas as pd

    from mmtricks.data.processors import TextProcessor
    from mmtricks.models.encoders.hf_text import load_tokenizer
    from mmtricks.train.tricks.input_aug import ImageAugment, RowAugment
    from mmtricks.zoo import resolve_text_backbone

    df = pd.read_parquet(a.data).head(a.rows)
    cols = [c for c in df.columns if pd.api.types.is_string_dtype(df[c])
            and df[c].dropna().astype(str).str.split().str.len().mean() > 3]
    text = TextProcessor(cols, load_tokenizer(resolve_text_backbone("minilm-l6")), 128)
    ids, raw = text.transform(df), text.raw_texts(df)
    hook = RowAugment(0, text, raw)
    rows = [{"num": np.zeros(0, np.float32), "num_missing": np.zeros(0, bool), "cat": np.zeros(0, np.int64),
             "text": list(r), "images": None} for r in ids]
    plain = median_ms(lambda: [text.join(r["text"]) for r in rows], len(rows))
    aug = median_ms(lambda: [text.join(hook(dict(r), 1, i)["text"]) for i, r in enumerate(rows)], len(rows))
    print(f"text ({', '.join(cols)}; {len(rows)} rows; WordNet {'on' if hook.synonyms else 'off'}): "
          f"join {plain:.3f} ms/row, augment + join {aug:.3f} ms/row ({aug / plain:.1f}x)")
    image = torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8)
    from torchvision import transforms as T

    norm = T.Compose([T.ConvertImageDtype(torch.float32), T.Normalize([0.5] * 3, [0.5] * 3)])
    augment = ImageAugment(0)
    n = 200
    base = median_ms(lambda: [norm(image) for _ in range(n)], n)
    both = median_ms(lambda: [norm(augment(image, (0, i, 0))) for i in range(n)], n)
    print(f"image 224 px: normalise {base:.3f} ms, TrivialAugment-Wide + normalise {both:.3f} ms ({both / base:.1f}x)")


if __name__ == "__main__":
    main()

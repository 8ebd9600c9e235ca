"""One batch forward+backward of the default encoders in fp32 and in bf16 autocast on this CPU.

    python scripts/bf16_check.py [--batch 32] [--tokens 128] [--image 224] [--repeats 5] [--threads N]

Prints the median seconds of each and their ratio, and whether the CPU has native bf16
(avx512_bf16 / amx_bf16). A speed figure only: whether bf16 costs accuracy is for the
benchmark profiles to say.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def native_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def timed(step, repeats: int, bf16: bool) -> float:
    times = []
    for _ in range(repeats + 1):  # the first one warms up
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = step()
        loss.float().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--image", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from mmtricks.models.registry import create_encoder

    text = create_encoder("hf_text", backbone="minilm-l6", pretrained=True).train()
    image = create_encoder("timm_image", backbone="efficientnet-lite0", pretrained=True).train()
    ids = torch.randint(1000, 20000, (a.batch, a.tokens))
    batch_t = {"text_ids": ids, "text_mask": torch.ones_like(ids), "text_missing": torch.zeros(a.batch, dtype=torch.bool)}
    batch_i = {"image": torch.randn(a.batch, 1, 3, a.image, a.image),
               "image_missing": torch.zeros(a.batch, 1, dtype=torch.bool)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {native_bf16()}, "
          f"batch {a.batch}, {a.tokens} tokens, {a.image} px, median of {a.repeats}")
    for name, enc, batch in (("MiniLM-L6", text, batch_t), ("EfficientNet-Lite0", image, batch_i)):
        fp32 = timed(lambda: enc(batch).sum(), a.repeats, False)
        bf16 = timed(lambda: enc(batch).sum(), a.repeats, True)
        print(f"{name}: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s, speed-up {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    main()

"""Input sizes chosen from the training data (``data.auto_input_size``).

Images: no larger than the training images' median short side, read from the file
headers (nothing decoded) of a seeded sample of at most :data:`IMAGE_SAMPLE` paths, rounded
down to a multiple of :data:`IMAGE_SIZE_STEP`, and kept between :data:`IMAGE_SIZE_FLOOR` and
the image encoder's native input size. 64-pixel emoji are then read at 64 instead of being
upscaled to 224 (12x the pixels they hold); photos larger than the native size keep it.

Text: the tokens per row are the :data:`TEXT_LENGTH_PERCENTILE` th percentile of what the
training rows need (their text columns joined, special tokens included; rows without any
text left out; a seeded sample of at most :data:`TEXT_SAMPLE` rows), rounded up to a multiple of :data:`TEXT_LENGTH_STEP`, between
:data:`TEXT_LENGTH_FLOOR` and ``data.text_max_length``, which stays the cap. Batches are
padded to their longest row, so a few very long rows no longer set the cost of the batches
they land in.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, TypeVar

import numpy as np

T = TypeVar("T")

IMAGE_SIZE_FLOOR = 64  # smallest automatic side: EfficientNets (stride 32) still get a 2x2 feature map
IMAGE_SIZE_STEP = 32  # the backbones' total stride
IMAGE_SAMPLE = 200  # image headers read at most
TEXT_SAMPLE = 5000  # training rows whose token counts are measured at most (the fit tokenises them all later)
TEXT_LENGTH_PERCENTILE = 95.0
TEXT_LENGTH_STEP = 8
TEXT_LENGTH_FLOOR = 8


def seeded_sample(items: Sequence[Optional[T]], seed: int, limit: int) -> list[T]:
    """At most ``limit`` of the items that are not None, drawn with ``seed`` (the same ones every time), in order."""
    present = [x for x in items if x is not None]
    if len(present) <= limit:
        return present
    pick = np.random.default_rng(seed).choice(len(present), size=limit, replace=False)
    return [present[i] for i in sorted(pick)]


def image_short_sides(paths: Iterable[str]) -> list[int]:
    """The short side of each image, from its header only; unreadable files are skipped
    (the dataset names them when it reads them)."""
    from PIL import Image

    sides = []
    for path in paths:
        try:
            with Image.open(path) as img:  # lazy: reads the header, decodes nothing
                sides.append(int(min(img.size)))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
    return sides


def choose_image_size(short_sides: Sequence[int], native: int) -> int:
    """Side for the images: the median short side rounded down to a multiple of 32, in [64, native].

    ``native`` (the encoder's own input size) when no size is known or the images are at least that big.
    """
    if not len(short_sides):
        return int(native)
    median = float(np.median(short_sides))
    if median >= native:
        return int(native)
    size = int(median // IMAGE_SIZE_STEP) * IMAGE_SIZE_STEP
    return int(min(native, max(IMAGE_SIZE_FLOOR, size)))


def choose_text_length(row_lengths: Sequence[int], cap: int) -> int:
    """Tokens per row: the 95th percentile of ``row_lengths`` rounded up to a multiple of 8, in [8, cap]."""
    if not len(row_lengths):
        return int(min(cap, TEXT_LENGTH_FLOOR))
    high = float(np.percentile(np.asarray(row_lengths, dtype=np.float64), TEXT_LENGTH_PERCENTILE))
    length = int(math.ceil(high / TEXT_LENGTH_STEP)) * TEXT_LENGTH_STEP
    return int(min(cap, max(TEXT_LENGTH_FLOOR, length)))

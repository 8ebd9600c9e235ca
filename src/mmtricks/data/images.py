"""Read an image file as 8-bit RGB: the one reader of training, prediction and serving.

Imports only PIL and numpy (no torch), so the torch-free serving module uses it too.
"""
from __future__ import annotations

from ..errors import DataError


def load_image(path: str):
    """Open an image file as 8-bit RGB, with a clear error naming the file when it can't be read.

    Handles what real folders hold: palette and transparent images (flattened on black),
    CMYK, 16-bit and float greyscale (rescaled to 8 bits), animations (first frame).
    Images over PIL's decompression-bomb limit are refused.
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.seek(0)  # first frame of an animation
                img.load()
                return _to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"Could not read image '{path}': {type(exc).__name__}: {exc}") from exc


def _to_rgb(img):
    import numpy as np
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.nan_to_num(arr).astype(np.uint8), mode="L")
    if img.mode == "P" or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB")

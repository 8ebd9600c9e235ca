"""mmtricks: multimodal AutoML for tables of numbers, categories, text and images.

Public names: :class:`MultimodalPredictor`, :func:`load`, ``__version__``. Heavy
libraries (torch, transformers, timm) load only when a predictor is used.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["MultimodalPredictor", "load", "__version__"]


def __getattr__(name: str):
    if name == "MultimodalPredictor":
        from .predictor import MultimodalPredictor

        return MultimodalPredictor
    raise AttributeError(f"module 'mmtricks' has no attribute {name!r}")


def load(path: str, verbosity: int = 1):
    """Load a saved predictor folder (see ``MultimodalPredictor.save``)."""
    from .predictor import MultimodalPredictor

    return MultimodalPredictor.load(path, verbosity=verbosity)

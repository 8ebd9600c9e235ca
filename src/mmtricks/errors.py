"""Typed errors raised by mmtricks.

Every error says what was passed, what is allowed, and what to do. They subclass the
built-in exception a caller would expect (``ValueError``, ``FileNotFoundError`` ...)
so generic ``except`` clauses keep working.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class MMTricksError(Exception):
    """Base class of every error mmtricks raises on purpose."""


class ConfigError(MMTricksError, ValueError):
    """An option, preset or override is unknown or has an invalid value."""


class SchemaError(MMTricksError, ValueError):
    """A table does not fit what was expected (columns, kinds, label, dtypes)."""


class DataError(MMTricksError, ValueError):
    """A cell's content cannot be used (unreadable image, undecodable text ...)."""


class NotFittedError(MMTricksError, RuntimeError):
    """A predictor was used before ``fit`` or ``load``."""


class BackboneError(MMTricksError, ValueError):
    """A pretrained backbone cannot be resolved or loaded."""


class ModelSaveError(MMTricksError, OSError):
    """A model could not be written (disk full, permissions); any previous model is intact."""


class ModelLoadError(MMTricksError, ValueError):
    """A saved model folder is incomplete, tampered with or from an incompatible version."""


class RareClassWarning(UserWarning):
    """Classes too rare for the validation split (a single row, or a single group) were kept in training only."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def one_of(option: str, value: object, choices: Iterable[str]) -> str:
    """Format the standard message for an option whose value must be one of ``choices``."""
    choices = sorted(str(c) for c in choices)
    return (
        f"The '{option}' option must be one of {{{', '.join(repr(c) for c in choices)}}}. "
        f"Got {value!r}.{did_you_mean(str(value), choices)}"
    )


def plain(value: object) -> object:
    """``value`` as a plain Python value for a message: numpy scalars (``np.int64(1)``) become
    ``1``, arrays and tuples (MultiIndex row labels) are converted item by item."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def show(value: object) -> str:
    """How a row label or cell value appears in a message: ``1``, ``'a'``, ``(1, 'b')``."""
    return repr(plain(value))


def show_list(values: Iterable[object], limit: int = 5) -> str:
    """``1, 'a', 3`` for at most ``limit`` values, then ``... (N more)``."""
    values = list(values)
    shown = ", ".join(show(v) for v in values[:limit])
    return shown + (f" ... ({len(values) - limit} more)" if len(values) > limit else "")

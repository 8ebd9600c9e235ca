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

"""Typed errors that say what was wrong and what would have been valid.

Every error lenswidget raises for bad user input derives from :class:`LensWidgetError`
and from the built-in exception a caller would naturally catch (``KeyError``,
``ValueError``, ``IndexError``), so ``except KeyError`` keeps working.

>>> raise UnknownNameError("hook", "blocks.0.hook_resid_pree", ["blocks.0.hook_resid_pre"])
Traceback (most recent call last):
...
lenswidget.errors.UnknownNameError: unknown hook 'blocks.0.hook_resid_pree'; nearest valid: 'blocks.0.hook_resid_pre'
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence


def nearest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The ``n`` candidates closest to ``name`` (by difflib ratio), best first."""
    pool = list(candidates)
    close = difflib.get_close_matches(str(name), pool, n=n, cutoff=0.4)
    if len(close) < n:
        # Fall back to substring matches so that e.g. "resid" still suggests something.
        close += [c for c in pool if str(name) in c and c not in close][: n - len(close)]
    return close


class LensWidgetError(Exception):
    """Base class of every error raised for bad input."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownNameError(LensWidgetError, KeyError):
    """A hook name, cache key, component or option that does not exist."""

    def __init__(self, kind: str, name: object, valid: Sequence[str] | Iterable[str], hint: str = ""):
        valid = list(valid)
        close = nearest(str(name), valid)
        shown = close if close else valid[:8]
        label = "nearest valid" if close else "valid names include"
        msg = f"unknown {kind} {name!r}; {label}: " + ", ".join(repr(v) for v in shown)
        if hint:
            msg += f". {hint}"
        super().__init__(msg)
        self.kind, self.name, self.valid, self.suggestions = kind, name, valid, close


class OutOfRangeError(LensWidgetError, IndexError, ValueError):
    """A layer, head, position or other index outside its valid range."""

    def __init__(self, what: str, value: object, low: int, high: int, hint: str = ""):
        msg = f"{what} {value!r} is out of range; valid: {low}..{high}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)
        self.what, self.value, self.low, self.high = what, value, low, high


class InvalidOptionError(LensWidgetError, ValueError):
    """An argument that must be one of a fixed set of values."""

    def __init__(self, what: str, value: object, valid: Iterable[object]):
        valid = list(valid)
        super().__init__(f"invalid {what} {value!r}; valid: " + ", ".join(repr(v) for v in valid))
        self.what, self.value, self.valid = what, value, valid


class TokenizationError(LensWidgetError, ValueError):
    """Text that does not tokenize as required (e.g. an answer that is not one token)."""


class ShapeMismatchError(LensWidgetError, ValueError):
    """Tensors whose shapes do not agree."""


class ConfigError(LensWidgetError, ValueError):
    """An inconsistent model configuration."""


class ModelNotAvailableError(LensWidgetError, OSError):
    """A model that cannot be loaded here (e.g. a hub id while offline)."""


class WidgetMessageError(LensWidgetError, ValueError):
    """A malformed or invalid message from the browser."""

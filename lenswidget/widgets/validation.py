"""Tiny schemas for values that arrive from the browser.

A schema's ``check(value, where)`` returns the (possibly normalised) value or raises
:class:`~lenswidget.errors.WidgetMessageError` naming the field, what was received and
what would have been valid. Checks never mutate anything, so a caller can validate a
whole message before applying any of it.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import WidgetMessageError

_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlevel, _short.maxlist, _short.maxdict = 40, 40, 2, 4, 4


def describe(value: object) -> str:
    """A short, safe description of an untrusted value for error messages."""
    try:
        text = _short.repr(value)
    except Exception:  # a hostile __repr__ cannot get here from JSON, but be safe
        text = "<unprintable>"
    return f"{text} ({type(value).__name__})"


def fail(where: str, value: object, expected: str) -> WidgetMessageError:
    return WidgetMessageError(f"{where}: got {describe(value)}; expected {expected}")


class Schema:
    """Base class: subclasses implement :meth:`check`."""

    def check(self, value: Any, where: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Schema):
    """An integer (bools and floats rejected) in ``low..high`` inclusive."""

    low: int
    high: int

    def check(self, value: Any, where: str) -> int:
        if type(value) is not int:
            raise fail(where, value, f"an integer in {self.low}..{self.high}")
        if not self.low <= value <= self.high:
            raise fail(where, value, f"an integer in {self.low}..{self.high}")
        return value


@dataclass(frozen=True)
class OneOf(Schema):
    """One of a fixed set of values (compared with ``==`` and exact type)."""

    choices: tuple

    def check(self, value: Any, where: str) -> Any:
        for c in self.choices:
            if type(value) is type(c) and value == c:
                return value
        shown = ", ".join(repr(c) for c in self.choices[:12])
        more = ", ..." if len(self.choices) > 12 else ""
        raise fail(where, value, f"one of {shown}{more}")


@dataclass(frozen=True)
class Str(Schema):
    """A string of at most ``max_len`` characters."""

    max_len: int = 10_000

    def check(self, value: Any, where: str) -> str:
        if type(value) is not str:
            raise fail(where, value, f"a string of at most {self.max_len} characters")
        if len(value) > self.max_len:
            raise WidgetMessageError(f"{where}: string of {len(value)} characters is too long; at most {self.max_len}")
        return value


@dataclass(frozen=True)
class Float(Schema):
    """A finite number in ``low..high``."""

    low: float = -math.inf
    high: float = math.inf

    def check(self, value: Any, where: str) -> float:
        if type(value) not in (int, float) or not math.isfinite(value) or not self.low <= value <= self.high:
            raise fail(where, value, f"a finite number in {self.low}..{self.high}")
        return float(value)


@dataclass(frozen=True)
class Bool(Schema):
    def check(self, value: Any, where: str) -> bool:
        if type(value) is not bool:
            raise fail(where, value, "true or false")
        return value


@dataclass(frozen=True)
class Nullable(Schema):
    """``None`` or a value accepted by ``inner``."""

    inner: Schema

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.check(value, where)


@dataclass(frozen=True)
class Record(Schema):
    """A dict with exactly the given keys (those in ``optional`` may be absent)."""

    fields: Mapping[str, Schema]
    optional: frozenset = field(default_factory=frozenset)

    def check(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise fail(where, value, "an object with keys " + ", ".join(self.fields))
        unknown = [k for k in value if k not in self.fields]
        if unknown:
            raise WidgetMessageError(f"{where}: unknown key {describe(unknown[0])}; valid keys: " + ", ".join(self.fields))
        out = {}
        for key, schema in self.fields.items():
            if key not in value:
                if key in self.optional:
                    continue
                raise WidgetMessageError(f"{where}: missing key {key!r}")
            out[key] = schema.check(value[key], f"{where}.{key}")
        return out


@dataclass(frozen=True)
class ListOf(Schema):
    """A list of at most ``max_len`` items, each accepted by ``inner``."""

    inner: Schema
    max_len: int = 1000

    def check(self, value: Any, where: str) -> list:
        if not isinstance(value, list) or len(value) > self.max_len:
            raise fail(where, value, f"a list of at most {self.max_len} items")
        return [self.inner.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


def check_state(update: Any, writable: Mapping[str, Schema], where: str = "state") -> dict:
    """Validate a browser state update against the browser-writable traits.

    Every key must be writable and every value valid; nothing is returned unless all are.
    """
    if not isinstance(update, dict) or not update:
        raise fail(where, update, "a non-empty object of trait values")
    out = {}
    for key, value in update.items():
        if type(key) is not str or key not in writable:
            raise WidgetMessageError(
                f"{where}: trait {describe(key)} cannot be set from the browser; writable: " + ", ".join(writable)
            )
        out[key] = writable[key].check(value, key)
    return out


def choices(values: Sequence[Any]) -> OneOf:
    return OneOf(tuple(values))

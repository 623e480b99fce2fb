"""The patch set of the patcher widget: what a chip is, how it is checked and labelled.

A :class:`Patch` writes into the corrupted run, at every layer in ``layers``, either the
clean run's activation (``mode="clean"``), zeros (``"zero"``) or the corrupted run's mean
over batch and positions (``"mean"``). Per-position activations (``resid_pre``,
``resid_mid``, ``attn_out``, ``mlp_out``) are addressed by ``positions``; per-head ones
(``z``, ``q``, ``k``, ``v``, ``pattern``) by ``heads`` and optionally ``positions``
(``None`` = every position; for ``pattern`` the positions are destinations). With
grouped-query attention, ``k``/``v`` heads are key/value heads, as on their hooks.

Patches compose in order: later chips overwrite earlier ones where they overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from ...errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError

POSITION_ACTS = ("resid_pre", "resid_mid", "attn_out", "mlp_out")
HEAD_ACTS = ("z", "q", "k", "v", "pattern")
ACTS = POSITION_ACTS + HEAD_ACTS
MODES = ("clean", "zero", "mean")
MAX_PATCHES = 100

ACT_LABELS = {
    "resid_pre": "residual stream (before each block)",
    "resid_mid": "residual stream (between attention and MLP)",
    "attn_out": "attention output",
    "mlp_out": "MLP output",
    "z": "head output z (every position or one)",
    "q": "head queries",
    "k": "head keys (key/value heads)",
    "v": "head values (key/value heads)",
    "pattern": "head attention pattern (rows = destinations)",
}


@dataclass(frozen=True)
class Dims:
    """Sizes a patch is checked against."""

    n_layers: int
    n_pos: int
    n_heads: int
    n_kv_heads: int  # heads on the k/v hooks (n_heads when ungrouped)

    def cols(self, act: str) -> int:
        """Columns of the grid of ``act``: positions, heads, or key/value heads."""
        if act in POSITION_ACTS:
            return self.n_pos
        return self.n_kv_heads if act in ("k", "v") else self.n_heads


@dataclass(frozen=True)
class Patch:
    id: int
    act: str
    layers: tuple[int, ...]
    positions: tuple[int, ...] | None  # None: every position
    heads: tuple[int, ...] | None  # None for per-position activations
    mode: str = "clean"
    enabled: bool = True

    @property
    def per_head(self) -> bool:
        return self.act in HEAD_ACTS

    def to_dict(self) -> dict:
        return {
            "id": self.id, "act": self.act, "layers": list(self.layers),
            "positions": None if self.positions is None else list(self.positions),
            "heads": None if self.heads is None else list(self.heads),
            "mode": self.mode, "enabled": self.enabled, "label": label(self),
        }

    def with_enabled(self, enabled: bool) -> "Patch":
        return replace(self, enabled=bool(enabled))


def _indices(values: Any, size: int, what: str, limit: int | None = None) -> tuple[int, ...]:
    """Sorted unique non-negative indices from an int, range or sequence (negative = from the end),
    at most ``limit`` of them when given."""
    if isinstance(values, bool):
        raise InvalidOptionError(f"{what} index", values, ["an int", "a range", "a list of ints"])
    if isinstance(values, int) or getattr(values, "ndim", None) == 0:
        values = [values]
    try:
        items = list(values)
    except TypeError:
        raise InvalidOptionError(f"{what} index", values, ["an int", "a range", "a list of ints"]) from None
    out = set()
    for v in items:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise InvalidOptionError(f"{what} index", v, ["an int", "a range", "a list of ints"])
        i = int(v)
        j = i + size if i < 0 else i
        if not 0 <= j < size:
            raise OutOfRangeError(what, i, -size, size - 1)
        out.add(j)
    if not out:
        raise OutOfRangeError(f"number of {what}s", 0, 1, limit or size)
    if limit is not None and len(out) > limit:
        raise OutOfRangeError(f"number of {what}s in one chip", len(out), 1, limit)
    return tuple(sorted(out))


def make_patch(pid: int, dims: Dims, act: str, layers: Any, positions: Any = None, heads: Any = None,
               mode: str = "clean", enabled: bool = True) -> Patch:
    """A checked :class:`Patch` (typed errors name the bad field and the valid range)."""
    if act not in ACTS:
        raise InvalidOptionError("activation", act, ACTS)
    if mode not in MODES:
        raise InvalidOptionError("patch mode", mode, MODES)
    if act == "pattern" and mode == "mean":
        raise InvalidOptionError("mode for 'pattern' (a mean attention pattern is not a pattern)", mode,
                                 ["clean", "zero"])
    lay = _indices(layers, dims.n_layers, "layer")
    pos = None if positions is None else _indices(positions, dims.n_pos, "position")
    if act in POSITION_ACTS:
        if heads is not None:
            raise ShapeMismatchError(f"{act!r} has no head axis (it is [batch, pos, d_model]); pass positions=, not heads=")
        hs = None
    else:
        if heads is None:
            raise ShapeMismatchError(f"{act!r} is per head: pass heads= (0..{dims.cols(act) - 1})")
        hs = _indices(heads, dims.cols(act), "key/value head" if act in ("k", "v") and dims.n_kv_heads != dims.n_heads else "head")
    return Patch(int(pid), act, lay, pos, hs, mode, bool(enabled))


def _span(values: Sequence[int]) -> str:
    if len(values) == 1:
        return str(values[0])
    if list(values) == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ",".join(str(v) for v in values)


def label(p: Patch) -> str:
    """Chip text, e.g. ``resid_pre L9 · pos 11`` or ``zero z L3 · H1–2 · all pos``."""
    parts = [p.act if p.mode == "clean" else f"{p.mode} {p.act}", f"L{_span(p.layers)}"]
    if p.heads is not None:
        parts.append(f"{'KV' if p.act in ('k', 'v') else 'H'}{_span(p.heads)}")
    if p.positions is None:
        parts.append("all pos")
    else:
        parts.append(f"{'dest' if p.act == 'pattern' else 'pos'} {_span(p.positions)}")
    return " · ".join(parts)


def active(patches: Iterable[Patch]) -> list[Patch]:
    return [p for p in patches if p.enabled]

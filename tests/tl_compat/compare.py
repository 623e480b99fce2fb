"""Value-by-value comparison of two case results (lenswidget's against TransformerLens's).

Tensors must have the same shape and dtype kind and agree within ``atol + rtol * scale``, where
``scale`` is the largest magnitude in TL's tensor (so massive activations, ~2e4 in SmolLM2, are
compared relatively); -inf entries (masked attention scores) must match exactly. Lists, tuples
and dict keys (in order) must match; numbers in strings are compared with a small tolerance
(``test_prompt``'s two-decimal report).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

ATOL = 1e-4
RTOL = 1e-4
_NUMBER = re.compile(r"-?\d+\.\d+")


class Mismatch(AssertionError):
    pass


def compare(ours: Any, theirs: Any, path: str = "", atol: float = ATOL, rtol: float = RTOL) -> None:
    """Raise :class:`Mismatch` naming the first place where ``ours`` and ``theirs`` differ."""
    if isinstance(theirs, dict) and "__error__" in theirs:
        if not (isinstance(ours, dict) and "__error__" in ours):
            raise Mismatch(f"{path}: TransformerLens raised {theirs['__error__']!r}, lenswidget did not")
        return
    if isinstance(ours, dict) and "__error__" in ours:
        raise Mismatch(f"{path}: lenswidget raised {ours['__error__']}\n{ours.get('__traceback__', '')}")
    if isinstance(theirs, torch.Tensor):
        _tensors(ours, theirs, path, atol, rtol)
    elif isinstance(theirs, dict):
        if not isinstance(ours, dict):
            raise Mismatch(f"{path}: expected a dict, got {type(ours).__name__}")
        if list(ours) != list(theirs):
            missing = [k for k in theirs if k not in ours]
            extra = [k for k in ours if k not in theirs]
            raise Mismatch(f"{path}: keys differ (missing {missing[:10]}, extra {extra[:10]}, "
                           f"or another order)")
        for k in theirs:
            compare(ours[k], theirs[k], f"{path}.{k}", atol, rtol)
    elif isinstance(theirs, (list, tuple)):
        if not isinstance(ours, (list, tuple)) or len(ours) != len(theirs):
            raise Mismatch(f"{path}: expected a sequence of {len(theirs)}, got {_short(ours)}")
        for i, (a, b) in enumerate(zip(ours, theirs)):
            compare(a, b, f"{path}[{i}]", atol, rtol)
    elif isinstance(theirs, float):
        if not isinstance(ours, (int, float)) or not _close(float(ours), theirs, atol, rtol):
            raise Mismatch(f"{path}: {ours!r} != {theirs!r}")
    elif isinstance(theirs, str) and isinstance(ours, str) and _NUMBER.search(theirs):
        _text(ours, theirs, path)
    elif ours != theirs:
        raise Mismatch(f"{path}: {_short(ours)} != {_short(theirs)}")


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b)


def _tensors(ours: Any, theirs: torch.Tensor, path: str, atol: float, rtol: float) -> None:
    if not isinstance(ours, torch.Tensor):
        raise Mismatch(f"{path}: expected a tensor {tuple(theirs.shape)}, got {_short(ours)}")
    if ours.shape != theirs.shape:
        raise Mismatch(f"{path}: shape {tuple(ours.shape)} != TransformerLens {tuple(theirs.shape)}")
    if ours.dtype.is_floating_point != theirs.dtype.is_floating_point or ours.dtype.is_complex != theirs.dtype.is_complex:
        raise Mismatch(f"{path}: dtype {ours.dtype} != TransformerLens {theirs.dtype}")
    if not (theirs.dtype.is_floating_point or theirs.dtype.is_complex):
        if not torch.equal(ours.to(theirs.dtype), theirs):
            bad = (ours.to(theirs.dtype) != theirs).nonzero()[:5].tolist()
            raise Mismatch(f"{path}: integer/bool values differ at {bad}")
        return
    a, b = ours.detach().to(torch.complex128 if theirs.is_complex() else torch.float64), theirs.detach()
    b = b.to(a.dtype)
    if not theirs.is_complex():
        inf = torch.isinf(b)
        if not torch.equal(torch.isinf(a), inf) or not torch.equal(a[inf], b[inf]):
            raise Mismatch(f"{path}: infinities differ")
        a, b = a[~inf], b[~inf]
    if a.numel() == 0:
        return
    if torch.isnan(b).any() or torch.isnan(a).any():
        if not torch.equal(torch.isnan(a), torch.isnan(b)):
            raise Mismatch(f"{path}: NaNs differ")
        keep = ~torch.isnan(b)
        a, b = a[keep], b[keep]
        if a.numel() == 0:
            return
    scale = float(b.abs().max())
    err = float((a - b).abs().max())
    if err > atol + rtol * scale:
        raise Mismatch(f"{path}: max abs diff {err:.3g} > {atol:g} + {rtol:g} x {scale:.3g} (shape {tuple(theirs.shape)})")


def _text(ours: str, theirs: str, path: str) -> None:
    if _NUMBER.sub("#", ours) != _NUMBER.sub("#", theirs):
        raise Mismatch(f"{path}: text differs:\n--- lenswidget\n{ours}\n--- TransformerLens\n{theirs}")
    for a, b in zip(_NUMBER.findall(ours), _NUMBER.findall(theirs)):
        if abs(float(a) - float(b)) > 0.011:  # 2-decimal rounding of values within 1e-4
            raise Mismatch(f"{path}: {a} != {b} in\n{theirs}")


def _short(x: Any) -> str:
    s = repr(x) if not isinstance(x, torch.Tensor) else f"tensor{tuple(x.shape)}"
    return s if len(s) < 200 else s[:200] + "..."

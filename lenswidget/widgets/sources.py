"""Where attention patterns come from: a model run, an activation cache, or a tensor.

Every source yields :class:`Patterns` - the string tokens and a float32 array
``[len(layers), len(heads), n, n]`` of the shown heads - which is all the inspector
keeps (the rest of the forward pass is discarded).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import OutOfRangeError, ShapeMismatchError, TokenizationError, UnknownNameError
from .codec import to_numpy


@dataclass(frozen=True)
class Patterns:
    tokens: list[str]
    data: np.ndarray  # float32 [len(layers), len(heads), n, n]


def pattern_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


def pick(indices: Sequence[int] | int | None, size: int, what: str) -> list[int]:
    """Normalise a layer/head selection (None = all, negative = from the end)."""
    if indices is None:
        return list(range(size))
    if isinstance(indices, (int, np.integer)):
        indices = [int(indices)]
    out = []
    for i in indices:
        i = int(i)
        j = i + size if i < 0 else i
        if not 0 <= j < size:
            raise OutOfRangeError(what, i, -size, size - 1)
        if j not in out:
            out.append(j)
    if not out:
        raise OutOfRangeError(f"number of {what}s", 0, 1, size)
    return out


def from_cache(cache: Any, layers: list[int], heads: list[int], tokens: list[str]) -> Patterns:
    """Shown heads' patterns from an ActivationCache (batch item 0 if batched)."""
    stacks = []
    for layer in layers:
        name = pattern_name(layer)
        if name not in cache:
            raise UnknownNameError("cache key", name, list(cache.keys()),
                                   "run_with_cache(..., names_filter=lambda n: n.endswith('hook_pattern'))")
        pat = to_numpy(cache[name])
        if pat.ndim == 4:
            pat = pat[0]
        stacks.append(pat[heads])
    data = np.stack(stacks)
    return Patterns(tokens, _check(data, tokens))


def from_tensor(patterns: Any, tokens: Sequence[str]) -> np.ndarray:
    """A ``[heads, dest, src]`` or ``[layers, heads, dest, src]`` tensor as 4-D float32."""
    data = to_numpy(patterns)
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4:
        raise ShapeMismatchError(f"attention of shape {list(data.shape)}: expected [heads, dest, src] or [layers, heads, dest, src]")
    return _check(data, list(tokens))


def _check(data: np.ndarray, tokens: list[str]) -> np.ndarray:
    n = len(tokens)
    if data.shape[-1] != data.shape[-2] or data.shape[-1] != n:
        raise ShapeMismatchError(f"attention of shape {list(data.shape)} does not match {n} tokens (expected [..., {n}, {n}])")
    if not np.isfinite(data).all():
        raise ShapeMismatchError("attention patterns contain NaN or inf")
    return np.ascontiguousarray(data, dtype=np.float32)


class ModelRunner:
    """Runs ``model`` on a prompt and keeps only the shown heads' attention patterns."""

    def __init__(self, model: Any, layers: list[int], heads: list[int], max_tokens: int):
        self.model, self.layers, self.heads, self.max_tokens = model, layers, heads, max_tokens

    def run_prompt(self, prompt: str) -> Patterns:
        return self.run_tokens(self.model.to_tokens(prompt))

    def run_tokens(self, tokens: Any) -> Patterns:
        if getattr(tokens, "ndim", 2) == 1:
            tokens = tokens[None]
        n = int(tokens.shape[-1])
        if n > self.max_tokens:
            raise TokenizationError(f"the prompt has {n} tokens; the inspector shows at most max_tokens={self.max_tokens}")
        if n == 0:
            raise TokenizationError("the prompt has no tokens")
        kwargs: dict[str, Any] = {"names_filter": lambda name: name.endswith("hook_pattern"), "return_type": None}
        stop = max(self.layers) + 1
        if stop < self.model.cfg.n_layers:
            kwargs["stop_at_layer"] = stop  # later layers are not shown
        with _no_grad():
            _, cache = self.model.run_with_cache(tokens, **kwargs)
        str_tokens = [str(s) for s in self.model.to_str_tokens(tokens[0])]
        return from_cache(cache, self.layers, self.heads, str_tokens)

    def decode(self, tokens: Any) -> str:
        """Prompt text for tokens (so the prompt box can show and edit them)."""
        row = tokens[0] if getattr(tokens, "ndim", 1) == 2 else tokens
        return str(self.model.to_string(row))


def _no_grad() -> contextlib.AbstractContextManager:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return torch.no_grad()

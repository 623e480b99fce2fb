"""Where attention patterns come from: a model run, an activation cache, or a tensor.

Each source hands the shown heads' patterns, layer by layer, to a
:class:`~.store.StoreBuilder` (float16, under the memory cap) and gives it a way to fetch
one layer again later (``loader``) for when all layers do not fit. A model run records
the patterns with hooks during one forward pass (stopped after the last shown layer), so
the float32 patterns of at most one layer exist at a time.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Sequence

import numpy as np
import torch

from ...errors import OutOfRangeError, ShapeMismatchError, TokenizationError, UnknownNameError
from .store import PatternStore, StoreBuilder, store_dtype


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


class Options:
    """Per-widget store settings shared by every run."""

    def __init__(self, thumb_size: int, cap_bytes: int):
        self.thumb_size, self.cap_bytes = thumb_size, cap_bytes


def from_cache(cache: Any, layers: list[int], heads: list[int], tokens: list[str], opts: Options, keep: int) -> PatternStore:
    """Shown heads' patterns from an ActivationCache (batch item 0 if batched)."""
    for layer in layers:
        if pattern_name(layer) not in cache:
            raise UnknownNameError("cache key", pattern_name(layer), list(cache.keys()),
                                   "run_with_cache(..., names_filter=lambda n: n.endswith('hook_pattern'))")

    def layer_of(i: int) -> torch.Tensor:
        pat = torch.as_tensor(cache[pattern_name(layers[i])]).detach()
        if pat.dim() == 4:
            pat = pat[0]
        if pat.dim() != 3:
            raise ShapeMismatchError(f"{pattern_name(layers[i])} has shape {list(pat.shape)}; expected [batch, heads, dest, src]")
        return pat.index_select(0, torch.tensor(heads, device=pat.device))

    return _collect(layer_of, len(layers), len(heads), tokens, opts, keep, "reads it from the cache", check=True)


def from_tensor(patterns: Any, tokens: Sequence[str], layers: list[int] | None = None, heads: list[int] | None = None,
                opts: Options | None = None, keep: int = 0) -> PatternStore:
    """A ``[heads, dest, src]`` or ``[layers, heads, dest, src]`` tensor (torch or numpy)."""
    data = tensor_4d(patterns)
    layers = list(range(data.shape[0])) if layers is None else layers
    heads = list(range(data.shape[1])) if heads is None else heads
    n = len(tokens)
    if data.shape[-1] != data.shape[-2] or data.shape[-1] != n:
        raise ShapeMismatchError(f"attention of shape {list(data.shape)} does not match {n} tokens (expected [..., {n}, {n}])")
    head_index = torch.tensor(heads)

    def layer_of(i: int) -> torch.Tensor:
        return data[layers[i]].index_select(0, head_index)

    lo, hi = torch.aminmax(data) if data.numel() else (torch.tensor(0.0), torch.tensor(0.0))
    dtype = store_dtype(max(abs(float(lo)), abs(float(hi))))  # NaN / inf: rejected below, layer by layer
    return _collect(layer_of, len(layers), len(heads), list(tokens), opts or Options(32, 1 << 40), keep,
                    "slices it from the tensor", check=True, dtype=dtype)


def tensor_4d(patterns: Any) -> torch.Tensor:
    """A float tensor ``[layers, heads, dest, src]`` (a 3-D input gets a layer axis); no copy when possible."""
    data = torch.as_tensor(patterns).detach().cpu()
    if not data.is_floating_point():
        data = data.float()
    if data.dim() == 3:
        data = data[None]
    if data.dim() != 4:
        raise ShapeMismatchError(f"attention of shape {list(data.shape)}: expected [heads, dest, src] or [layers, heads, dest, src]")
    return data


def _collect(layer_of: Any, n_layers: int, n_heads: int, tokens: list[str], opts: Options, keep: int, kind: str,
             check: bool, dtype: Any = np.float16) -> PatternStore:
    builder = StoreBuilder(tokens, n_layers, n_heads, thumb_size=opts.thumb_size, cap_bytes=opts.cap_bytes, keep=keep,
                           loader=layer_of, loader_kind=kind, dtype=dtype, check=check)
    for i in range(n_layers):
        builder.add(i, layer_of(i))
    return builder.finish()


class ModelRunner:
    """Runs ``model`` on a prompt and keeps only the shown heads' attention patterns."""

    def __init__(self, model: Any, layers: list[int], heads: list[int], max_tokens: int, opts: Options):
        self.model, self.layers, self.heads, self.max_tokens, self.opts = model, layers, heads, max_tokens, opts
        self._all_heads = heads == list(range(model.cfg.n_heads))
        # Without a tokenizer the inspector still shows token ids (labelled "<id>"), read-only.
        self.tokenizes = getattr(model, "tokenizer", None) is not None
        self.last_ms = 0.0  # wall time of the last run (forward + recording), for benchmarks

    def run_prompt(self, prompt: str, keep: int) -> PatternStore:
        return self.run_tokens(self.model.to_tokens(prompt), keep)

    def run_tokens(self, tokens: Any, keep: int) -> PatternStore:
        if getattr(tokens, "ndim", 2) == 1:
            tokens = tokens[None]
        n = int(tokens.shape[-1])
        if n > self.max_tokens:
            raise TokenizationError(f"the prompt has {n} tokens; the inspector shows at most max_tokens={self.max_tokens}")
        if n == 0:
            raise TokenizationError("the prompt has no tokens")
        t0 = time.perf_counter()
        if self.tokenizes:
            str_tokens = [str(s) for s in self.model.to_str_tokens(tokens[0])]
        else:
            str_tokens = [f"<{int(i)}>" for i in tokens[0]]
        builder = StoreBuilder(str_tokens, len(self.layers), len(self.heads), thumb_size=self.opts.thumb_size,
                               cap_bytes=self.opts.cap_bytes, keep=keep, loader=lambda i: self._one_layer(tokens, i),
                               loader_kind="reruns the model up to that layer")
        self._forward(tokens, {i: (lambda p, i=i: builder.add(i, p)) for i in range(len(self.layers))})
        store = builder.finish()
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return store

    def _one_layer(self, tokens: Any, index: int) -> torch.Tensor:
        got: list[torch.Tensor] = []
        self._forward(tokens, {index: got.append})
        return got[0]

    def _forward(self, tokens: Any, sinks: dict) -> None:
        """One forward pass up to the last wanted layer; ``sinks[i]`` gets shown layer i's ``[H, n, n]``."""
        def hook_for(sink: Any) -> Any:
            def hook(pattern: torch.Tensor, hook: Any = None) -> None:
                p = pattern[0]
                sink(p if self._all_heads else p.index_select(0, torch.tensor(self.heads, device=p.device)))
            return hook

        fwd_hooks = [(pattern_name(self.layers[i]), hook_for(sink)) for i, sink in sinks.items()]
        kwargs: dict[str, Any] = {"return_type": None}
        stop = max(self.layers[i] for i in sinks) + 1
        if stop < self.model.cfg.n_layers:
            kwargs["stop_at_layer"] = stop  # later layers are not needed
        with _no_grad():
            self.model.run_with_hooks(tokens, fwd_hooks=fwd_hooks, **kwargs)


def _no_grad() -> contextlib.AbstractContextManager:
    return torch.no_grad()

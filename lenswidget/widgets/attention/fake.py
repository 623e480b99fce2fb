"""A weightless stand-in for a HookedTransformer with just what the attention inspector uses.

Useful for tests and demos (e.g. browser tests) where no model is loaded. Words are
tokens (a BOS is prepended); patterns are causal and deterministic per (layer, head, n).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch


class FakeAttentionModel:
    def __init__(self, n_layers: int = 3, n_heads: int = 2, bos: str = "<bos>"):
        self.cfg = SimpleNamespace(n_layers=n_layers, n_heads=n_heads)
        self.tokenizer = SimpleNamespace(bos_token=bos)
        self.vocab: dict[str, int] = {bos: 0}
        self.runs = 0

    def to_tokens(self, text: str) -> torch.Tensor:
        ids = [0] + [self.vocab.setdefault(w, len(self.vocab)) for w in _words(text)]
        return torch.tensor([ids])

    def to_str_tokens(self, tokens: Any) -> list[str]:
        inverse = {i: w for w, i in self.vocab.items()}
        return [inverse.get(int(i), f"<{int(i)}>") for i in torch.as_tensor(tokens).reshape(-1)]

    def run_with_hooks(self, tokens: torch.Tensor, fwd_hooks: Any = (), stop_at_layer: int | None = None,
                       return_type: Any = "logits") -> None:
        """Calls each ``(name, fn)`` hook with that layer's ``[1, heads, n, n]`` pattern."""
        self.runs += 1
        n = int(tokens.shape[-1])
        stop = self.cfg.n_layers if stop_at_layer is None else stop_at_layer
        hooks = dict(fwd_hooks)
        for layer in range(stop):
            fn = hooks.get(f"blocks.{layer}.attn.hook_pattern")
            if fn is not None:
                fn(torch.from_numpy(causal_patterns(self.cfg.n_heads, n, seed=layer))[None], None)
        return None

    def run_with_cache(self, tokens: torch.Tensor, names_filter: Callable[[str], bool] | None = None,
                       stop_at_layer: int | None = None, return_type: Any = "logits") -> tuple[None, dict]:
        self.runs += 1
        n = int(tokens.shape[-1])
        stop = self.cfg.n_layers if stop_at_layer is None else stop_at_layer
        cache = {}
        for layer in range(stop):
            name = f"blocks.{layer}.attn.hook_pattern"
            if names_filter is None or names_filter(name):
                cache[name] = torch.from_numpy(causal_patterns(self.cfg.n_heads, n, seed=layer))[None]
        return None, cache


def causal_patterns(n_heads: int, n: int, seed: int = 0) -> np.ndarray:
    """Deterministic ``[n_heads, n, n]`` causal softmax patterns."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_heads, n, n)).astype(np.float32) * 2
    scores[:, np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]] = -np.inf
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _words(text: str) -> list[str]:
    out, word = [], ""
    for ch in text:
        if ch.isspace() and word:
            out.append(word)
            word = ""
        word += ch
    return out + ([word] if word else [])

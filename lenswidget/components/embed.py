"""Token embedding: ``W_E[tokens]``.

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, d_vocab=10, act_fn="relu")
>>> Embed(cfg)(torch.tensor([[1, 2]])).shape
torch.Size([1, 2, 8])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lenswidget.config import HookedTransformerConfig


class Embed(nn.Module):
    """``W_E`` [d_vocab, d_model]; with ``cfg.post_embedding_ln`` a LayerNorm ``embed.ln`` follows."""

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, dtype=cfg.dtype))
        if cfg.post_embedding_ln:
            from lenswidget.components.norms import LayerNorm

            self.ln = LayerNorm(cfg)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = F.embedding(tokens, self.W_E)
        if self.cfg.post_embedding_ln:
            x = self.ln(x)
        return x

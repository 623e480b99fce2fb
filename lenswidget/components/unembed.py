"""Unembedding: ``logits = x @ W_U + b_U``.

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, d_vocab=10, act_fn="relu")
>>> Unembed(cfg)(torch.zeros(1, 2, 8)).shape
torch.Size([1, 2, 10])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lenswidget.components.bias import maybe_bias
from lenswidget.components.layout import linear_param
from lenswidget.config import HookedTransformerConfig


class Unembed(nn.Module):
    """``W_U`` [d_model, d_vocab_out], ``b_U`` [d_vocab_out]."""

    LAYOUTS = {"W_U": (1, 0)}

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.W_U = linear_param((cfg.d_model, cfg.d_vocab_out), (1, 0), dtype=cfg.dtype)
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out, dtype=cfg.dtype))

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return F.linear(residual, self.W_U.t(), maybe_bias(self.b_U))

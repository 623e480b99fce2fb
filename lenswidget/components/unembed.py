"""Unembedding: ``logits = x @ W_U + b_U``, with hook points ``hook_in`` (the final normalised
residual) and ``hook_out`` (the logits, before any output soft cap), as in TransformerLens.

>>> from lenswidget.config import HookedTransformerConfig
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h
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
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h


class Unembed(nn.Module):
    """``W_U`` [d_model, d_vocab_out], ``b_U`` [d_vocab_out]."""

    LAYOUTS = {"W_U": (1, 0)}

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.W_U = linear_param((cfg.d_model, cfg.d_vocab_out), (1, 0), dtype=cfg.dtype)
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out, dtype=cfg.dtype))
        self.hook_in = HookPoint()  # [batch, pos, d_model]
        self.hook_out = HookPoint()  # [batch, pos, d_vocab_out]

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        residual = _h(self.hook_in, residual)
        return _h(self.hook_out, F.linear(residual, self.W_U.t(), maybe_bias(self.b_U)))

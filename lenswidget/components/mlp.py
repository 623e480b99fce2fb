"""MLPs: plain (``act(x @ W_in + b_in) @ W_out + b_out``) and gated (``act(x @ W_gate) * (x @ W_in + b_in)``).

Hooks: ``hook_pre`` [batch, pos, d_mlp] (the gate pre-activation in gated MLPs),
``hook_pre_linear`` (gated only, the linear branch) and ``hook_post`` (after activation/gating).

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, d_vocab=5, act_fn="silu", gated_mlp=True)
>>> make_mlp(cfg)(torch.zeros(1, 2, 8)).shape
torch.Size([1, 2, 8])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lenswidget.components.activations import get_act_fn
from lenswidget.components.bias import maybe_bias
from lenswidget.components.layout import linear_param
from lenswidget.config import HookedTransformerConfig
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h


class MLP(nn.Module):
    """``W_in`` [d_model, d_mlp], ``b_in`` [d_mlp], ``W_out`` [d_mlp, d_model], ``b_out`` [d_model]."""

    LAYOUTS = {"W_in": (1, 0), "W_out": (1, 0), "W_gate": (1, 0)}

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        self.cfg = cfg
        dm, dmlp, dt = cfg.d_model, cfg.d_mlp, cfg.dtype
        self.W_in = linear_param((dm, dmlp), (1, 0), dtype=dt)
        self.b_in = nn.Parameter(torch.zeros(dmlp, dtype=dt))
        self.W_out = linear_param((dmlp, dm), (1, 0), dtype=dt)
        self.b_out = nn.Parameter(torch.zeros(dm, dtype=dt))
        self.act_fn = get_act_fn(cfg.act_fn)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = _h(self.hook_pre, F.linear(x, self.W_in.t(), maybe_bias(self.b_in)))
        post = _h(self.hook_post, self.act_fn(pre))
        return F.linear(post, self.W_out.t(), maybe_bias(self.b_out))


class GatedMLP(MLP):
    """Adds ``W_gate`` [d_model, d_mlp]: ``post = act(x @ W_gate) * (x @ W_in + b_in)``."""

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__(cfg)
        self.W_gate = linear_param((cfg.d_model, cfg.d_mlp), (1, 0), dtype=cfg.dtype)
        post = self._modules.pop("hook_post")  # hook order as in TransformerLens: pre, pre_linear, post
        self.hook_pre_linear = HookPoint()
        self.hook_post = post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = _h(self.hook_pre, F.linear(x, self.W_gate.t()))
        pre_linear = _h(self.hook_pre_linear, F.linear(x, self.W_in.t(), maybe_bias(self.b_in)))
        post = _h(self.hook_post, self.act_fn(pre) * pre_linear)
        return F.linear(post, self.W_out.t(), maybe_bias(self.b_out))


def make_mlp(cfg: HookedTransformerConfig) -> MLP:
    return GatedMLP(cfg) if cfg.gated_mlp else MLP(cfg)

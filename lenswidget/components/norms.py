"""Normalisation layers with ``hook_scale`` [.., 1] and ``hook_normalized`` hook points.

LayerNorm (centre, scale, ``w``, ``b``), LayerNormPre (centre and scale only), RMSNorm
(scale, ``w``) and RMSNormPre (scale only). When neither hook point is hooked, the fused
``F.layer_norm`` / ``F.rms_norm`` kernels are used; otherwise the activations are computed
explicitly so that hooks see (and may edit) the scale and the normalised input.

In float16/bfloat16 the statistics are computed in float32. The weight is applied after
rounding back (Llama, Qwen) or, with ``cfg.norm_weight_in_float32``, in float32 before one
final rounding (Gemma, OLMo 2), as each family's reference implementation does.

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=4, n_ctx=4, n_heads=1, d_vocab=5, act_fn="relu")
>>> ln = LayerNormPre(cfg)
>>> ln(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).mean().abs() < 1e-6
tensor(True)
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lenswidget.config import HookedTransformerConfig
from lenswidget.hooks import HookPoint
from lenswidget.components.hooking import is_hooked, watch

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class _Norm(nn.Module):
    centre = True
    has_weight = True
    has_bias = True

    def __init__(self, cfg: HookedTransformerConfig, length: Optional[int] = None):
        super().__init__()
        self.cfg = cfg
        self.eps = cfg.eps
        self.length = cfg.d_model if length is None else length
        if self.has_weight:
            self.w = nn.Parameter(torch.ones(self.length, dtype=cfg.dtype))
        if self.has_bias:
            self.b = nn.Parameter(torch.zeros(self.length, dtype=cfg.dtype))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, length]

    def forward(self, x: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalise ``x`` [..., length]; ``weight`` replaces ``w`` for this call (qk-norm of ungrouped keys)."""
        w = (self.w if weight is None else weight) if self.has_weight else None
        b = self.b if self.has_bias else None
        hooked = is_hooked(self.hook_scale) or is_hooked(self.hook_normalized)
        in_dtype = x.dtype
        low = in_dtype in _LOW_PRECISION
        if not hooked and not low:
            return self._fused(x, w, b)
        if low:
            x = x.float()
        if hooked:
            xc = x - x.mean(-1, keepdim=True) if self.centre else x
            scale, edited = watch(self.hook_scale, (xc.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
            out, edited_n = watch(self.hook_normalized, xc / scale)
            if low and not (edited or edited_n):
                out = self._fused(x, None, None)  # watching hooks keep the unhooked result exactly
        else:
            out = self._fused(x, None, None)
        if low and self.cfg.norm_weight_in_float32:
            if w is not None:
                out = out * w.float()
            if b is not None:
                out = out + b.float()
            return out.to(in_dtype)
        if low:
            out = out.to(in_dtype)
        if w is not None:
            out = out * w
        if b is not None:
            out = out + b
        return out

    def _fused(self, x: torch.Tensor, w, b) -> torch.Tensor:
        if self.centre:
            return F.layer_norm(x, (self.length,), w, b, self.eps)
        return F.rms_norm(x, (self.length,), w, self.eps)


class LayerNorm(_Norm):
    """``(x - mean) / sqrt(var + eps) * w + b``."""


class LayerNormPre(_Norm):
    """LayerNorm without weights (after ``fold_ln``): centre and scale only."""

    has_weight = False
    has_bias = False


class RMSNorm(_Norm):
    """``x / sqrt(mean(x^2) + eps) * w``."""

    centre = False
    has_bias = False


class RMSNormPre(_Norm):
    """RMSNorm without weights (after ``fold_ln``)."""

    centre = False
    has_weight = False
    has_bias = False


NORMS = {"LN": LayerNorm, "LNPre": LayerNormPre, "RMS": RMSNorm, "RMSPre": RMSNormPre}


def make_norm(cfg: HookedTransformerConfig, final: bool = False, length: Optional[int] = None) -> Optional[nn.Module]:
    """The norm module for ``cfg.normalization_type`` (None when there is no normalisation).

    ``final=True`` honours ``cfg.final_rms`` (an RMSNorm final norm in an LN model).
    """
    kind = cfg.normalization_type
    if kind is None:
        return None
    if final and cfg.final_rms and kind == "LN":
        kind = "RMS"
    elif final and cfg.final_rms and kind == "LNPre":
        kind = "RMSPre"
    return NORMS[kind](cfg, length)


def make_post_norm(cfg: HookedTransformerConfig) -> Optional[nn.Module]:
    """The norm applied to a sublayer's output (Gemma-2 ``ln1_post``/``ln2_post``).

    Weight processing never folds these (nothing linear follows them inside the sublayer), so
    they keep their weights even when ``cfg.normalization_type`` says the pre-norms were folded.
    """
    kind = {"LNPre": "LN", "RMSPre": "RMS"}.get(cfg.normalization_type, cfg.normalization_type)
    return None if kind is None else NORMS[kind](cfg, None)


def make_qk_norm(cfg: HookedTransformerConfig, length: int) -> RMSNorm:
    """The RMSNorm applied to queries or keys (``cfg.use_qk_norm``) over ``length`` features.

    It keeps its weight whatever ``cfg.normalization_type`` says: it follows a projection, so
    weight processing has nothing to fold it into.
    """
    return RMSNorm(cfg, length)

"""Multi-head attention (and grouped-query attention) with TransformerLens hook points.

Hooks: ``hook_q/k/v`` [batch, pos, head, d_head] (GQA keys/values carry
``n_key_value_heads`` heads unless ``cfg.ungroup_grouped_query_attention``), ``hook_rot_q/k``
(rotary only), ``hook_attn_scores`` and ``hook_pattern`` [batch, head, q_pos, k_pos],
``hook_z`` [batch, pos, head, d_head] and ``hook_result`` [batch, pos, head, d_model]
(always present, as in TransformerLens; it only fires with ``cfg.use_attn_result``).

Scores and pattern are only materialised when one of their hook points is hooked (or a soft
cap needs them); otherwise ``F.scaled_dot_product_attention`` computes the same output.

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, d_vocab=5, act_fn="relu")
>>> attn = Attention(cfg)
>>> _ = torch.nn.init.normal_(attn.W_Q)
>>> attn(torch.randn(1, 3, 8)).shape
torch.Size([1, 3, 8])
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lenswidget.components.bias import maybe_bias
from lenswidget.components.layout import linear_param
from lenswidget.components.masking import attention_spec, positions_from_mask
from lenswidget.components.rotary import RotaryTable, apply_rotary
from lenswidget.config import HookedTransformerConfig
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _project(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x @ W + b`` per head: x [b, p, d_model] or per-head [b, p, h, d_model] -> [b, p, h, d_head]."""
    h, d_model, d_head = W.shape
    if x.dim() == 3:
        weight = W.transpose(1, 2).reshape(h * d_head, d_model)  # free for the linear_param layout
        bias = maybe_bias(b)
        return F.linear(x, weight, None if bias is None else bias.reshape(h * d_head)).unflatten(-1, (h, d_head))
    if x.shape[2] != h:  # per-head inputs for ungrouped GQA keys/values
        W, b = W.repeat_interleave(x.shape[2] // h, 0), b.repeat_interleave(x.shape[2] // h, 0)
    return torch.einsum("bphm,hmd->bphd", x, W) + b


class Attention(nn.Module):
    """Attention of block ``layer_id``; ``rotary`` is the model's shared RotaryTable (rotary only)."""

    #: storage order of each weight (see components.layout): [out, in] buffers, TL-shaped views
    LAYOUTS = {"W_Q": (0, 2, 1), "W_K": (0, 2, 1), "W_V": (0, 2, 1), "W_O": (2, 0, 1)}

    def __init__(self, cfg: HookedTransformerConfig, layer_id: int = 0, rotary: Optional[RotaryTable] = None):
        super().__init__()
        self.cfg = cfg
        self.layer_id = layer_id
        n, dm, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        dt = cfg.dtype
        self.W_Q = linear_param((n, dm, dh), (0, 2, 1), dtype=dt)
        self._init_kv_params()
        self.W_O = linear_param((n, dh, dm), (2, 0, 1), dtype=dt)
        self.b_Q = nn.Parameter(torch.zeros(n, dh, dtype=dt))
        self.b_O = nn.Parameter(torch.zeros(dm, dtype=dt))

        scale = cfg.attn_scale if cfg.use_attn_scale else 1.0
        if cfg.scale_attn_by_inverse_layer_idx:
            scale *= layer_id + 1
        self.attn_scale = scale
        self.window = cfg.layer_window(layer_id)

        self.hook_k = HookPoint()
        self.hook_q = HookPoint()
        self.hook_v = HookPoint()
        self.hook_z = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_result = HookPoint()  # fires only with cfg.use_attn_result
        if cfg.positional_embedding_type == "shortformer":
            self.hook_attn_input = HookPoint()  # created (never fired) as in TransformerLens
        if cfg.positional_embedding_type == "rotary":
            self.hook_rot_k = HookPoint()
            self.hook_rot_q = HookPoint()
            object.__setattr__(self, "rotary", rotary if rotary is not None else RotaryTable.from_config(cfg))
        else:
            object.__setattr__(self, "rotary", None)

    def _new_kv_params(self, n: int) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter, nn.Parameter]:
        """Fresh ``(W_K, W_V, b_K, b_V)`` for ``n`` key/value heads."""
        cfg = self.cfg
        dm, dh = cfg.d_model, cfg.d_head
        W_K = linear_param((n, dm, dh), (0, 2, 1), dtype=cfg.dtype)
        W_V = linear_param((n, dm, dh), (0, 2, 1), dtype=cfg.dtype)
        b_K = nn.Parameter(torch.zeros(n, dh, dtype=cfg.dtype))
        b_V = nn.Parameter(torch.zeros(n, dh, dtype=cfg.dtype))
        return W_K, W_V, b_K, b_V

    def _init_kv_params(self) -> None:
        self.W_K, self.W_V, self.b_K, self.b_V = self._new_kv_params(self.cfg.n_heads)

    # grouped weights as stored (overridden by GQA); these feed the projections
    def _kv_weights(self):
        return self.W_K, self.b_K, self.W_V, self.b_V

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        query_input: torch.Tensor,
        key_input: Optional[torch.Tensor] = None,
        value_input: Optional[torch.Tensor] = None,
        past_kv_cache_entry=None,
        attention_mask: Optional[torch.Tensor] = None,
        positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Attention output [batch, pos, d_model].

        ``attention_mask`` [batch, past + pos] marks real tokens (1) and padding (0);
        ``positions`` [batch, pos] overrides rotary positions (derived from the mask otherwise).
        """
        cfg = self.cfg
        key_input = query_input if key_input is None else key_input
        value_input = key_input if value_input is None else value_input
        W_K, b_K, W_V, b_V = self._kv_weights()
        q = _project(query_input, self.W_Q, self.b_Q)
        k = _project(key_input, W_K, b_K)
        v = _project(value_input, W_V, b_V)
        groups = cfg.n_heads // k.shape[2]
        if groups > 1 and cfg.ungroup_grouped_query_attention:
            k = k.repeat_interleave(groups, dim=2)
            v = v.repeat_interleave(groups, dim=2)
            groups = 1
        q = _h(self.hook_q, q)
        k = _h(self.hook_k, k)
        v = _h(self.hook_v, v)

        q_len = q.shape[1]
        past_len = past_kv_cache_entry.length if past_kv_cache_entry is not None else 0
        if self.rotary is not None:
            if positions is None and attention_mask is not None:
                positions = positions_from_mask(attention_mask, past_len, q_len)
            cos, sin = self.rotary.for_positions(positions, past_len, q_len, q.device, q.dtype)
            rd, adj = self.rotary.rotary_dim, self.rotary.adjacent_pairs
            q = _h(self.hook_rot_q, apply_rotary(q, cos, sin, rd, adj))
            k = _h(self.hook_rot_k, apply_rotary(k, cos, sin, rd, adj))
        if past_kv_cache_entry is not None:
            k, v = past_kv_cache_entry.append(k, v)

        spec = attention_spec(
            attention_mask, q_len, k.shape[1], self.window, cfg.attention_dir == "causal", q.device
        )
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        materialise = (
            cfg.attn_scores_soft_cap > 0
            or bool(self.hook_attn_scores._forward_hooks)
            or bool(self.hook_pattern._forward_hooks)
        )
        if materialise:
            z = self._explicit_attention(qh, kh, vh, spec, groups)
        else:
            mask = spec.sdpa_mask
            use_gqa = groups > 1 and mask is None
            if groups > 1 and not use_gqa:
                kh = kh.repeat_interleave(groups, dim=1)
                vh = vh.repeat_interleave(groups, dim=1)
            z = F.scaled_dot_product_attention(
                qh, kh, vh, attn_mask=mask, is_causal=spec.is_causal, scale=1.0 / self.attn_scale, enable_gqa=use_gqa
            )
            if spec.zero_rows is not None:
                z = z.masked_fill(spec.zero_rows, 0.0)
        z = _h(self.hook_z, z.transpose(1, 2))
        return self._output(z)

    def _explicit_attention(self, qh, kh, vh, spec, groups: int) -> torch.Tensor:
        cfg = self.cfg
        if groups > 1:
            kh = kh.repeat_interleave(groups, dim=1)
            vh = vh.repeat_interleave(groups, dim=1)
        if qh.dtype in _LOW_PRECISION:
            scores = torch.matmul(qh.float(), kh.float().transpose(-1, -2))
        else:
            scores = torch.matmul(qh, kh.transpose(-1, -2))
        scores.div_(self.attn_scale)  # in place on the fresh matmul output: no extra tensor
        if cfg.attn_scores_soft_cap > 0:
            cap = cfg.attn_scores_soft_cap
            scores = cap * torch.tanh(scores / cap)
        mask = spec.score_mask()
        if mask is not None:
            scores.masked_fill_(~mask, float("-inf"))
        scores = _h(self.hook_attn_scores, scores)
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32 if scores.dtype in _LOW_PRECISION else None)
        # fully masked rows give NaN: make them 0 (in place unless autograd needs the softmax output)
        pattern = pattern.nan_to_num(nan=0.0) if pattern.requires_grad else pattern.nan_to_num_(nan=0.0)
        pattern = _h(self.hook_pattern, pattern)
        return torch.matmul(pattern.to(vh.dtype), vh)

    def _output(self, z: torch.Tensor) -> torch.Tensor:
        batch, pos, n, dh = z.shape
        if self.cfg.use_attn_result:
            result = _h(self.hook_result, torch.einsum("bpnd,ndm->bpnm", z, self.W_O))
            return result.sum(-2) + self.b_O
        weight = self.W_O.permute(2, 0, 1).reshape(self.cfg.d_model, n * dh)  # free for our layout
        return F.linear(z.reshape(batch, pos, n * dh), weight, maybe_bias(self.b_O))


class GroupedQueryAttention(Attention):
    """Attention whose keys/values have ``n_key_value_heads`` heads shared by groups of queries.

    Parameters ``_W_K``, ``_W_V`` [n_kv, d_model, d_head] and ``_b_K``, ``_b_V`` [n_kv, d_head];
    the properties ``W_K`` etc. expand them to ``n_heads`` (repeat_interleave).
    """

    LAYOUTS = {"W_Q": (0, 2, 1), "_W_K": (0, 2, 1), "_W_V": (0, 2, 1), "W_O": (2, 0, 1)}

    def _init_kv_params(self) -> None:
        self._W_K, self._W_V, self._b_K, self._b_V = self._new_kv_params(self.cfg.n_key_value_heads)

    def _kv_weights(self):
        return self._W_K, self._b_K, self._W_V, self._b_V

    @property
    def repeat_kv_heads(self) -> int:
        return self.cfg.n_heads // self.cfg.n_key_value_heads

    @property
    def W_K(self) -> torch.Tensor:
        return self._W_K.repeat_interleave(self.repeat_kv_heads, dim=0)

    @property
    def W_V(self) -> torch.Tensor:
        return self._W_V.repeat_interleave(self.repeat_kv_heads, dim=0)

    @property
    def b_K(self) -> torch.Tensor:
        return self._b_K.repeat_interleave(self.repeat_kv_heads, dim=0)

    @property
    def b_V(self) -> torch.Tensor:
        return self._b_V.repeat_interleave(self.repeat_kv_heads, dim=0)


def make_attention(cfg: HookedTransformerConfig, layer_id: int, rotary: Optional[RotaryTable] = None) -> Attention:
    cls = GroupedQueryAttention if cfg.is_gqa else Attention
    return cls(cfg, layer_id, rotary)

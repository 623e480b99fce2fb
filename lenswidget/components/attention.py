"""Multi-head attention (and grouped-query attention) with TransformerLens hook points.

Hooks: ``hook_q/k/v`` [batch, pos, head, d_head] (GQA keys/values carry
``n_key_value_heads`` heads unless ``cfg.ungroup_grouped_query_attention``), with
``cfg.use_qk_norm`` then ``q_norm``/``k_norm`` (RMSNorms with ``hook_scale`` and
``hook_normalized``), ``hook_rot_q/k`` (rotary only), ``hook_attn_scores`` and
``hook_pattern`` [batch, head, q_pos, k_pos], ``hook_z`` [batch, pos, head, d_head] and
``hook_result`` [batch, pos, head, d_model] (always present, as in TransformerLens; it only
fires with ``cfg.use_attn_result``).

The forward pass is built from pieces that the patching engine and the patcher call too:
:meth:`Attention.project` (q/k/v), :meth:`~Attention.norm_q`/:meth:`~Attention.norm_k`
(qk-norm), :meth:`~Attention.rotate` (rotary), the kernel
(:func:`~lenswidget.components.attention_kernel.attend`, also over a shared prefix of keys)
and :meth:`~Attention.output` (the O projection).

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

from lenswidget.components.attention_kernel import attend
from lenswidget.components.bias import maybe_bias
from lenswidget.components.layout import linear_param
from lenswidget.components.masking import attention_spec, positions_from_mask
from lenswidget.components.norms import make_qk_norm
from lenswidget.components.rotary import RotaryTable, apply_rotary
from lenswidget.config import HookedTransformerConfig
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h


def _project(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, per_head: bool) -> torch.Tensor:
    """``x @ W + b`` per head: x [..., pos, d_model] or per-head [..., pos, h, d_model] -> [..., pos, h, d_head]."""
    h, d_model, d_head = W.shape
    if not per_head:
        weight = W.transpose(1, 2).reshape(h * d_head, d_model)  # free for the linear_param layout
        bias = maybe_bias(b)
        return F.linear(x, weight, None if bias is None else bias.reshape(h * d_head)).unflatten(-1, (h, d_head))
    if x.shape[-2] != h:  # per-head inputs for ungrouped GQA keys/values
        W, b = W.repeat_interleave(x.shape[-2] // h, 0), b.repeat_interleave(x.shape[-2] // h, 0)
    return torch.einsum("...hm,hmd->...hd", x, W) + b


class Attention(nn.Module):
    """Attention of block ``layer_id``; ``rotary`` is its (possibly shared) RotaryTable."""

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
        if cfg.use_qk_norm:
            full = cfg.qk_norm_scope == "full"  # over all heads at once (OLMo 2) or per head
            self.q_norm = make_qk_norm(cfg, n * dh if full else dh)
            self.k_norm = make_qk_norm(cfg, cfg.n_kv_heads * dh if full else dh)

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
            object.__setattr__(self, "rotary", rotary if rotary is not None else RotaryTable.from_config(cfg, layer_id))
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

    # ------------------------------------------------------------------ pieces
    @property
    def n_hook_kv_heads(self) -> int:
        """Heads of ``hook_k``/``hook_v``: the key/value heads, or n_heads when ungrouped."""
        return self.cfg.n_heads if self.cfg.ungroup_grouped_query_attention else self.cfg.n_kv_heads

    def project(self, query_input: torch.Tensor, key_input: Optional[torch.Tensor] = None,
                value_input: Optional[torch.Tensor] = None, per_head: Optional[bool] = None):
        """q [..., pos, n_heads, d_head], k, v [..., pos, n_hook_kv_heads, d_head] through
        ``hook_q/k/v`` (before qk-norm and rotary). Inputs are [..., pos, d_model], or per head
        [..., pos, heads, d_model] with ``per_head=True`` (default: 4-D inputs of a split block)."""
        cfg = self.cfg
        key_input = query_input if key_input is None else key_input
        value_input = key_input if value_input is None else value_input
        if per_head is None:
            per_head = cfg.use_attn_in or cfg.use_split_qkv_input
        W_K, b_K, W_V, b_V = self._kv_weights()
        q = _project(query_input, self.W_Q, self.b_Q, per_head)
        k = _project(key_input, W_K, b_K, per_head)
        v = _project(value_input, W_V, b_V, per_head)
        groups = cfg.n_heads // k.shape[-2]
        if groups > 1 and cfg.ungroup_grouped_query_attention:
            k = k.repeat_interleave(groups, dim=-2)
            v = v.repeat_interleave(groups, dim=-2)
        return _h(self.hook_q, q), _h(self.hook_k, k), _h(self.hook_v, v)

    def fused_qkv_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [(n_heads + 2 n_kv) d_head, d_model], bias) of q, k and v stacked: one GEMM
        for callers that project one input many times (the patching engine keeps it per sweep)."""
        W_K, b_K, W_V, b_V = self._kv_weights()
        dm = self.cfg.d_model
        w = torch.cat([W.transpose(1, 2).reshape(-1, dm) for W in (self.W_Q, W_K, W_V)], 0).detach()
        b = torch.cat([self.b_Q.reshape(-1), b_K.reshape(-1), b_V.reshape(-1)], 0).detach()
        return w, b

    def project_fused(self, x: torch.Tensor, fused: tuple[torch.Tensor, torch.Tensor]):
        """:meth:`project` of one shared input x [..., pos, d_model] with :meth:`fused_qkv_weight`'s GEMM."""
        cfg = self.cfg
        n, kv, dh = cfg.n_heads, self._kv_weights()[0].shape[0], cfg.d_head
        q, k, v = F.linear(x, *fused).split([n * dh, kv * dh, kv * dh], dim=-1)
        q, k, v = q.unflatten(-1, (n, dh)), k.unflatten(-1, (kv, dh)), v.unflatten(-1, (kv, dh))
        if kv != n and cfg.ungroup_grouped_query_attention:
            k, v = k.repeat_interleave(n // kv, dim=-2), v.repeat_interleave(n // kv, dim=-2)
        return _h(self.hook_q, q), _h(self.hook_k, k), _h(self.hook_v, v)

    def _qk_norm(self, norm: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
        if norm is None:
            return x
        if self.cfg.qk_norm_scope == "head":  # as TransformerLens: hooks see [-1, d_head]
            return norm(x.reshape(-1, x.shape[-1])).view(x.shape)
        flat = x.flatten(-2)
        if flat.shape[-1] != norm.length:  # keys ungrouped for the hooks: same statistics, weight per copy
            reps = flat.shape[-1] // norm.length
            w = norm.w.view(-1, x.shape[-1]).repeat_interleave(reps, 0).flatten()
            return norm(flat, weight=w).view(x.shape)
        return norm(flat).view(x.shape)

    def norm_q(self, q: torch.Tensor) -> torch.Tensor:
        """qk-norm of queries [..., pos, head, d_head] (identity without ``cfg.use_qk_norm``)."""
        return self._qk_norm(self._modules.get("q_norm"), q)

    def norm_k(self, k: torch.Tensor) -> torch.Tensor:
        """qk-norm of keys [..., pos, head, d_head] (identity without ``cfg.use_qk_norm``)."""
        return self._qk_norm(self._modules.get("k_norm"), k)

    def rotate(self, x: torch.Tensor, positions: Optional[torch.Tensor] = None, offset: int = 0,
               seq_len: Optional[int] = None) -> torch.Tensor:
        """Rotary embedding of x [..., pos, head, d_head] at ``positions`` ([batch, pos] or [pos]),
        or at ``offset .. offset+pos-1``; ``seq_len`` picks longrope's factors (see RotaryTable)."""
        if self.rotary is None:
            return x
        cos, sin = self.rotary.for_positions(positions, offset, x.shape[-3], x.device, x.dtype, seq_len)
        return apply_rotary(x, cos, sin, self.rotary.rotary_dim, self.rotary.adjacent_pairs)

    def output(self, z: torch.Tensor, per_head: Optional[bool] = None) -> torch.Tensor:
        """O projection: z [..., pos, head, d_head] -> [..., pos, d_model]; per head (through
        ``hook_result``) when ``per_head`` (default ``cfg.use_attn_result``)."""
        if self.cfg.use_attn_result if per_head is None else per_head:
            result = _h(self.hook_result, torch.einsum("...nd,ndm->...nm", z, self.W_O))
            return self.combine_heads(result)
        n, dh = z.shape[-2], z.shape[-1]
        weight = self.W_O.permute(2, 0, 1).reshape(self.cfg.d_model, n * dh)  # free for our layout
        return F.linear(z.flatten(-2), weight, maybe_bias(self.b_O))

    def combine_heads(self, result: torch.Tensor) -> torch.Tensor:
        """Attention output from per-head results [..., pos, head, d_model]."""
        return result.sum(-2) + self.b_O

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
        q, k, v = self.project(query_input, key_input, value_input)
        q, k = self.norm_q(q), self.norm_k(k)
        q_len = q.shape[1]
        past_len = past_kv_cache_entry.length if past_kv_cache_entry is not None else 0
        if self.rotary is not None:
            if positions is None and attention_mask is not None:
                positions = positions_from_mask(attention_mask, past_len, q_len)
            q = _h(self.hook_rot_q, self.rotate(q, positions, past_len))
            k = _h(self.hook_rot_k, self.rotate(k, positions, past_len))
        if past_kv_cache_entry is not None:
            k, v = past_kv_cache_entry.append(k, v)
        spec = attention_spec(attention_mask, q_len, k.shape[1], self.window, cfg.attention_dir == "causal", q.device)
        z = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), spec, self.attn_scale,
                   cfg.attn_scores_soft_cap, scores_hook=self.hook_attn_scores, pattern_hook=self.hook_pattern)
        z = _h(self.hook_z, z.transpose(1, 2))
        return self.output(z)


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

"""The model's pieces as plain functions, for recomputing part of a forward pass.

Nothing here re-implements the model: norms, projections, qk-norm, rotary, the attention
kernel (:func:`lenswidget.components.attention_kernel.attend`, here over a prefix of keys
shared by many patched runs), the O projection and the MLP are the block's own pieces
(:class:`~lenswidget.components.attention.Attention`,
:class:`~lenswidget.components.block.TransformerBlock`).

:func:`unsupported_reason` says why a model cannot take the fast path (the engine then uses
the exact hook-based path).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from lenswidget.components.attention_kernel import attend
from lenswidget.components.masking import spec_for_positions

__all__ = ["ModelOps", "LayerOps", "unsupported_reason"]


def _identity(x):
    return x


def unsupported_reason(model) -> Optional[str]:
    """Why the fast engine cannot run ``model`` exactly (None when it can)."""
    cfg = model.cfg
    if cfg.attention_dir != "causal":
        return "bidirectional attention (a patch can reach earlier positions)"
    if cfg.positional_embedding_type == "shortformer":
        return "shortformer positional embeddings"
    if cfg.use_qk_norm and cfg.positional_embedding_type != "rotary":
        return "qk-norm without rotary embeddings (no hook holds the normalised keys)"
    if getattr(cfg, "num_experts", None):
        return "mixture-of-experts MLPs"
    if "_placement" in model.__dict__:
        return "the model is placed over several devices (device_map); its forward moves the residual stream"
    for name, mod in model.named_modules():
        if mod._forward_hooks or mod._forward_pre_hooks:
            return f"the model has hooks attached ({name or 'model'}); they must run, so the hook-based path is used"
    return None


class LayerOps:
    """Block ``l``'s pieces, on tensors with any leading dims ([runs, batch, pos, ...])."""

    def __init__(self, model, l: int, seq_len: Optional[int] = None):
        cfg = model.cfg
        block = model.blocks[l]
        self.block, self.attn = block, block.attn
        self.l = l
        self.seq_len = seq_len  # length of the full runs (picks longrope's factors as they did)
        self.n_heads, self.d_head, self.d_model = cfg.n_heads, cfg.d_head, cfg.d_model
        self.hook_kv = block.attn.n_hook_kv_heads  # heads of hook_k / hook_v
        self.window = block.attn.window
        self.scale = float(block.attn.attn_scale)
        self.soft_cap = float(cfg.attn_scores_soft_cap)
        self.qk_norm_across_heads = bool(cfg.use_qk_norm and cfg.qk_norm_scope == "full")
        self.fused = block.attn.fused_qkv_weight()  # one GEMM for q, k, v, for this sweep

    def attn_in(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.attn_input_norm(x)

    def qkv(self, x_normed: torch.Tensor):
        """q [..., pos, n_heads, d_head] and k after qk-norm (before rotary); v [..., pos, hook_kv, d_head]."""
        q, k, v = self.attn.project_fused(x_normed, self.fused)
        return self.attn.norm_q(q), self.attn.norm_k(k), v

    def norm_q(self, q: torch.Tensor) -> torch.Tensor:
        return self.attn.norm_q(q)

    def norm_k(self, k: torch.Tensor) -> torch.Tensor:
        return self.attn.norm_k(k)

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rotary embeddings of ``x`` [..., pos, head, d_head] at absolute ``positions`` [pos]."""
        return self.attn.rotate(x, positions, seq_len=self.seq_len)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               prefix: Optional[Tuple[torch.Tensor, torch.Tensor]], q_pos: torch.Tensor) -> torch.Tensor:
        """z [R, B, n_q, H, d_head] of rotated q [R, B, n_q, H, d] at ``q_pos`` against k, v
        [R, B, S, H_kv, d] (positions ``P .. P+S-1``) and the shared ``prefix`` [B, H_kv, P, d]."""
        P = 0 if prefix is None else prefix[0].shape[-2]
        spec = spec_for_positions(q_pos, P + k.shape[-3], self.window)
        z = attend(q.transpose(-2, -3), k.transpose(-2, -3), v.transpose(-2, -3), spec, self.scale,
                   self.soft_cap, prefix=prefix)
        return z.transpose(-2, -3)

    def attn_out(self, z: torch.Tensor) -> torch.Tensor:
        """``hook_attn_out`` from z [..., pos, head, d_head] (O projection, then any output norm)."""
        return self.block.attn_output_norm(self.attn.output(z, per_head=False))

    def attn_out_from_result(self, result: torch.Tensor) -> torch.Tensor:
        """``hook_attn_out`` from per-head results [..., pos, head, d_model]."""
        return self.block.attn_output_norm(self.attn.combine_heads(result))

    def mlp_out(self, mlp_in: torch.Tensor) -> torch.Tensor:
        """``hook_mlp_out`` from the MLP's residual input."""
        return self.block.mlp_output(mlp_in)


class ModelOps:
    """Every layer's :class:`LayerOps` plus the final norm and unembed."""

    def __init__(self, model, seq_len: Optional[int] = None):
        cfg = model.cfg
        self.model = model
        self.cfg = cfg
        self.n_layers = cfg.n_layers
        self.parallel = bool(cfg.parallel_attn_mlp)
        self.attn_only = bool(cfg.attn_only)
        self.layers: List[LayerOps] = [LayerOps(model, l, seq_len) for l in range(cfg.n_layers)]
        self.ln_final = _identity if model.ln_final is None else model.ln_final
        self.logit_cap = float(cfg.output_logits_soft_cap)
        self.d_vocab = cfg.d_vocab_out
        self.dtype = model.unembed.W_U.dtype

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm, unembed and output soft cap."""
        logits = self.model.unembed(self.ln_final(resid))
        if self.logit_cap > 0:
            logits = self.logit_cap * torch.tanh(logits / self.logit_cap)
        return logits

"""The model's pieces as plain functions, for recomputing part of a forward pass.

Norms, MLPs, the rotary table and the unembed are the model's own modules; only the
attention is recomputed here (so that many patched runs can share one cached prefix of
keys/values). Q, K and V are projected with one fused GEMM of the attention's weights.

:func:`unsupported_reason` says why a model cannot take the fast path (the engine then uses
the exact hook-based path).
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F

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
    if getattr(cfg, "num_experts", None):
        return "mixture-of-experts MLPs"
    if "_placement" in model.__dict__:
        return "the model is placed over several devices (device_map); its forward moves the residual stream"
    for name, mod in model.named_modules():
        if mod._forward_hooks or mod._forward_pre_hooks:
            return f"the model has hooks attached ({name or 'model'}); they must run, so the hook-based path is used"
    return None


class LayerOps:
    """Block ``l``: norms, fused QKV projection, rotary, attention settings, O, MLP."""

    def __init__(self, model, l: int):
        cfg = model.cfg
        block = model.blocks[l]
        attn = block.attn
        mods = block._modules
        self.l = l
        self.ln1 = _identity if mods.get("ln1") is None else mods["ln1"]
        self.ln2 = _identity if mods.get("ln2") is None else mods["ln2"]
        self.ln1_post = mods.get("ln1_post") if cfg.use_normalization_before_and_after else None
        self.ln2_post = mods.get("ln2_post") if cfg.use_normalization_before_and_after else None
        self.mlp = None if cfg.attn_only else block.mlp
        self.n_heads, self.d_head, self.d_model = cfg.n_heads, cfg.d_head, cfg.d_model
        W_K, b_K, W_V, b_V = attn._kv_weights()
        self.n_kv = W_K.shape[0]  # heads of the projection (grouped for GQA)
        self.ungroup = self.n_kv != self.n_heads and bool(cfg.ungroup_grouped_query_attention)
        H, dh, dm = self.n_heads, self.d_head, self.d_model
        w = [attn.W_Q.transpose(1, 2).reshape(H * dh, dm)]
        w += [W.transpose(1, 2).reshape(self.n_kv * dh, dm) for W in (W_K, W_V)]
        b = [attn.b_Q.reshape(-1), b_K.reshape(-1), b_V.reshape(-1)]
        self.w_qkv = torch.cat(w, 0).detach()
        self.b_qkv = torch.cat(b, 0).detach()
        self.w_o = attn.W_O.permute(2, 0, 1).reshape(dm, H * dh).detach()
        self.b_o = attn.b_O.detach()
        self.scale = float(attn.attn_scale)
        self.window = attn.window
        self.soft_cap = float(cfg.attn_scores_soft_cap)
        self.rotary = attn.rotary

    # heads carried by hook_k / hook_v (n_heads when ungrouped)
    @property
    def hook_kv(self) -> int:
        return self.n_heads if self.ungroup else self.n_kv

    def qkv(self, x_normed: torch.Tensor):
        """q [..., pos, n_heads, d_head]; k, v [..., pos, hook_kv, d_head] (as hook_q/k/v see them)."""
        H, dh, kv = self.n_heads, self.d_head, self.n_kv
        out = F.linear(x_normed, self.w_qkv, self.b_qkv)
        q, k, v = out.split([H * dh, kv * dh, kv * dh], dim=-1)
        q = q.unflatten(-1, (H, dh))
        k = k.unflatten(-1, (kv, dh))
        v = v.unflatten(-1, (kv, dh))
        if self.ungroup:
            g = H // kv
            k, v = k.repeat_interleave(g, dim=-2), v.repeat_interleave(g, dim=-2)
        return q, k, v

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Apply rotary embeddings to ``x`` [..., pos, head, d_head] at absolute ``positions`` [pos]."""
        if self.rotary is None:
            return x
        from lenswidget.components.rotary import apply_rotary

        n = int(positions.max()) + 1 if positions.numel() else 1
        cos, sin = self.rotary.cos_sin(n, x.device, x.dtype)
        cos, sin = cos[positions][:, None, :], sin[positions][:, None, :]
        return apply_rotary(x, cos, sin, self.rotary.rotary_dim, self.rotary.adjacent_pairs)

    def o(self, z: torch.Tensor) -> torch.Tensor:
        """Attention output before any post-norm: ``z [..., pos, head, d_head] -> [..., pos, d_model]``."""
        return F.linear(z.flatten(-2), self.w_o, self.b_o)

    def attn_out(self, z: torch.Tensor) -> torch.Tensor:
        """``hook_attn_out`` from z (O projection, then ln1_post if the model has post-norms)."""
        out = self.o(z)
        return out if self.ln1_post is None else self.ln1_post(out)

    def mlp_out(self, mlp_in: torch.Tensor) -> torch.Tensor:
        """``hook_mlp_out`` from the MLP's residual input (ln2, MLP, ln2_post)."""
        out = self.mlp(self.ln2(mlp_in))
        return out if self.ln2_post is None else self.ln2_post(out)


class ModelOps:
    """Every layer's :class:`LayerOps` plus the final norm and unembed."""

    def __init__(self, model):
        cfg = model.cfg
        self.model = model
        self.cfg = cfg
        self.n_layers = cfg.n_layers
        self.parallel = bool(cfg.parallel_attn_mlp)
        self.attn_only = bool(cfg.attn_only)
        self.layers: List[LayerOps] = [LayerOps(model, l) for l in range(cfg.n_layers)]
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

"""One transformer block: ``resid_pre -> (ln1, attn) -> resid_mid -> (ln2, mlp) -> resid_post``.

Variants: ``parallel_attn_mlp`` (attn and MLP both read resid_pre; no resid_mid),
``attn_only`` (no MLP), ``use_normalization_before_and_after`` (Gemma-2 post-norms ``ln1_post``,
``ln2_post``). Optional hook points follow the config flags: ``hook_attn_in``
(use_attn_in), ``hook_q/k/v_input`` (use_split_qkv_input), ``hook_mlp_in`` (use_hook_mlp_in).

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, d_vocab=5, act_fn="relu")
>>> TransformerBlock(cfg, 0)(torch.zeros(1, 3, 8)).shape
torch.Size([1, 3, 8])
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from lenswidget.components.attention import make_attention
from lenswidget.components.mlp import make_mlp
from lenswidget.components.norms import make_norm, make_post_norm
from lenswidget.components.rotary import RotaryTable
from lenswidget.config import HookedTransformerConfig
from lenswidget.hooks import HookPoint
from lenswidget.hooks import hook_or_pass as _h


def _identity(x):
    return x


class TransformerBlock(nn.Module):
    """Block ``block_index``. Call as ``block(resid, past_kv_cache_entry, attention_mask, positions)``."""

    def __init__(self, cfg: HookedTransformerConfig, block_index: int, rotary: Optional[RotaryTable] = None):
        super().__init__()
        self.cfg = cfg
        self.layer_id = block_index
        self.ln1 = make_norm(cfg)
        self.attn = make_attention(cfg, block_index, rotary)
        if cfg.use_normalization_before_and_after:
            self.ln1_post = make_post_norm(cfg)
        if not cfg.attn_only:
            self.ln2 = make_norm(cfg)
            self.mlp = make_mlp(cfg)
            if cfg.use_normalization_before_and_after:
                self.ln2_post = make_post_norm(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        if not cfg.attn_only:
            if not cfg.parallel_attn_mlp:
                self.hook_resid_mid = HookPoint()
            self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        self.sync_optional_hooks()

    def rebuild_norms(self) -> None:
        """Recreate ln1/ln2 for the current ``cfg.normalization_type`` (after folding)."""
        self.ln1 = make_norm(self.cfg)
        if not self.cfg.attn_only:
            self.ln2 = make_norm(self.cfg)

    def sync_optional_hooks(self) -> None:
        """Create/remove the optional hook points to match the config flags."""
        cfg = self.cfg
        wanted = {
            "hook_attn_in": cfg.use_attn_in,
            "hook_q_input": cfg.use_split_qkv_input,
            "hook_k_input": cfg.use_split_qkv_input,
            "hook_v_input": cfg.use_split_qkv_input,
            "hook_mlp_in": cfg.use_hook_mlp_in and not cfg.attn_only,
        }
        for name, want in wanted.items():
            has = name in self._modules
            if want and not has:
                setattr(self, name, HookPoint())
            elif has and not want:
                self._modules[name].remove_hooks("both", including_permanent=True)
                del self._modules[name]
        self.attn.sync_optional_hooks()

    def _norm(self, name: str):
        mod = self._modules.get(name)
        return _identity if mod is None else mod

    def forward(
        self,
        resid_pre: torch.Tensor,
        past_kv_cache_entry=None,
        attention_mask: Optional[torch.Tensor] = None,
        positions: Optional[torch.Tensor] = None,
        shortformer_pos_embed: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        cfg = self.cfg
        resid_pre = _h(self.hook_resid_pre, resid_pre)
        ln1 = self._norm("ln1")
        if cfg.use_attn_in or cfg.use_split_qkv_input:
            q_in, k_in, v_in = self._split_inputs(resid_pre)
            q_in, k_in, v_in = ln1(q_in), ln1(k_in), ln1(v_in)
        else:
            q_in = k_in = v_in = ln1(resid_pre)
        if shortformer_pos_embed is not None:
            spe = shortformer_pos_embed if q_in.dim() == 3 else shortformer_pos_embed.unsqueeze(2)
            q_in, k_in = q_in + spe, k_in + spe
        attn_out = self.attn(q_in, k_in, v_in, past_kv_cache_entry, attention_mask, positions)
        if cfg.use_normalization_before_and_after:
            attn_out = self.ln1_post(attn_out)
        attn_out = _h(self.hook_attn_out, attn_out)
        if cfg.attn_only:
            return _h(self.hook_resid_post, resid_pre + attn_out)
        if cfg.parallel_attn_mlp:
            mlp_in = resid_pre
        else:
            mlp_in = resid_mid = _h(self.hook_resid_mid, resid_pre + attn_out)
        if "hook_mlp_in" in self._modules:
            mlp_in = _h(self.hook_mlp_in, mlp_in.clone())
        mlp_out = self.mlp(self._norm("ln2")(mlp_in))
        if cfg.use_normalization_before_and_after:
            mlp_out = self.ln2_post(mlp_out)
        mlp_out = _h(self.hook_mlp_out, mlp_out)
        if cfg.parallel_attn_mlp:
            return _h(self.hook_resid_post, resid_pre + attn_out + mlp_out)
        return _h(self.hook_resid_post, resid_mid + mlp_out)

    def _split_inputs(self, resid_pre: torch.Tensor):
        """Per-head copies of the residual [batch, pos, head, d_model] for the optional hooks."""
        cfg = self.cfg
        n_kv = cfg.n_heads if (cfg.ungroup_grouped_query_attention or not cfg.is_gqa) else cfg.n_key_value_heads
        base = resid_pre.unsqueeze(2)
        attn_in = base.expand(-1, -1, cfg.n_heads, -1)
        if "hook_attn_in" in self._modules:
            attn_in = _h(self.hook_attn_in, attn_in.clone())
        if "hook_q_input" not in self._modules:
            kv_in = attn_in if n_kv == cfg.n_heads else attn_in[:, :, :: cfg.n_heads // n_kv]
            return attn_in, kv_in, kv_in
        q_in = _h(self.hook_q_input, attn_in.clone())
        if n_kv == cfg.n_heads:
            k_src = attn_in
        else:
            k_src = attn_in[:, :, :: cfg.n_heads // n_kv]
        k_in = _h(self.hook_k_input, k_src.clone())
        v_in = _h(self.hook_v_input, k_src.clone())
        return q_in, k_in, v_in

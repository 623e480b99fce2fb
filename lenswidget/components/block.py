"""One transformer block: ``resid_pre -> (ln1, attn) -> resid_mid -> (ln2, mlp) -> resid_post``.

Variants: ``parallel_attn_mlp`` (attn and MLP both read resid_pre; no resid_mid),
``attn_only`` (no MLP), ``use_normalization_before_and_after`` (Gemma-2 post-norms ``ln1_post``,
``ln2_post``), ``use_normalization_after_only`` (OLMo 2: ``ln1``/``ln2`` normalise the
sublayer outputs, before ``hook_attn_out``/``hook_mlp_out``, and nothing normalises inputs).
As in TransformerLens, the optional hook points always exist but only fire when their flag is on: ``hook_attn_in`` (use_attn_in), ``hook_q/k/v_input``
(use_split_qkv_input), ``hook_mlp_in`` (use_hook_mlp_in); ``hook_mlp_out`` exists (and never
fires) in ``attn_only`` models too.

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
        # module order as in TransformerLens (it fixes the order of hook_dict and state_dict)
        self.ln1 = make_norm(cfg)
        if cfg.use_normalization_before_and_after:
            self.ln1_post = make_post_norm(cfg)
        if not cfg.attn_only:
            self.ln2 = make_norm(cfg)
            if cfg.use_normalization_before_and_after:
                self.ln2_post = make_post_norm(cfg)
        self.attn = make_attention(cfg, block_index, rotary)
        if not cfg.attn_only:
            self.mlp = make_mlp(cfg)
        self.hook_attn_in = HookPoint()  # [batch, pos, head, d_model], with use_attn_in
        self.hook_q_input = HookPoint()  # [batch, pos, head, d_model], with use_split_qkv_input
        self.hook_k_input = HookPoint()
        self.hook_v_input = HookPoint()
        self.hook_mlp_in = HookPoint()  # [batch, pos, d_model], with use_hook_mlp_in
        self.hook_attn_out = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_pre = HookPoint()
        if not cfg.attn_only and not cfg.parallel_attn_mlp:
            self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()

    def rebuild_norms(self) -> None:
        """Recreate ln1/ln2 for the current ``cfg.normalization_type`` (after folding)."""
        self.ln1 = make_norm(self.cfg)
        if not self.cfg.attn_only:
            self.ln2 = make_norm(self.cfg)

    def _norm(self, name: str):
        mod = self._modules.get(name)
        return _identity if mod is None else mod

    # ------------------------------------------------------------------ pieces (shared with the patching engine)
    def attn_input_norm(self, x: torch.Tensor) -> torch.Tensor:
        """What attention reads: ``ln1(x)``, or ``x`` when norms follow the sublayers only (OLMo 2)."""
        return x if self.cfg.use_normalization_after_only else self._norm("ln1")(x)

    def attn_output_norm(self, out: torch.Tensor) -> torch.Tensor:
        """``hook_attn_out`` from the attention output: ``ln1_post`` (Gemma 2/3), ``ln1`` (OLMo 2) or nothing."""
        cfg = self.cfg
        if cfg.use_normalization_before_and_after:
            return self.ln1_post(out)
        if cfg.use_normalization_after_only:
            return self._norm("ln1")(out)
        return out

    def mlp_output(self, mlp_in: torch.Tensor) -> torch.Tensor:
        """``hook_mlp_out`` from the MLP's residual input (its norms before and/or after)."""
        cfg = self.cfg
        if cfg.use_normalization_after_only:
            return self._norm("ln2")(self.mlp(mlp_in))
        out = self.mlp(self._norm("ln2")(mlp_in))
        return self.ln2_post(out) if cfg.use_normalization_before_and_after else out

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
        norm = self.attn_input_norm
        if cfg.use_attn_in or cfg.use_split_qkv_input:
            q_in, k_in, v_in = self._split_inputs(resid_pre)
            q_in, k_in, v_in = norm(q_in), norm(k_in), norm(v_in)
        else:
            q_in = k_in = v_in = norm(resid_pre)
        if shortformer_pos_embed is not None:
            spe = shortformer_pos_embed if q_in.dim() == 3 else shortformer_pos_embed.unsqueeze(2)
            q_in, k_in = q_in + spe, k_in + spe
        attn_out = self.attn(q_in, k_in, v_in, past_kv_cache_entry, attention_mask, positions)
        attn_out = _h(self.hook_attn_out, self.attn_output_norm(attn_out))
        if cfg.attn_only:
            return _h(self.hook_resid_post, resid_pre + attn_out)
        if cfg.parallel_attn_mlp:
            mlp_in = resid_pre
        else:
            mlp_in = resid_mid = _h(self.hook_resid_mid, resid_pre + attn_out)
        if cfg.use_hook_mlp_in:
            mlp_in = _h(self.hook_mlp_in, mlp_in.clone())
        mlp_out = _h(self.hook_mlp_out, self.mlp_output(mlp_in))
        if cfg.parallel_attn_mlp:
            return _h(self.hook_resid_post, resid_pre + attn_out + mlp_out)
        return _h(self.hook_resid_post, resid_mid + mlp_out)

    def _split_inputs(self, resid_pre: torch.Tensor):
        """Per-head copies of the residual [batch, pos, head, d_model] for the optional hooks."""
        cfg = self.cfg
        n_kv = cfg.n_heads if (cfg.ungroup_grouped_query_attention or not cfg.is_gqa) else cfg.n_key_value_heads
        base = resid_pre.unsqueeze(2)
        attn_in = base.expand(-1, -1, cfg.n_heads, -1)
        if cfg.use_attn_in:
            attn_in = _h(self.hook_attn_in, attn_in.clone())
        if not cfg.use_split_qkv_input:
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

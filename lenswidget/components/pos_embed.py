"""Learned absolute positional embedding ``W_pos`` (positional_embedding_type "standard").

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, n_heads=2, d_vocab=10, act_fn="relu")
>>> PosEmbed(cfg)(torch.zeros(3, 2, dtype=torch.long)).shape
torch.Size([3, 2, 8])
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from lenswidget.config import HookedTransformerConfig


class PosEmbed(nn.Module):
    """``W_pos`` [n_ctx, d_model]."""

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model, dtype=cfg.dtype))

    def forward(
        self,
        tokens: torch.Tensor,
        past_kv_pos_offset: int = 0,
        attention_mask: Optional[torch.Tensor] = None,
        positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Embeddings [batch, pos, d_model] for ``tokens`` [batch, pos].

        Without a mask, positions are ``offset .. offset+pos-1``. With a (left-padding) mask,
        the first real token is position 0 and padding positions get a zero embedding.
        """
        batch, seq = tokens.shape[:2]
        if attention_mask is None and positions is None:
            pe = self.W_pos[past_kv_pos_offset : past_kv_pos_offset + seq]
            return pe.unsqueeze(0).expand(batch, seq, pe.shape[-1])
        if positions is None:
            from lenswidget.components.masking import positions_from_mask

            positions = positions_from_mask(attention_mask, past_kv_pos_offset, seq)
        pe = self.W_pos[positions]
        if attention_mask is not None:
            real = attention_mask[:, past_kv_pos_offset : past_kv_pos_offset + seq].bool().unsqueeze(-1)
            pe = pe * real.to(pe.dtype)
        return pe

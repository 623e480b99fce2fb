"""Stacked weight properties of HookedTransformer (``model.W_Q`` is [n_layers, n_heads, d_model, d_head]).

GQA keys/values are expanded to ``n_heads`` (as ``attn.W_K`` is).

>>> model.W_Q.shape                                 # doctest: +SKIP
torch.Size([2, 4, 64, 16])
"""

from __future__ import annotations

from typing import Optional

import torch

from lenswidget.errors import ConfigError


class WeightsMixin:
    """Needs ``self.embed``, ``self.blocks``, ``self.unembed`` and optionally ``self.pos_embed``."""

    def _weight(self, unit: str, get):
        """``get()``; on a model placed over several devices, read with ``unit``'s weights
        present (loaded if offloaded) and returned on ``cfg.device``."""
        if "_placement" not in self.__dict__:
            return get()
        from lenswidget.loading.placement import read_weight

        return read_weight(self, unit, get)

    def _stack_attn(self, name: str) -> torch.Tensor:
        return torch.stack([self._weight(f"blocks.{i}", lambda b=block: getattr(b.attn, name))
                            for i, block in enumerate(self.blocks)], dim=0)

    def _stack_mlp(self, name: str) -> torch.Tensor:
        if self.cfg.attn_only:
            raise ConfigError(f"{name}: this model is attn_only and has no MLPs")
        return torch.stack([self._weight(f"blocks.{i}", lambda b=block: getattr(b.mlp, name))
                            for i, block in enumerate(self.blocks)], dim=0)

    @property
    def W_E(self) -> torch.Tensor:
        """[d_vocab, d_model]"""
        return self._weight("embed", lambda: self.embed.W_E)

    @property
    def W_U(self) -> torch.Tensor:
        """[d_model, d_vocab_out]"""
        return self._weight("unembed", lambda: self.unembed.W_U)

    @property
    def b_U(self) -> torch.Tensor:
        return self._weight("unembed", lambda: self.unembed.b_U)

    @property
    def W_pos(self) -> torch.Tensor:
        """[n_ctx, d_model]; only for positional_embedding_type 'standard'/'shortformer'."""
        if "pos_embed" not in self._modules:
            raise ConfigError(
                f"W_pos: positional_embedding_type is {self.cfg.positional_embedding_type!r}, which has "
                "no learned positional embedding (only 'standard' and 'shortformer' have W_pos)"
            )
        return self._weight("pos_embed", lambda: self.pos_embed.W_pos)

    @property
    def W_E_pos(self) -> torch.Tensor:
        """[d_vocab + n_ctx, d_model]: W_E and W_pos stacked."""
        return torch.cat([self.W_E, self.W_pos], dim=0)

    @property
    def W_K(self) -> torch.Tensor:
        return self._stack_attn("W_K")

    @property
    def W_Q(self) -> torch.Tensor:
        return self._stack_attn("W_Q")

    @property
    def W_V(self) -> torch.Tensor:
        return self._stack_attn("W_V")

    @property
    def W_O(self) -> torch.Tensor:
        return self._stack_attn("W_O")

    @property
    def b_K(self) -> torch.Tensor:
        return self._stack_attn("b_K")

    @property
    def b_Q(self) -> torch.Tensor:
        return self._stack_attn("b_Q")

    @property
    def b_V(self) -> torch.Tensor:
        return self._stack_attn("b_V")

    @property
    def b_O(self) -> torch.Tensor:
        return self._stack_attn("b_O")

    @property
    def W_in(self) -> torch.Tensor:
        return self._stack_mlp("W_in")

    @property
    def W_gate(self) -> Optional[torch.Tensor]:
        """Stacked gate weights, or None for a model without gated MLPs."""
        if not self.cfg.gated_mlp or self.cfg.attn_only:
            return None
        return self._stack_mlp("W_gate")

    @property
    def W_out(self) -> torch.Tensor:
        return self._stack_mlp("W_out")

    @property
    def b_in(self) -> torch.Tensor:
        return self._stack_mlp("b_in")

    @property
    def b_out(self) -> torch.Tensor:
        return self._stack_mlp("b_out")


__all__ = ["WeightsMixin"]

"""Attention masks and position ids from a padding mask and a KV-cache offset.

``attention_mask`` is [batch, key_pos] with 1 for real tokens and 0 for padding, covering
the cached keys and the new ones. Queries are the last ``q_len`` key positions.

>>> spec = attention_spec(None, q_len=3, k_len=3, window=None, causal=True)
>>> spec.is_causal, spec.sdpa_mask is None
(True, True)
>>> spec.score_mask().int()[0, 0]
tensor([[1, 0, 0],
        [1, 1, 0],
        [1, 1, 1]], dtype=torch.int32)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import torch

from lenswidget.components.versioning import tensor_version


def positions_from_mask(attention_mask: torch.Tensor, past_len: int, q_len: int) -> torch.Tensor:
    """Position ids [batch, q_len]: the first real token is 0; leading padding is 0 too."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp_(min=0)[:, past_len : past_len + q_len]


@dataclass
class AttentionSpec:
    """How to mask one attention call.

    ``is_causal``: plain causal attention, no explicit mask needed.
    ``sdpa_mask``: bool [batch|1, 1, q, k] (True = attend) safe for SDPA (no empty rows), or None.
    ``zero_rows``: bool [batch|1, 1, q, 1] of queries with nothing to attend to (their output
    is zero, as TransformerLens turns their NaN pattern into zeros), or None.
    """

    is_causal: bool
    sdpa_mask: Optional[torch.Tensor]
    zero_rows: Optional[torch.Tensor]
    _q: int
    _k: int
    _device: torch.device
    _raw: Optional[torch.Tensor] = None

    def score_mask(self) -> Optional[torch.Tensor]:
        """Bool mask for explicit attention scores (True = attend), None if nothing is masked."""
        if self._raw is not None:
            return self._raw
        if self.is_causal:
            self._raw = _causal(self._q, self._k, None, self._device)[None, None]
            return self._raw
        return self.sdpa_mask


def _causal(q_len: int, k_len: int, window: Optional[int], device) -> torch.Tensor:
    qi = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    kj = torch.arange(k_len, device=device)[None, :]
    allowed = kj <= qi
    if window is not None:
        allowed &= (qi - kj) < window
    return allowed


_NO_MASK_MEMO: "OrderedDict[tuple, AttentionSpec]" = OrderedDict()
_NO_MASK_MEMO_SIZE = 4


def attention_spec(
    attention_mask: Optional[torch.Tensor],
    q_len: int,
    k_len: int,
    window: Optional[int],
    causal: bool = True,
    device=None,
) -> AttentionSpec:
    """The :class:`AttentionSpec` for these settings.

    Every layer of a forward pass asks for the same spec, so it is memoised: on the mask
    tensor itself (freed with it), or in a small table when there is no padding mask.
    """
    if device is None:
        device = attention_mask.device if attention_mask is not None else torch.device("cpu")
    if attention_mask is None and window is None:
        if not causal or q_len == 1:
            return AttentionSpec(False, None, None, q_len, k_len, device)
        if q_len == k_len:
            return AttentionSpec(True, None, None, q_len, k_len, device)
    key = (q_len, k_len, window, causal, str(device))
    if attention_mask is None:
        spec = _NO_MASK_MEMO.get(key)
        if spec is None:
            spec = _NO_MASK_MEMO[key] = _build(None, q_len, k_len, window, causal, device)
            while len(_NO_MASK_MEMO) > _NO_MASK_MEMO_SIZE:
                _NO_MASK_MEMO.popitem(last=False)
        return spec
    memo = getattr(attention_mask, "_lw_specs", None)
    if memo is None or memo[0] != tensor_version(attention_mask):
        memo = (tensor_version(attention_mask), {})
        attention_mask._lw_specs = memo
    spec = memo[1].get(key)
    if spec is None:
        spec = memo[1][key] = _build(attention_mask, q_len, k_len, window, causal, device)
    return spec


def _build(attention_mask, q_len, k_len, window, causal, device) -> AttentionSpec:
    if causal:
        allowed = _causal(q_len, k_len, window, device)[None, None]
    else:
        allowed = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=device)
        if window is not None:
            qi = torch.arange(k_len - q_len, k_len, device=device)[:, None]
            kj = torch.arange(k_len, device=device)[None, :]
            allowed = allowed & ((qi - kj).abs() < window)
    if attention_mask is not None:
        if attention_mask.shape[-1] != k_len:
            from lenswidget.errors import ShapeMismatchError

            raise ShapeMismatchError(
                f"attention_mask covers {attention_mask.shape[-1]} positions but there are {k_len} keys "
                "(cached + new); pass a mask for the new tokens only when using past_kv_cache"
            )
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    empty = ~allowed.any(-1, keepdim=True)
    if bool(empty.any()):
        return AttentionSpec(False, allowed | empty, empty, q_len, k_len, device, _raw=allowed)
    return AttentionSpec(False, allowed, None, q_len, k_len, device, _raw=allowed)


def spec_for_positions(q_pos: torch.Tensor, n_keys: int, window: Optional[int]) -> AttentionSpec:
    """Causal (optionally sliding-window) mask of queries at absolute positions ``q_pos`` [n_q]
    against keys at positions ``0 .. n_keys-1`` (every query sees at least itself)."""
    kj = torch.arange(n_keys, device=q_pos.device)[None, :]
    qi = q_pos[:, None]
    allowed = kj <= qi
    if window is not None:
        allowed &= (qi - kj) < window
    allowed = allowed[None, None]
    return AttentionSpec(False, allowed, None, int(q_pos.numel()), n_keys, q_pos.device, _raw=allowed)

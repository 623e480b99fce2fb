"""Preallocated key/value cache for incremental decoding and prefix reuse.

Keys and values are written in place into buffers sized for the whole run
(``init_cache(..., max_len=...)``); they only grow (geometrically) if a run outgrows them.
Keys are stored after rotary embedding, as [batch, pos, kv_head, d_head].

>>> from lenswidget.config import HookedTransformerConfig
>>> cfg = HookedTransformerConfig(n_layers=2, d_model=8, n_ctx=16, n_heads=2, d_vocab=10, act_fn="relu")
>>> cache = HookedTransformerKeyValueCache.init_cache(cfg, "cpu", batch_size=1, max_len=8)
>>> k = torch.zeros(1, 3, 2, 4)
>>> keys, values = cache[0].append(k, k)
>>> keys.shape, cache[0].length
(torch.Size([1, 3, 2, 4]), 3)
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import torch

from lenswidget.config import HookedTransformerConfig
from lenswidget.errors import ShapeMismatchError


class HookedTransformerKeyValueCacheEntry:
    """Cached keys and values of one attention layer.

    ``past_keys`` / ``past_values`` are views of the filled part of the buffers. When
    ``frozen``, :meth:`append` returns past + new without storing anything.
    """

    def __init__(
        self,
        past_keys: Optional[torch.Tensor] = None,
        past_values: Optional[torch.Tensor] = None,
        frozen: bool = False,
    ):
        self._k = past_keys
        self._v = past_values
        self._len = 0 if past_keys is None else past_keys.shape[1]
        self._owned = False  # buffers given by the caller are copied before being written
        self.frozen = frozen

    @classmethod
    def init_cache_entry(
        cls,
        cfg: HookedTransformerConfig,
        device=None,
        batch_size: int = 1,
        max_len: int = 0,
        dtype: Optional[torch.dtype] = None,
    ) -> "HookedTransformerKeyValueCacheEntry":
        """An empty entry with room for ``max_len`` positions (dtype defaults to ``cfg.dtype``)."""
        n_heads = cfg.n_heads if cfg.ungroup_grouped_query_attention else cfg.n_kv_heads
        device = device if device is not None else cfg.device
        dtype = dtype if dtype is not None else cfg.dtype
        shape = (batch_size, max_len, n_heads, cfg.d_head)
        entry = cls(torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
        entry._len = 0
        entry._owned = True
        return entry

    # ------------------------------------------------------------------ views
    @property
    def length(self) -> int:
        """Number of cached positions."""
        return self._len

    @property
    def capacity(self) -> int:
        return 0 if self._k is None else self._k.shape[1]

    @property
    def past_keys(self) -> torch.Tensor:
        return self._k[:, : self._len]

    @past_keys.setter
    def past_keys(self, value: torch.Tensor) -> None:
        self._k, self._len, self._owned = value, value.shape[1], False

    @property
    def past_values(self) -> torch.Tensor:
        return self._v[:, : self._len]

    @past_values.setter
    def past_values(self, value: torch.Tensor) -> None:
        self._v, self._owned = value, False

    # ------------------------------------------------------------------ updates
    def _reserve(self, needed: int, like: torch.Tensor) -> None:
        k = self._k
        if (
            k is not None
            and self._owned
            and needed <= k.shape[1]
            and k.dtype == like.dtype
            and k.device == like.device
        ):
            return
        if k is not None and self._len and k.shape[0] != like.shape[0]:
            raise ShapeMismatchError(
                f"KV cache holds batch size {k.shape[0]} but new keys have batch size {like.shape[0]}; "
                "use cache.expand(batch_size) first"
            )
        cap = needed if (k is None or not self._owned) else max(needed, 2 * k.shape[1])
        shape = (like.shape[0], cap) + tuple(like.shape[2:])
        new_k = torch.empty(shape, device=like.device, dtype=like.dtype)
        new_v = torch.empty(shape, device=like.device, dtype=like.dtype)
        if self._len:
            new_k[:, : self._len] = self._k[:, : self._len]
            new_v[:, : self._len] = self._v[:, : self._len]
        self._k, self._v, self._owned = new_k, new_v, True

    def append(self, new_keys: torch.Tensor, new_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values (unless frozen); return all keys and values so far."""
        if self.frozen:
            if not self._len:
                return new_keys, new_values
            past_k, past_v = self.past_keys, self.past_values
            if past_k.shape[0] != new_keys.shape[0]:
                past_k = past_k.expand(new_keys.shape[0], *past_k.shape[1:])
                past_v = past_v.expand(new_values.shape[0], *past_v.shape[1:])
            return torch.cat([past_k, new_keys], 1), torch.cat([past_v, new_values], 1)
        n = new_keys.shape[1]
        end = self._len + n
        self._reserve(end, new_keys)
        self._k[:, self._len : end] = new_keys
        self._v[:, self._len : end] = new_values
        self._len = end
        return self._k[:, :end], self._v[:, :end]

    def expand(self, batch_size: int) -> "HookedTransformerKeyValueCacheEntry":
        """A copy-free view of this entry repeated over ``batch_size`` (batch must be 1)."""
        entry = HookedTransformerKeyValueCacheEntry(frozen=self.frozen)
        if self._len:
            if self._k.shape[0] != 1 and self._k.shape[0] != batch_size:
                raise ShapeMismatchError(f"can only expand a batch-1 cache, this one has batch {self._k.shape[0]}")
            k, v = self.past_keys, self.past_values
            entry._k = k.expand(batch_size, *k.shape[1:])
            entry._v = v.expand(batch_size, *v.shape[1:])
            entry._len = self._len
        return entry

    def clone(self) -> "HookedTransformerKeyValueCacheEntry":
        entry = HookedTransformerKeyValueCacheEntry(frozen=self.frozen)
        if self._len:
            entry._k, entry._v = self.past_keys.clone(), self.past_values.clone()
            entry._len, entry._owned = self._len, True
        return entry

    def __repr__(self) -> str:
        shape = None if self._k is None else tuple(self.past_keys.shape)
        return f"HookedTransformerKeyValueCacheEntry(length={self._len}, keys={shape}, frozen={self.frozen})"


class HookedTransformerKeyValueCache:
    """Per-layer :class:`HookedTransformerKeyValueCacheEntry` list plus the attention mask so far.

    The mask is only materialised once padding appears; until then it is all ones.
    """

    def __init__(
        self,
        entries: List[HookedTransformerKeyValueCacheEntry],
        previous_attention_mask: Optional[torch.Tensor] = None,
        frozen: bool = False,
        batch_size: Optional[int] = None,
        device=None,
    ):
        self.entries = entries
        self._mask: Optional[torch.Tensor] = None  # [batch, capacity] once padding exists
        self._mask_len = 0
        self._batch = batch_size
        self._device = device
        if previous_attention_mask is not None:
            self.previous_attention_mask = previous_attention_mask
        elif entries:
            self._mask_len = entries[0].length
        self.frozen = frozen
        for e in entries:
            e.frozen = frozen

    @classmethod
    def init_cache(
        cls,
        cfg: HookedTransformerConfig,
        device=None,
        batch_size: int = 1,
        max_len: int = 0,
        dtype: Optional[torch.dtype] = None,
    ) -> "HookedTransformerKeyValueCache":
        """An empty cache for ``cfg`` with buffers preallocated for ``max_len`` positions."""
        device = device if device is not None else cfg.device
        entries = [
            HookedTransformerKeyValueCacheEntry.init_cache_entry(cfg, device, batch_size, max_len, dtype)
            for _ in range(cfg.n_layers)
        ]
        return cls(entries, batch_size=batch_size, device=device)

    # ------------------------------------------------------------------ access
    def __getitem__(self, idx: int) -> HookedTransformerKeyValueCacheEntry:
        return self.entries[idx]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[HookedTransformerKeyValueCacheEntry]:
        return iter(self.entries)

    @property
    def length(self) -> int:
        """Cached positions (as recorded by the attention mask)."""
        return self._mask_len

    @property
    def has_padding(self) -> bool:
        return self._mask is not None

    @property
    def previous_attention_mask(self) -> torch.Tensor:
        if self._mask is not None:
            return self._mask[:, : self._mask_len]
        batch = self._batch
        if batch is None:
            batch = next((e._k.shape[0] for e in self.entries if e._k is not None), 1)
        return torch.ones(batch, self._mask_len, dtype=torch.long, device=self._device)

    @previous_attention_mask.setter
    def previous_attention_mask(self, value: torch.Tensor) -> None:
        self._batch, self._device = value.shape[0], value.device
        self._mask_len = value.shape[1]
        self._mask = None if bool(value.all()) else value.long().clone()

    def freeze(self) -> None:
        self.frozen = True
        for e in self.entries:
            e.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False
        for e in self.entries:
            e.frozen = False

    # ------------------------------------------------------------------ mask updates
    def append_attention_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Full mask [batch, past + new] (stored unless frozen)."""
        batch, n_new = attention_mask.shape
        full = self._append_mask(attention_mask, n_new, batch_size=batch)
        if full is not None:
            return full
        total = self._mask_len + (n_new if self.frozen else 0)
        return torch.ones(batch, total, dtype=torch.long, device=attention_mask.device)

    def _append_mask(
        self, attention_mask: Optional[torch.Tensor], n_new: int, check: bool = True, batch_size: Optional[int] = None
    ) -> Optional[torch.Tensor]:
        """Append a mask for ``n_new`` positions (None = all real tokens).

        Returns the full mask [batch, past + new], or None when no position is padding.
        """
        if attention_mask is not None and check and bool(attention_mask.all()):
            attention_mask = None
        if attention_mask is not None:
            batch = attention_mask.shape[0]
            device = attention_mask.device
        else:
            batch = batch_size or self._batch or 1
            device = self._device
        if self._mask is None and attention_mask is None:
            if not self.frozen:
                self._mask_len += n_new
                self._batch = self._batch or batch
            return None
        past = self.previous_attention_mask
        if past.shape[0] != batch and past.shape[0] == 1:
            past = past.expand(batch, -1)
        new = (
            attention_mask.long()
            if attention_mask is not None
            else torch.ones(batch, n_new, dtype=torch.long, device=past.device)
        )
        if self.frozen:
            return torch.cat([past.to(new.device), new], dim=1)
        end = self._mask_len + n_new
        if self._mask is None or self._mask.shape[1] < end or self._mask.shape[0] != batch:
            cap = max(end, 2 * (0 if self._mask is None else self._mask.shape[1]), self.entries[0].capacity if self.entries else 0)
            buf = torch.ones(batch, cap, dtype=torch.long, device=new.device)
            buf[:, : self._mask_len] = past
            self._mask = buf
        self._mask[:, self._mask_len : end] = new
        self._mask_len = end
        self._batch = batch
        self._device = new.device
        return self._mask[:, :end]

    # ------------------------------------------------------------------ prefix reuse
    def expand(self, batch_size: int) -> "HookedTransformerKeyValueCache":
        """A cache viewing this (batch-1) prefix for ``batch_size`` rows without copying it.

        Appending to the result copies the prefix once into its own buffers; a frozen result
        never writes. Useful for running many continuations of one shared prefix.
        """
        new = HookedTransformerKeyValueCache([e.expand(batch_size) for e in self.entries], frozen=self.frozen)
        new._mask_len = self._mask_len
        new._batch = batch_size
        new._device = self._device
        if self._mask is not None:
            new._mask = self.previous_attention_mask.expand(batch_size, -1).clone()
        return new

    def clone(self) -> "HookedTransformerKeyValueCache":
        new = HookedTransformerKeyValueCache([e.clone() for e in self.entries], frozen=self.frozen)
        new._mask_len, new._batch, new._device = self._mask_len, self._batch, self._device
        if self._mask is not None:
            new._mask = self.previous_attention_mask.clone()
        return new

    def __repr__(self) -> str:
        return (
            f"HookedTransformerKeyValueCache(n_layers={len(self.entries)}, length={self._mask_len}, "
            f"padding={self.has_padding}, frozen={self.frozen})"
        )


__all__ = ["HookedTransformerKeyValueCache", "HookedTransformerKeyValueCacheEntry"]

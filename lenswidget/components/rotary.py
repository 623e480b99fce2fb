"""Rotary positional embeddings (RoPE): sin/cos tables and their application.

One :class:`RotaryTable` is shared by every attention layer with the same settings. Tables
are computed lazily in float32 for the lengths actually used and cached per device/dtype,
so a model with a huge ``n_ctx`` does not allocate ``n_ctx``-sized buffers per layer.

>>> t = RotaryTable(rotary_dim=4, base=10000)
>>> cos, sin = t.cos_sin(3, torch.device("cpu"), torch.float32)
>>> cos.shape[-1], cos.shape[0] >= 3   # tables may be longer than asked for
(4, True)
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lenswidget.config import HookedTransformerConfig
from lenswidget.components.versioning import tensor_version


def _ntk_by_parts(inv_freq: torch.Tensor, factor: float, low: float, high: float, old_ctx: int) -> torch.Tensor:
    """Llama-3.1 style frequency rescaling ("NTK by parts")."""
    low_wavelen = old_ctx / low
    high_wavelen = old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


class RotaryTable:
    """cos/sin tables for ``rotary_dim`` rotated dimensions.

    ``adjacent_pairs=True`` rotates pairs (0,1), (2,3), ... (GPT-J); otherwise the two halves
    of the rotary dims are paired (GPT-NeoX / Llama). Frequency scalings: ``ntk_by_parts``
    (Llama 3.1), ``linear_factor`` (positions divided by it, e.g. Gemma 3's global layers) and
    ``longrope`` (Phi-3: per-frequency ``short_factor`` / ``long_factor`` chosen by the sequence
    length, cos/sin scaled by ``attention_factor``).
    """

    def __init__(
        self,
        rotary_dim: int,
        base: float = 10000,
        adjacent_pairs: bool = False,
        ntk_by_parts: Optional[dict] = None,
        linear_factor: float = 1.0,
        longrope: Optional[dict] = None,
    ):
        self.rotary_dim = rotary_dim
        self.base = base
        self.adjacent_pairs = adjacent_pairs
        inv = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64, device="cpu").float() / rotary_dim))
        if ntk_by_parts:
            inv = _ntk_by_parts(inv, **ntk_by_parts)
        if linear_factor != 1.0:
            inv = inv / linear_factor
        self.inv_freq = inv
        self.long_inv_freq: Optional[torch.Tensor] = None
        self.long_after = 0  # sequence lengths above this use long_inv_freq
        self.amplitude = 1.0
        if longrope:
            self.inv_freq = inv / torch.tensor(longrope["short_factor"], dtype=torch.float32, device="cpu")
            self.long_inv_freq = inv / torch.tensor(longrope["long_factor"], dtype=torch.float32, device="cpu")
            self.long_after = int(longrope["original_max_position_embeddings"])
            self.amplitude = float(longrope["attention_factor"])
        self._tables: dict = {}
        self._memo: Optional[tuple] = None

    @classmethod
    def from_config(cls, cfg: HookedTransformerConfig, layer: Optional[int] = None) -> "RotaryTable":
        """The table of ``layer`` (local layers may have their own base; scaling is global-only)."""
        local = layer is not None and cfg.layer_is_local(layer)
        base = cfg.rotary_base_local if local and cfg.rotary_base_local is not None else cfg.rotary_base
        ntk = None
        if cfg.use_NTK_by_parts_rope:
            ntk = dict(
                factor=cfg.NTK_by_parts_factor,
                low=cfg.NTK_by_parts_low_freq_factor,
                high=cfg.NTK_by_parts_high_freq_factor,
                old_ctx=cfg.NTK_original_ctx_len,
            )
        linear = 1.0 if local else cfg.rotary_scaling_factor
        return cls(cfg.rotary_dim, base, cfg.rotary_adjacent_pairs, ntk, linear, cfg.rotary_longrope)

    @classmethod
    def per_layer(cls, cfg: HookedTransformerConfig) -> list:
        """One table per layer; layers with the same settings share one (and its caches)."""
        shared: dict = {}
        out = []
        for layer in range(cfg.n_layers):
            local = cfg.layer_is_local(layer) and (cfg.rotary_base_local is not None or cfg.rotary_scaling_factor != 1.0)
            if local not in shared:
                shared[local] = cls.from_config(cfg, layer)
            out.append(shared[local])
        return out

    def _long(self, seq_len: int) -> bool:
        return self.long_inv_freq is not None and seq_len > self.long_after

    def cos_sin(self, length: int, device, dtype, seq_len: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables [>=length, rotary_dim] for positions 0..length-1 (may be longer).

        ``seq_len`` (default ``length``) picks longrope's long or short factors, as HF does
        from the largest position of the call.
        """
        long = self._long(length if seq_len is None else seq_len)
        key = (torch.device(device), dtype, long)
        have = self._tables.get(key)
        if have is not None and have[0].shape[0] >= length:
            return have
        n = max(length, 256 if have is None else 2 * have[0].shape[0])
        with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable under autograd later
            pos = torch.arange(n, dtype=torch.float32, device="cpu")
            freqs = torch.outer(pos, self.long_inv_freq if long else self.inv_freq)
            if self.adjacent_pairs:
                emb = freqs.repeat_interleave(2, dim=-1)
            else:
                emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            if self.amplitude != 1.0:
                cos, sin = cos * self.amplitude, sin * self.amplitude
            table = (cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype))
        self._tables[key] = table
        return table

    def for_positions(
        self, positions: Optional[torch.Tensor], offset: int, length: int, device, dtype,
        seq_len: Optional[int] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin broadcastable against [..., pos, head, rotary_dim].

        ``positions`` [batch, pos] (e.g. from a left-padding mask) or [pos], or None for
        ``offset .. offset+length-1``. ``seq_len``: see :meth:`cos_sin` (default: the largest
        position + 1). The last result is memoised, since every layer asks for the same
        positions in one forward pass.
        """
        mode = torch.is_inference_mode_enabled()  # slices taken in inference mode stay there
        if positions is None:
            key = (offset, length, device, dtype, seq_len, mode)
            memo = self._memo
            if memo is not None and memo[0] == key:
                return memo[1]
            cos, sin = self.cos_sin(offset + length, device, dtype, seq_len)
            out = (cos[offset : offset + length, None, :], sin[offset : offset + length, None, :])
            self._memo = (key, out)
            return out
        # memoised on the positions tensor itself, so it is freed with it
        key = (id(self), device, dtype, seq_len, mode)
        memo = getattr(positions, "_lw_rotary", None)
        if memo is None or memo[0] != tensor_version(positions):
            memo = positions._lw_rotary = (tensor_version(positions), {})
        out = memo[1].get(key)
        if out is None:
            n = int(positions.max()) + 1 if positions.numel() else 1
            cos, sin = self.cos_sin(n, device, dtype, seq_len)
            out = memo[1][key] = (cos[positions].unsqueeze(-2), sin[positions].unsqueeze(-2))
        return out


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotary_dim: int, adjacent_pairs: bool = False
) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` dims of ``x`` [batch, pos, head, d_head]."""
    full = rotary_dim == x.shape[-1]
    x_rot = x if full else x[..., :rotary_dim]
    if adjacent_pairs:
        rotated = torch.stack((-x_rot[..., 1::2], x_rot[..., 0::2]), dim=-1).flatten(-2)
    else:
        half = rotary_dim // 2
        rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    out = x_rot * cos + rotated * sin
    if full:
        return out
    return torch.cat((out, x[..., rotary_dim:]), dim=-1)

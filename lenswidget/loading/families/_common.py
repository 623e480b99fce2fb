"""Helpers shared by the family converters: config fields and weight reshaping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lenswidget.errors import ConfigError

#: HF activation names -> lenswidget ``act_fn`` names.
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_new",
    "gelu_fast": "gelu_fast",
    "gelu_pytorch_tanh": "gelu_pytorch_tanh",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
}


def act_fn(name: str) -> str:
    """The lenswidget ``act_fn`` for an HF activation name."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unsupported activation {name!r}; supported: " + ", ".join(sorted(_ACTIVATIONS))
        ) from None


def kv_heads(hf_config: Any) -> int | None:
    """``n_key_value_heads`` when keys/values are grouped, else None (plain multi-head)."""
    n_kv = getattr(hf_config, "num_key_value_heads", None)
    return n_kv if n_kv is not None and n_kv != hf_config.num_attention_heads else None


def rope_fields(hf_config: Any, d_head: int) -> dict[str, Any]:
    """Rotary settings (base, rotary_dim, NTK-by-parts scaling) from an HF config.

    transformers 5 keeps them in ``rope_parameters``; 4.x used ``rope_theta``/``rope_scaling``.
    """
    params = dict(getattr(hf_config, "rope_parameters", None) or {})
    scaling = params if "rope_type" in params else dict(getattr(hf_config, "rope_scaling", None) or {})
    theta = params.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    partial = params.get("partial_rotary_factor",
                         getattr(hf_config, "partial_rotary_factor", getattr(hf_config, "rotary_pct", 1.0)))
    fields: dict[str, Any] = {
        "positional_embedding_type": "rotary",
        "rotary_base": float(theta),
        "rotary_dim": int(d_head * partial),
        "rotary_adjacent_pairs": False,
    }
    kind = scaling.get("rope_type", scaling.get("type", "default")) or "default"
    if kind == "llama3":
        fields.update(
            use_NTK_by_parts_rope=True,
            NTK_by_parts_factor=float(scaling["factor"]),
            NTK_by_parts_low_freq_factor=float(scaling["low_freq_factor"]),
            NTK_by_parts_high_freq_factor=float(scaling["high_freq_factor"]),
            NTK_original_ctx_len=int(scaling["original_max_position_embeddings"]),
        )
    elif kind != "default":
        raise ConfigError(f"unsupported rope_type {kind!r}; supported: 'default', 'llama3'")
    return fields


def attention_window_fields(hf_config: Any) -> dict[str, Any]:
    """Sliding-window attention per layer (``attn_types`` of "global"/"local", ``window_size``)."""
    window = getattr(hf_config, "sliding_window", None)
    layer_types = getattr(hf_config, "layer_types", None)
    n = hf_config.num_hidden_layers
    if layer_types is not None:
        types = ["local" if t == "sliding_attention" else "global" for t in layer_types[:n]]
    elif window is not None and getattr(hf_config, "use_sliding_window", True):
        types = ["local"] * n
    else:
        types = ["global"] * n
    if window is None or "local" not in types:
        return {"use_local_attn": False, "window_size": None, "attn_types": None}
    return {"use_local_attn": True, "window_size": int(window), "attn_types": types}


def with_prefix(sd: Mapping[str, torch.Tensor], prefix: str,
                unprefixed: tuple[str, ...] = ()) -> Mapping[str, torch.Tensor]:
    """``sd`` with body keys under ``prefix`` (some checkpoints omit the base-model prefix).

    Keys in ``unprefixed`` (e.g. the LM head) are looked up as they are.
    """
    if any(k.startswith(prefix) for k in sd):
        return sd
    return _Prefixed(sd, prefix, unprefixed)


class _Prefixed(Mapping):
    """Lazy renaming view: ``prefix + name`` -> ``sd[name]``; tensors are not touched."""

    def __init__(self, sd: Mapping[str, torch.Tensor], prefix: str, unprefixed: tuple[str, ...]):
        self._sd, self._prefix, self._keep = sd, prefix, unprefixed

    def _outer(self, key: str) -> str:
        return key if key in self._keep else self._prefix + key

    def __getitem__(self, key: str) -> torch.Tensor:
        if key in self._keep:
            return self._sd[key]
        if not key.startswith(self._prefix):
            raise KeyError(key)
        return self._sd[key[len(self._prefix):]]

    def __iter__(self):
        return (self._outer(k) for k in self._sd)

    def __len__(self) -> int:
        return len(self._sd)


def heads_in(weight: torch.Tensor, n_heads: int, d_head: int) -> torch.Tensor:
    """HF Linear weight [n_heads*d_head, d_model] -> [n_heads, d_model, d_head]."""
    return weight.reshape(n_heads, d_head, -1).transpose(1, 2)


def heads_out(weight: torch.Tensor, n_heads: int, d_head: int) -> torch.Tensor:
    """HF Linear weight [d_model, n_heads*d_head] -> [n_heads, d_head, d_model]."""
    return weight.reshape(-1, n_heads, d_head).permute(1, 2, 0)


def bias_or_zeros(sd: Mapping[str, torch.Tensor], key: str, shape: tuple[int, ...],
                  like: torch.Tensor) -> torch.Tensor:
    """``sd[key]`` reshaped to ``shape``, or zeros when the checkpoint has no such bias."""
    b = sd.get(key)
    if b is None:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    return b.reshape(shape)


def put_attention(out: dict, layer: int, cfg: Any, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O) -> None:
    """Store one layer's attention weights under lenswidget's names (``_W_K`` etc. for GQA)."""
    p = f"blocks.{layer}.attn."
    kv = "_" if getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads) else ""
    out[p + "W_Q"], out[p + "b_Q"] = W_Q, b_Q
    out[p + kv + "W_K"], out[p + kv + "b_K"] = W_K, b_K
    out[p + kv + "W_V"], out[p + kv + "b_V"] = W_V, b_V
    out[p + "W_O"], out[p + "b_O"] = W_O, b_O

"""Helpers shared by the family converters: config fields and weight reshaping."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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


_ROPE_TYPES = ("default", "linear", "llama3", "longrope")


def _rope_kind(params: dict) -> str:
    return params.get("rope_type", params.get("type", "default")) or "default"


def _scaling_fields(params: dict, hf_config: Any, rotary_dim: int) -> dict[str, Any]:
    """Config fields for one rope_parameters dict's frequency scaling."""
    kind = _rope_kind(params)
    if kind == "default":
        return {}
    if kind == "linear":
        return {"rotary_scaling_factor": float(params["factor"])}
    if kind == "llama3":
        return dict(
            use_NTK_by_parts_rope=True,
            NTK_by_parts_factor=float(params["factor"]),
            NTK_by_parts_low_freq_factor=float(params["low_freq_factor"]),
            NTK_by_parts_high_freq_factor=float(params["high_freq_factor"]),
            NTK_original_ctx_len=int(params["original_max_position_embeddings"]),
        )
    if kind == "longrope":
        original = params.get("original_max_position_embeddings",
                              getattr(hf_config, "original_max_position_embeddings", None))
        if original is None:
            raise ConfigError("longrope needs original_max_position_embeddings in the HF config")
        factor = params.get("factor") or hf_config.max_position_embeddings / original
        attention = params.get("attention_factor")
        if attention is None:  # as transformers computes it
            attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        return {"rotary_longrope": {
            "short_factor": [float(x) for x in params["short_factor"]],
            "long_factor": [float(x) for x in params["long_factor"]],
            "original_max_position_embeddings": int(original),
            "attention_factor": float(attention),
        }}
    raise ConfigError(f"unsupported rope_type {kind!r}; supported: " + ", ".join(repr(t) for t in _ROPE_TYPES))


def rope_fields(hf_config: Any, d_head: int, attn_types: list[str] | None = None) -> dict[str, Any]:
    """Rotary settings (base, rotary_dim, scaling) from an HF config.

    transformers 5 keeps them in ``rope_parameters`` (per layer type for Gemma 3:
    ``{"full_attention": ..., "sliding_attention": ...}``); 4.x used ``rope_theta`` /
    ``rope_scaling``. ``attn_types``: the layers' "global"/"local" kinds, to check that a
    global-only scaling is not applied to local layers.
    """
    params = dict(getattr(hf_config, "rope_parameters", None) or {})
    local: dict | None = None
    if "full_attention" in params or "sliding_attention" in params:
        local = dict(params.get("sliding_attention") or {})
        params = dict(params.get("full_attention") or {})
    scaling = params if "rope_type" in params else dict(getattr(hf_config, "rope_scaling", None) or {})
    theta = params.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    partial = params.get("partial_rotary_factor",
                         getattr(hf_config, "partial_rotary_factor", getattr(hf_config, "rotary_pct", 1.0)))
    rotary_dim = int(d_head * partial)
    fields: dict[str, Any] = {
        "positional_embedding_type": "rotary",
        "rotary_base": float(theta),
        "rotary_dim": rotary_dim,
        "rotary_adjacent_pairs": False,
    }
    fields.update(_scaling_fields(scaling, hf_config, rotary_dim))
    has_local = bool(attn_types) and "local" in attn_types
    if local is not None:
        if _rope_kind(local) != "default":
            raise ConfigError(f"rope_type {_rope_kind(local)!r} on sliding-window layers is not supported; "
                              "supported there: 'default'")
        fields["rotary_base_local"] = float(local.get("rope_theta", theta))
    elif has_local and fields.get("rotary_scaling_factor", 1.0) != 1.0:
        raise ConfigError("linear rope scaling on a model with sliding-window layers is only supported when "
                          "the config gives rope parameters per layer type (as Gemma 3 does)")
    return fields


def attention_window_fields(hf_config: Any, default_local: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Sliding-window attention per layer (``attn_types`` of "global"/"local", ``window_size``).

    transformers 5 configs list ``layer_types``; older ones leave the pattern to the modeling
    code, which ``default_local(layer)`` reproduces (every layer when not given).
    """
    window = getattr(hf_config, "sliding_window", None)
    layer_types = getattr(hf_config, "layer_types", None)
    n = hf_config.num_hidden_layers
    if layer_types is not None:
        types = ["local" if t == "sliding_attention" else "global" for t in layer_types[:n]]
    elif window is not None and getattr(hf_config, "use_sliding_window", True):
        types = ["local" if default_local is None or default_local(i) else "global" for i in range(n)]
    else:
        types = ["global"] * n
    if "local" not in types:
        return {"use_local_attn": False, "window_size": None, "attn_types": None}
    if window is None:  # layer kinds without a window still pick per-kind rope bases
        return {"use_local_attn": False, "window_size": None, "attn_types": types}
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

"""Phi-3 family: Llama-style with the Q/K/V projections fused (``qkv_proj``, rows [q | k | v])
and the gate/up projections fused (``gate_up_proj``, rows [gate | up]), a sliding window on
every layer when ``sliding_window`` is set, and LongRoPE (``rope_type="longrope"``: short or
long per-frequency factors by sequence length) where the config declares it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ._common import with_prefix
from ._decoder import convert_decoder, decoder_config

MODEL_TYPES = ("phi3",)
ARCHITECTURES = ("Phi3ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    return decoder_config(hf_config)


def _unfused(sd: Mapping[str, torch.Tensor], cfg: Any) -> dict[str, torch.Tensor]:
    """The state dict with qkv_proj / gate_up_proj split into Llama's names (views, no copies)."""
    H, D = cfg.n_heads, cfg.d_head
    K = cfg.n_key_value_heads or H
    out: dict[str, torch.Tensor] = {}
    for key in sd:
        if key.endswith("self_attn.qkv_proj.weight"):
            W = sd[key]
            a = key[: -len("qkv_proj.weight")]
            out[a + "q_proj.weight"] = W[: H * D]
            out[a + "k_proj.weight"] = W[H * D : (H + K) * D]
            out[a + "v_proj.weight"] = W[(H + K) * D :]
        elif key.endswith("mlp.gate_up_proj.weight"):
            W = sd[key]
            m = key[: -len("gate_up_proj.weight")]
            out[m + "gate_proj.weight"] = W[: cfg.d_mlp]
            out[m + "up_proj.weight"] = W[cfg.d_mlp :]
        else:
            out[key] = sd[key]
    return out


def convert_state_dict(hf_state_dict, cfg) -> dict:
    sd = with_prefix(hf_state_dict, "model.", ("lm_head.weight",))
    return convert_decoder(_unfused(sd, cfg), cfg)

"""Qwen3 family: Llama-style with per-head RMSNorm on queries and keys (``use_qk_norm``),
optional biases on every attention projection (``attention_bias``), GQA and an optional
sliding window on the layers from ``max_window_layers`` on."""

from __future__ import annotations

from typing import Any

from ._decoder import convert_decoder, decoder_config

MODEL_TYPES = ("qwen3",)
ARCHITECTURES = ("Qwen3ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    first = getattr(hf_config, "max_window_layers", 0) or 0
    fields = decoder_config(hf_config, default_local=lambda layer: layer >= first)
    fields.update(use_qk_norm=True, qk_norm_scope="head")
    return fields


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg)

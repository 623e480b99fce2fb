"""Qwen2 family: Llama-style with biases on the Q/K/V projections, GQA, and an optional sliding
window on the layers from ``max_window_layers`` on."""

from __future__ import annotations

from typing import Any

from ._decoder import convert_decoder, decoder_config

MODEL_TYPES = ("qwen2",)
ARCHITECTURES = ("Qwen2ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    # configs without layer_types: layers from max_window_layers on slide (as transformers does)
    first = getattr(hf_config, "max_window_layers", 0) or 0
    return decoder_config(hf_config, default_local=lambda layer: layer >= first)


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg)

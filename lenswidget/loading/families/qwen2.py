"""Qwen2 family: Llama-style with biases on the Q/K/V projections, GQA, optional sliding window."""

from __future__ import annotations

from typing import Any

from ._decoder import convert_decoder, decoder_config

MODEL_TYPES = ("qwen2",)
ARCHITECTURES = ("Qwen2ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    return decoder_config(hf_config)


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg)

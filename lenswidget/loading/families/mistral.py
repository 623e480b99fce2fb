"""Mistral family: Llama-style with sliding-window attention on every layer."""

from __future__ import annotations

from typing import Any

from ._decoder import convert_decoder, decoder_config

MODEL_TYPES = ("mistral",)
ARCHITECTURES = ("MistralForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    return decoder_config(hf_config)


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg)

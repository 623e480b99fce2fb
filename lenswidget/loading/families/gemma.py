"""Gemma (1) family: RMSNorm applying (1 + w), embeddings scaled by sqrt(d_model), GeGLU (tanh).

The +1 is folded into the stored norm weights and the scale into W_E, so the generic
components need no Gemma-specific code.
"""

from __future__ import annotations

from typing import Any

from ._decoder import convert_decoder, decoder_config

MODEL_TYPES = ("gemma",)
ARCHITECTURES = ("GemmaForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    act = hf_config.hidden_act
    # Official Gemma configs say "gelu" but mean the tanh approximation (as transformers does).
    fields = decoder_config(hf_config, activation="gelu_pytorch_tanh" if act == "gelu" else act)
    fields["norm_weight_in_float32"] = True  # Gemma multiplies by (1 + w) in float32
    return fields


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg, norm_offset=1.0, embed_scale=cfg.d_model ** 0.5)

"""OLMo 2 family: RMSNorm *after* each sublayer only (``use_normalization_after_only``;
lenswidget's ``ln1``/``ln2`` are HF's ``post_attention_layernorm``/``post_feedforward_layernorm``,
as in TransformerLens) and RMSNorm on the full query/key projections, across heads
(``qk_norm_scope="full"``). Its norms multiply by their weight in float32."""

from __future__ import annotations

from typing import Any

from ._decoder import AFTER_NORMS, convert_decoder, decoder_config

MODEL_TYPES = ("olmo2",)
ARCHITECTURES = ("Olmo2ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    fields = decoder_config(hf_config)
    fields.update(use_qk_norm=True, qk_norm_scope="full", use_normalization_after_only=True,
                  norm_weight_in_float32=True)
    return fields


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg, norms=AFTER_NORMS)

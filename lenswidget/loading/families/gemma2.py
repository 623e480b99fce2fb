"""Gemma-2 family: Gemma plus post-attention/post-MLP norms, attention and final logit
soft-capping, ``query_pre_attn_scalar`` attention scale, alternating sliding-window layers."""

from __future__ import annotations

from typing import Any

from ._decoder import SANDWICH_NORMS, convert_decoder, decoder_config

MODEL_TYPES = ("gemma2",)
ARCHITECTURES = ("Gemma2ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    c = hf_config
    act = getattr(c, "hidden_activation", None) or c.hidden_act
    # configs without layer_types (older transformers): even layers slide, odd ones are global
    fields = decoder_config(c, activation=act, default_local=lambda layer: layer % 2 == 0)
    fields.update(
        use_normalization_before_and_after=True,
        attn_scale=float(c.query_pre_attn_scalar) ** 0.5,
        attn_scores_soft_cap=float(c.attn_logit_softcapping or -1.0),
        output_logits_soft_cap=float(c.final_logit_softcapping or -1.0),
        norm_weight_in_float32=True,  # Gemma multiplies by (1 + w) in float32
    )
    return fields


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg, norm_offset=1.0, embed_scale=cfg.d_model ** 0.5,
                           norms=SANDWICH_NORMS)

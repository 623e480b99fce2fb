"""Gemma 3 (text) family: Gemma 2's sandwich norms, (1 + w) RMSNorms and scaled embeddings,
plus per-head qk-norm, a rotary base per layer kind (``rotary_base_local`` for the
sliding-window layers), linear rope scaling on the global layers (``rotary_scaling_factor``)
and the sliding-window layer pattern (``layer_types``, or every ``sliding_window_pattern``-th
layer global in older configs). No soft caps unless the config sets them."""

from __future__ import annotations

from typing import Any

from lenswidget.errors import ConfigError

from ._decoder import SANDWICH_NORMS, convert_decoder, decoder_config

MODEL_TYPES = ("gemma3_text",)
ARCHITECTURES = ("Gemma3ForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    c = hf_config
    if getattr(c, "use_bidirectional_attention", False):
        raise ConfigError("Gemma 3 with use_bidirectional_attention=True (an encoder) is not supported; "
                          "lenswidget runs causal decoders")
    pattern = getattr(c, "sliding_window_pattern", None) or getattr(c, "_sliding_window_pattern", None) or 6
    act = getattr(c, "hidden_activation", None) or c.hidden_act
    fields = decoder_config(c, activation=act, default_local=lambda layer: bool((layer + 1) % pattern))
    fields.update(
        use_qk_norm=True,
        qk_norm_scope="head",
        use_normalization_before_and_after=True,
        norm_weight_in_float32=True,
        attn_scale=float(c.query_pre_attn_scalar) ** 0.5,
        attn_scores_soft_cap=float(getattr(c, "attn_logit_softcapping", None) or -1.0),
        output_logits_soft_cap=float(getattr(c, "final_logit_softcapping", None) or -1.0),
    )
    return fields


def convert_state_dict(hf_state_dict, cfg) -> dict:
    return convert_decoder(hf_state_dict, cfg, norm_offset=1.0, embed_scale=cfg.d_model ** 0.5,
                           norms=SANDWICH_NORMS)

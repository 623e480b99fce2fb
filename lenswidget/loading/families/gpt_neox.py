"""GPT-NeoX / Pythia family: LayerNorm, partial rotary (``partial_rotary_factor``/``rotary_pct``),
parallel attention + MLP (``use_parallel_residual``), Q/K/V fused and interleaved per head,
untied ``embed_out`` (``lm_head`` in transformers 5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ._common import act_fn, bias_or_zeros, heads_out, put_attention, rope_fields, with_prefix

MODEL_TYPES = ("gpt_neox",)
ARCHITECTURES = ("GPTNeoXForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    c = hf_config
    d_head = c.hidden_size // c.num_attention_heads
    fields = {
        "d_model": c.hidden_size,
        "d_head": d_head,
        "n_heads": c.num_attention_heads,
        "n_key_value_heads": None,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": c.max_position_embeddings,
        "d_vocab": c.vocab_size,
        "d_vocab_out": c.vocab_size,
        "act_fn": act_fn(c.hidden_act),
        "eps": c.layer_norm_eps,
        "normalization_type": "LN",
        "gated_mlp": False,
        "parallel_attn_mlp": bool(c.use_parallel_residual),
        "tie_word_embeddings": bool(getattr(c, "tie_word_embeddings", False)),
        "default_prepend_bos": True,  # TransformerLens convention for Pythia
        "norm_weight_in_float32": True,  # nn.LayerNorm applies w and b before rounding
    }
    fields.update(rope_fields(c, d_head))
    return fields


def convert_state_dict(hf_state_dict: Mapping[str, torch.Tensor], cfg: Any) -> dict:
    sd = with_prefix(hf_state_dict, "gpt_neox.", ("embed_out.weight", "lm_head.weight"))
    H, D, M = cfg.n_heads, cfg.d_head, cfg.d_model
    E = sd["gpt_neox.embed_in.weight"]
    out: dict[str, torch.Tensor] = {"embed.W_E": E}
    for layer in range(cfg.n_layers):
        p, b = f"gpt_neox.layers.{layer}.", f"blocks.{layer}."
        out[b + "ln1.w"], out[b + "ln1.b"] = sd[p + "input_layernorm.weight"], sd[p + "input_layernorm.bias"]
        out[b + "ln2.w"] = sd[p + "post_attention_layernorm.weight"]
        out[b + "ln2.b"] = sd[p + "post_attention_layernorm.bias"]
        # Output features are laid out per head as [q | k | v] (HF views them as [H, 3*D]).
        W = sd[p + "attention.query_key_value.weight"].reshape(H, 3, D, M).permute(1, 0, 3, 2)
        qkv_b = bias_or_zeros(sd, p + "attention.query_key_value.bias", (H, 3, D), W)
        O = sd[p + "attention.dense.weight"]
        put_attention(out, layer, cfg, W[0], qkv_b[:, 0], W[1], qkv_b[:, 1], W[2], qkv_b[:, 2],
                      heads_out(O, H, D), bias_or_zeros(sd, p + "attention.dense.bias", (M,), O))
        out[b + "mlp.W_in"] = sd[p + "mlp.dense_h_to_4h.weight"].T
        out[b + "mlp.b_in"] = sd[p + "mlp.dense_h_to_4h.bias"]
        out[b + "mlp.W_out"] = sd[p + "mlp.dense_4h_to_h.weight"].T
        out[b + "mlp.b_out"] = sd[p + "mlp.dense_4h_to_h.bias"]
    out["ln_final.w"] = sd["gpt_neox.final_layer_norm.weight"]
    out["ln_final.b"] = sd["gpt_neox.final_layer_norm.bias"]
    head = sd.get("embed_out.weight", sd.get("lm_head.weight"))  # transformers 5 names it lm_head
    if head is None or cfg.tie_word_embeddings:
        head = E
    out["unembed.W_U"] = head.T
    out["unembed.b_U"] = torch.zeros(head.shape[0], dtype=head.dtype)
    return out

"""GPT-2 family: LayerNorm, learned absolute positions, Conv1D ([in, out]) weights, gelu_new,
fused ``c_attn`` Q/K/V, tied unembedding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ._common import act_fn, put_attention, with_prefix

MODEL_TYPES = ("gpt2",)
ARCHITECTURES = ("GPT2LMHeadModel",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    c = hf_config
    return {
        "d_model": c.n_embd,
        "d_head": c.n_embd // c.n_head,
        "n_heads": c.n_head,
        "n_key_value_heads": None,
        "d_mlp": c.n_inner or 4 * c.n_embd,
        "n_layers": c.n_layer,
        "n_ctx": c.n_positions,
        "d_vocab": c.vocab_size,
        "d_vocab_out": c.vocab_size,
        "act_fn": act_fn(c.activation_function),
        "eps": c.layer_norm_epsilon,
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "use_attn_scale": bool(c.scale_attn_weights),
        "scale_attn_by_inverse_layer_idx": bool(c.scale_attn_by_inverse_layer_idx),
        "gated_mlp": False,
        "parallel_attn_mlp": False,
        "tie_word_embeddings": True,
        "default_prepend_bos": True,  # TransformerLens convention for GPT-2 (BOS = <|endoftext|>)
        "norm_weight_in_float32": True,  # nn.LayerNorm applies w and b before rounding
    }


def convert_state_dict(hf_state_dict: Mapping[str, torch.Tensor], cfg: Any) -> dict:
    sd = with_prefix(hf_state_dict, "transformer.", ("lm_head.weight",))
    H, D, M = cfg.n_heads, cfg.d_head, cfg.d_model
    out: dict[str, torch.Tensor] = {
        "embed.W_E": sd["transformer.wte.weight"],
        "pos_embed.W_pos": sd["transformer.wpe.weight"],
    }
    for layer in range(cfg.n_layers):
        p, b = f"transformer.h.{layer}.", f"blocks.{layer}."
        out[b + "ln1.w"], out[b + "ln1.b"] = sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]
        out[b + "ln2.w"], out[b + "ln2.b"] = sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]
        W = sd[p + "attn.c_attn.weight"].reshape(M, 3, H, D).permute(1, 2, 0, 3)  # [3,H,M,D]
        bias = sd[p + "attn.c_attn.bias"].reshape(3, H, D)
        put_attention(out, layer, cfg, W[0], bias[0], W[1], bias[1], W[2], bias[2],
                      sd[p + "attn.c_proj.weight"].reshape(H, D, M), sd[p + "attn.c_proj.bias"])
        out[b + "mlp.W_in"], out[b + "mlp.b_in"] = sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]
        out[b + "mlp.W_out"], out[b + "mlp.b_out"] = sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"]
    out["ln_final.w"], out["ln_final.b"] = sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]
    head = sd.get("lm_head.weight", sd["transformer.wte.weight"])
    out["unembed.W_U"] = head.T
    out["unembed.b_U"] = torch.zeros(head.shape[0], dtype=head.dtype)
    return out

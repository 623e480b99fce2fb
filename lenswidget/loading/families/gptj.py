"""GPT-J family: LayerNorm, parallel attention + MLP reading one shared norm (``ln_1``, copied
into lenswidget's ``ln1`` and ``ln2`` as TransformerLens does), partial rotary on adjacent
pairs (``rotary_dim``, ``rotary_adjacent_pairs``), no attention biases, gelu_new MLP with
biases and an LM head with a bias."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ._common import act_fn, heads_in, heads_out, put_attention, with_prefix

MODEL_TYPES = ("gptj",)
ARCHITECTURES = ("GPTJForCausalLM",)


def config_from_hf(hf_config: Any) -> dict[str, Any]:
    c = hf_config
    d_head = c.n_embd // c.n_head
    return {
        "d_model": c.n_embd,
        "d_head": d_head,
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
        "positional_embedding_type": "rotary",
        "rotary_dim": c.rotary_dim or d_head,
        "rotary_adjacent_pairs": True,
        "rotary_base": 10000.0,
        "gated_mlp": False,
        "parallel_attn_mlp": True,
        "tie_word_embeddings": bool(getattr(c, "tie_word_embeddings", False)),
        "norm_weight_in_float32": True,  # nn.LayerNorm applies w and b before rounding
    }


def convert_state_dict(hf_state_dict: Mapping[str, torch.Tensor], cfg: Any) -> dict:
    sd = with_prefix(hf_state_dict, "transformer.", ("lm_head.weight", "lm_head.bias"))
    H, D, M = cfg.n_heads, cfg.d_head, cfg.d_model
    E = sd["transformer.wte.weight"]
    out: dict[str, torch.Tensor] = {"embed.W_E": E}
    zeros = torch.zeros(H, D, dtype=E.dtype)
    for layer in range(cfg.n_layers):
        p, b = f"transformer.h.{layer}.", f"blocks.{layer}."
        w, bias = sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]
        out[b + "ln1.w"], out[b + "ln1.b"] = w, bias
        out[b + "ln2.w"], out[b + "ln2.b"] = w, bias  # one norm feeds both sublayers
        a = p + "attn."
        put_attention(out, layer, cfg,
                      heads_in(sd[a + "q_proj.weight"], H, D), zeros,
                      heads_in(sd[a + "k_proj.weight"], H, D), zeros,
                      heads_in(sd[a + "v_proj.weight"], H, D), zeros,
                      heads_out(sd[a + "out_proj.weight"], H, D), torch.zeros(M, dtype=E.dtype))
        out[b + "mlp.W_in"], out[b + "mlp.b_in"] = sd[p + "mlp.fc_in.weight"].T, sd[p + "mlp.fc_in.bias"]
        out[b + "mlp.W_out"], out[b + "mlp.b_out"] = sd[p + "mlp.fc_out.weight"].T, sd[p + "mlp.fc_out.bias"]
    out["ln_final.w"], out["ln_final.b"] = sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]
    head = sd.get("lm_head.weight")
    if head is None or cfg.tie_word_embeddings:
        head = E
    out["unembed.W_U"] = head.T
    b_U = sd.get("lm_head.bias")
    out["unembed.b_U"] = b_U if b_U is not None else torch.zeros(head.shape[0], dtype=head.dtype)
    return out

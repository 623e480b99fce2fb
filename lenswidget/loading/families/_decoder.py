"""Converter shared by Llama-style checkpoints (``model.layers.N.self_attn.q_proj`` ...).

Llama, Qwen2, Mistral and Gemma 1/2 all store weights this way; the family modules add their
config quirks and pass the options below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from lenswidget.errors import ConfigError

from ._common import (act_fn, attention_window_fields, bias_or_zeros, heads_in, heads_out,
                      kv_heads, put_attention, rope_fields, with_prefix)


def decoder_config(hf_config: Any, activation: str | None = None,
                   default_local: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Fields every Llama-style decoder shares: RMS pre-norms, rotary, gated MLP, GQA.

    ``default_local(layer)``: which layers slide when the config has no ``layer_types``
    (older transformers configs); see :func:`attention_window_fields`.
    """
    c = hf_config
    d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if getattr(c, "mlp_bias", False):
        raise ConfigError("gated MLPs with biases (mlp_bias=True) are not supported: the gate "
                          "projection has no bias parameter in lenswidget")
    fields = {
        "d_model": c.hidden_size,
        "d_head": d_head,
        "n_heads": c.num_attention_heads,
        "n_key_value_heads": kv_heads(c),
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": c.max_position_embeddings,
        "d_vocab": c.vocab_size,
        "d_vocab_out": c.vocab_size,
        "act_fn": act_fn(activation or c.hidden_act),
        "eps": c.rms_norm_eps,
        "normalization_type": "RMS",
        "final_rms": True,
        "gated_mlp": True,
        "parallel_attn_mlp": False,
        "tie_word_embeddings": bool(getattr(c, "tie_word_embeddings", False)),
    }
    fields.update(attention_window_fields(c, default_local))
    fields.update(rope_fields(c, d_head, fields["attn_types"]))
    return fields


_PRE_NORMS = (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm"))
#: Gemma 2/3: norms before and after each sublayer
SANDWICH_NORMS = (("ln1", "input_layernorm"), ("ln1_post", "post_attention_layernorm"),
                  ("ln2", "pre_feedforward_layernorm"), ("ln2_post", "post_feedforward_layernorm"))
#: OLMo 2: norms after each sublayer only (lenswidget's ln1/ln2, as TransformerLens names them)
AFTER_NORMS = (("ln1", "post_attention_layernorm"), ("ln2", "post_feedforward_layernorm"))


def convert_decoder(hf_sd: Mapping[str, torch.Tensor], cfg: Any, norm_offset: float = 0.0,
                    embed_scale: float | None = None, norms=_PRE_NORMS) -> dict:
    """HF Llama-style state dict -> lenswidget state dict.

    ``norm_offset`` is added to every RMSNorm weight, in float32 (Gemma stores ``w`` and
    applies ``1 + w`` in float32). ``embed_scale`` multiplies W_E, rounded to ``cfg.dtype``
    first exactly as HF rounds its normaliser, so the product is bit-identical. ``norms``
    maps each layer's norms (ours, HF's): pre-norms, :data:`SANDWICH_NORMS` or
    :data:`AFTER_NORMS`. With ``cfg.use_qk_norm`` the attention's ``q_norm``/``k_norm`` come too.
    """
    sd = with_prefix(hf_sd, "model.", ("lm_head.weight",))
    H, D = cfg.n_heads, cfg.d_head
    K = cfg.n_key_value_heads or H
    out: dict[str, torch.Tensor] = {}

    E = sd["model.embed_tokens.weight"]
    if embed_scale is not None:
        dtype = getattr(cfg, "dtype", None) or E.dtype
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        scale = torch.tensor(embed_scale, dtype=torch.float32).to(dtype)
        out["embed.W_E"] = (E.to(dtype) * scale).to(E.dtype)
    else:
        out["embed.W_E"] = E

    def norm(key: str) -> torch.Tensor:
        w = sd[key]
        return w.float() + norm_offset if norm_offset else w

    for layer in range(cfg.n_layers):
        p = f"model.layers.{layer}."
        for ours, theirs in norms:
            out[f"blocks.{layer}.{ours}.w"] = norm(p + theirs + ".weight")
        a = p + "self_attn."
        if getattr(cfg, "use_qk_norm", False):
            out[f"blocks.{layer}.attn.q_norm.w"] = norm(a + "q_norm.weight")
            out[f"blocks.{layer}.attn.k_norm.w"] = norm(a + "k_norm.weight")
        W_Q = heads_in(sd[a + "q_proj.weight"], H, D)
        W_K = heads_in(sd[a + "k_proj.weight"], K, D)
        W_V = heads_in(sd[a + "v_proj.weight"], K, D)
        W_O = heads_out(sd[a + "o_proj.weight"], H, D)
        put_attention(
            out, layer, cfg,
            W_Q, bias_or_zeros(sd, a + "q_proj.bias", (H, D), W_Q),
            W_K, bias_or_zeros(sd, a + "k_proj.bias", (K, D), W_K),
            W_V, bias_or_zeros(sd, a + "v_proj.bias", (K, D), W_V),
            W_O, bias_or_zeros(sd, a + "o_proj.bias", (cfg.d_model,), W_O),
        )
        m = p + "mlp."
        out[f"blocks.{layer}.mlp.W_in"] = sd[m + "up_proj.weight"].T
        out[f"blocks.{layer}.mlp.W_gate"] = sd[m + "gate_proj.weight"].T
        out[f"blocks.{layer}.mlp.W_out"] = sd[m + "down_proj.weight"].T
        out[f"blocks.{layer}.mlp.b_in"] = torch.zeros(cfg.d_mlp, dtype=E.dtype)
        out[f"blocks.{layer}.mlp.b_out"] = torch.zeros(cfg.d_model, dtype=E.dtype)

    out["ln_final.w"] = norm("model.norm.weight")
    head = sd.get("lm_head.weight")
    if head is None or getattr(cfg, "tie_word_embeddings", False):
        head = E  # tied: the unscaled embedding matrix
    out["unembed.W_U"] = head.T
    out["unembed.b_U"] = torch.zeros(head.shape[0], dtype=head.dtype)
    return out


"""HookedTransformer: forward maths, hook inventory and shapes, attention paths, layer ranges,
padding, tokenisation, weight properties, toggles and bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch

from lenswidget.errors import (
    ConfigError,
    InvalidOptionError,
    OutOfRangeError,
    ShapeMismatchError,
    TokenizationError,
)
from lenswidget.model import HookedTransformer
from tests.models import FAMILIES, tiny_cfg, tiny_model, tiny_tokenizer

TOKENS = torch.tensor([[5, 17, 42, 7, 99, 3, 120], [8, 1, 2, 250, 11, 9, 64]])
ALL_PATTERNS = (lambda n: n.endswith("hook_pattern"), lambda x, hook: None)


def randomize(model: HookedTransformer, seed: int = 0) -> HookedTransformer:
    """Random weights everywhere, including norm weights and biases (so wiring is tested)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith(".w"):
                p.copy_(1 + 0.2 * noise)
            elif p.ndim == 1 or name.split(".")[-1].startswith(("b_", "_b_")):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[-2] if p.ndim >= 2 else 1))
    return model


@pytest.fixture(scope="module")
def models():
    return {f: randomize(tiny_model(f, tokenizer=True)) for f in FAMILIES}


# ---------------------------------------------------------------------------- reference maths
def _norm(mod, x, cfg):
    if mod is None:
        return x
    name = type(mod).__name__
    if name.startswith("LayerNorm"):
        x = x - x.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt()
    if hasattr(mod, "w"):
        x = x * mod.w
    if hasattr(mod, "b"):
        x = x + mod.b
    return x


def _rotate(x, cfg):
    """NeoX-style rotary on [batch, pos, head, d_head], written with explicit angles."""
    rd = cfg.rotary_dim
    half = rd // 2
    pos = torch.arange(x.shape[1], dtype=torch.float64)
    freqs = cfg.rotary_base ** (-torch.arange(half, dtype=torch.float64) * 2 / rd)
    ang = (pos[:, None] * freqs[None]).float()[None, :, None, :]
    a, b = x[..., :half], x[..., half:rd]
    out = torch.cat([a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin()], -1)
    return torch.cat([out, x[..., rd:]], -1)


def reference_logits(model, tokens):
    cfg = model.cfg
    act = {"gelu_new": lambda t: torch.nn.functional.gelu(t, approximate="tanh"), "gelu": torch.nn.functional.gelu,
           "silu": torch.nn.functional.silu}[cfg.act_fn]
    x = model.W_E[tokens]
    p = tokens.shape[1]
    if cfg.positional_embedding_type == "standard":
        x = x + model.W_pos[:p]
    causal = torch.tril(torch.ones(p, p, dtype=torch.bool))
    for blk in model.blocks:
        at = blk.attn
        h = _norm(blk.ln1, x, cfg)
        q = torch.einsum("bpm,nmh->bpnh", h, at.W_Q) + at.b_Q
        k = torch.einsum("bpm,nmh->bpnh", h, at.W_K) + at.b_K
        v = torch.einsum("bpm,nmh->bpnh", h, at.W_V) + at.b_V
        if cfg.positional_embedding_type == "rotary":
            q, k = _rotate(q, cfg), _rotate(k, cfg)
        scores = torch.einsum("bqnh,bknh->bnqk", q, k) / cfg.attn_scale
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        z = torch.einsum("bnqk,bknh->bqnh", pattern, v)
        attn_out = torch.einsum("bqnh,nhm->bqm", z, at.W_O) + at.b_O
        mlp_in = x if cfg.parallel_attn_mlp else x + attn_out
        m = _norm(blk.ln2, mlp_in, cfg)
        if cfg.gated_mlp:
            post = act(m @ blk.mlp.W_gate) * (m @ blk.mlp.W_in + blk.mlp.b_in)
        else:
            post = act(m @ blk.mlp.W_in + blk.mlp.b_in)
        x = mlp_in + post @ blk.mlp.W_out + blk.mlp.b_out + (attn_out if cfg.parallel_attn_mlp else 0)
    return _norm(model.ln_final, x, cfg) @ model.W_U + model.b_U


@pytest.mark.parametrize("family", ["gpt2", "llama", "neox"])
def test_forward_matches_reference_maths(models, family):
    model = models[family]
    ref = reference_logits(model, TOKENS)
    assert torch.allclose(model(TOKENS), ref, atol=1e-4)
    assert torch.allclose(model.run_with_hooks(TOKENS, fwd_hooks=[ALL_PATTERNS]), ref, atol=1e-4)


# ---------------------------------------------------------------------------- hook inventory and shapes
def test_gpt2_hook_names_and_shapes(models):
    model = models["gpt2"]
    _, cache = model.run_with_cache(TOKENS)
    shapes = {k: tuple(v.shape) for k, v in cache.cache_dict.items()}
    assert shapes["hook_embed"] == shapes["hook_pos_embed"] == (2, 7, 32)
    assert shapes["blocks.0.ln1.hook_scale"] == (2, 7, 1)
    assert shapes["blocks.0.ln1.hook_normalized"] == (2, 7, 32)
    for name in ("q", "k", "v", "z"):
        assert shapes[f"blocks.1.attn.hook_{name}"] == (2, 7, 4, 8)
    assert shapes["blocks.1.attn.hook_attn_scores"] == shapes["blocks.1.attn.hook_pattern"] == (2, 4, 7, 7)
    assert shapes["blocks.1.mlp.hook_pre"] == shapes["blocks.1.mlp.hook_post"] == (2, 7, 128)
    for name in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
        assert shapes[f"blocks.0.hook_{name}"] == (2, 7, 32)
    assert shapes["ln_final.hook_scale"] == (2, 7, 1)
    assert not any("rot_" in k or "hook_tokens" in k for k in model.hook_dict)
    assert "blocks.0.attn.hook_result" in model.hook_dict and "blocks.0.attn.hook_result" not in shapes
    order = list(cache.cache_dict)
    assert order[:4] == ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale"]
    assert order.index("blocks.0.attn.hook_attn_scores") < order.index("blocks.0.attn.hook_pattern") < order.index("blocks.0.attn.hook_z")
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones(2, 4, 7))
    assert torch.all(pattern.triu(1) == 0)
    assert torch.isinf(cache["blocks.0.attn.hook_attn_scores"][0, 0, 0, 1])


def test_llama_gqa_rotary_gated_hooks(models):
    model = models["llama"]
    _, cache = model.run_with_cache(TOKENS)
    shapes = {k: tuple(v.shape) for k, v in cache.cache_dict.items()}
    assert "hook_pos_embed" not in shapes
    assert shapes["blocks.0.attn.hook_q"] == shapes["blocks.0.attn.hook_rot_q"] == (2, 7, 4, 8)
    assert shapes["blocks.0.attn.hook_k"] == shapes["blocks.0.attn.hook_rot_k"] == (2, 7, 2, 8)
    assert shapes["blocks.0.attn.hook_v"] == (2, 7, 2, 8)
    assert shapes["blocks.0.attn.hook_z"] == (2, 7, 4, 8)
    assert shapes["blocks.0.mlp.hook_pre"] == shapes["blocks.0.mlp.hook_pre_linear"] == (2, 7, 64)
    before = model(TOKENS)
    model.set_ungroup_grouped_query_attention(True)
    try:
        _, cache2 = model.run_with_cache(TOKENS, names_filter=["blocks.0.attn.hook_k", "blocks.0.attn.hook_v"])
        assert cache2["blocks.0.attn.hook_k"].shape == (2, 7, 4, 8)
        assert torch.equal(cache2["blocks.0.attn.hook_v"][:, :, 0], cache2["blocks.0.attn.hook_v"][:, :, 1])
        assert torch.allclose(model(TOKENS), before, atol=1e-5)
    finally:
        model.set_ungroup_grouped_query_attention(False)


def test_parallel_and_post_norm_blocks(models):
    neox = models["neox"]
    assert "blocks.0.hook_resid_mid" not in neox.hook_dict
    _, cache = neox.run_with_cache(TOKENS)
    total = cache["blocks.0.hook_resid_pre"] + cache["blocks.0.hook_attn_out"] + cache["blocks.0.hook_mlp_out"]
    assert torch.allclose(total, cache["blocks.0.hook_resid_post"], atol=1e-6)
    gemma = models["gemma2"]
    assert "blocks.0.ln1_post.hook_scale" in gemma.hook_dict and "blocks.1.ln2_post.hook_normalized" in gemma.hook_dict
    assert gemma(TOKENS).abs().max() <= 30.0  # output soft cap


def test_attn_only_model():
    model = tiny_model("gpt2", attn_only=True)
    assert "blocks.0.mlp.hook_pre" not in model.hook_dict and "blocks.0.hook_resid_mid" not in model.hook_dict
    assert "blocks.0.hook_mlp_out" in model.hook_dict  # TransformerLens creates it (it never fires)
    _, cache = model.run_with_cache(TOKENS)
    assert torch.allclose(cache["blocks.0.hook_resid_pre"] + cache["blocks.0.hook_attn_out"], cache["blocks.0.hook_resid_post"])
    with pytest.raises(ConfigError, match="attn_only"):
        model.W_in


# ---------------------------------------------------------------------------- SDPA vs explicit attention
@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_and_explicit_attention_agree(models, family):
    model = models[family]
    fast = model(TOKENS)
    slow = model.run_with_hooks(TOKENS, fwd_hooks=[ALL_PATTERNS])
    assert torch.allclose(fast, slow, atol=1e-5)
    model.tokenizer.padding_side = "left"
    try:
        texts = ["Hello world", "The cat sat on the mat. The dog"]
        fast = model(texts)
        slow = model.run_with_hooks(texts, fwd_hooks=[ALL_PATTERNS])
    finally:
        model.tokenizer.padding_side = "right"
    assert torch.isfinite(fast).all()
    assert torch.allclose(fast, slow, atol=1e-5)


def test_explicit_path_is_only_used_when_needed(models, monkeypatch):
    model = models["llama"]
    calls = []
    import lenswidget.components.attention as attention

    real = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    model(TOKENS)
    assert len(calls) == 2
    model.run_with_cache(TOKENS, names_filter="blocks.0.attn.hook_pattern")
    assert len(calls) == 3  # layer 0 materialised its pattern, layer 1 used SDPA


# ---------------------------------------------------------------------------- layer ranges
@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("k", [0, 1, 2, -1, -2])
def test_stop_then_start_at_layer_reproduces_forward(models, family, k):
    model = models[family]
    full = model(TOKENS)
    resid = model(TOKENS, stop_at_layer=k)
    assert resid.shape == (2, 7, 32)
    assert torch.equal(model(resid, start_at_layer=k), full)


def test_stop_at_layer_returns_resid_pre(models):
    model = models["gpt2"]
    _, cache = model.run_with_cache(TOKENS)
    assert torch.allclose(model(TOKENS, stop_at_layer=1), cache["blocks.1.hook_resid_pre"], atol=1e-5)  # SDPA vs explicit
    assert torch.allclose(model(TOKENS, stop_at_layer=0), cache["blocks.0.hook_resid_pre"])


def test_start_at_layer_with_loss_needs_tokens(models):
    model = models["gpt2"]
    resid = model(TOKENS, stop_at_layer=1)
    loss = model(resid, start_at_layer=1, tokens=TOKENS, return_type="loss")
    assert torch.allclose(loss, model(TOKENS, return_type="loss"))
    with pytest.raises(InvalidOptionError, match="tokens"):
        model(resid, start_at_layer=1, return_type="loss")
    with pytest.raises(ShapeMismatchError, match="d_model=32"):
        model(TOKENS, start_at_layer=1)


@pytest.mark.parametrize("kw", [dict(start_at_layer=3), dict(stop_at_layer=-3), dict(stop_at_layer=5)])
def test_out_of_range_layers(models, kw):
    with pytest.raises(OutOfRangeError) as err:
        models["gpt2"](TOKENS, **kw)
    msg = str(err.value)
    assert str(list(kw.values())[0]) in msg and "-2..2" in msg


def test_stop_before_start(models):
    with pytest.raises(OutOfRangeError, match="start_at_layer"):
        models["gpt2"](torch.zeros(1, 3, 32), start_at_layer=2, stop_at_layer=1)


# ---------------------------------------------------------------------------- return types, loss, errors
def test_return_types(models):
    model = models["gpt2"]
    logits = model(TOKENS)
    loss = model(TOKENS, return_type="loss")
    per_tok = model(TOKENS, return_type="loss", loss_per_token=True)
    both = model(TOKENS, return_type="both")
    assert loss.ndim == 0 and per_tok.shape == (2, 6)
    assert torch.allclose(per_tok.mean(), loss)
    assert torch.equal(both.logits, logits) and torch.equal(both.loss, loss)
    logp = logits.log_softmax(-1)
    expected = -logp[:, :-1].gather(-1, TOKENS[:, 1:, None]).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert model(TOKENS, return_type=None) is None
    with pytest.raises(InvalidOptionError, match="'both'"):
        model(TOKENS, return_type="probs")


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_input_longer_than_n_ctx(models, family):
    with pytest.raises(OutOfRangeError) as err:
        models[family](torch.zeros(1, 33, dtype=torch.long))
    assert "33" in str(err.value) and "n_ctx=32" in str(err.value)


def test_string_to_model_without_tokenizer():
    model = tiny_model("gpt2")
    with pytest.raises(TokenizationError) as err:
        model("Hello")
    assert "no tokenizer" in str(err.value) and "set_tokenizer" in str(err.value)
    with pytest.raises(TokenizationError, match="no tokenizer"):
        model.to_tokens("Hello")


def test_token_ids_outside_vocab(models):
    with pytest.raises(OutOfRangeError) as err:
        models["gpt2"](torch.tensor([[1, 2, 300]]))
    assert "300" in str(err.value) and "0..299" in str(err.value)


def test_one_dim_tokens_are_a_batch_of_one(models):
    model = models["gpt2"]
    assert torch.equal(model(TOKENS[0]), model(TOKENS[:1]))


# ---------------------------------------------------------------------------- padding
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_does_not_change_real_tokens(models, family, side):
    model = models[family]
    short, long = "Hello world", "The cat sat on the mat. The dog"
    alone = model(short)[0]
    batch = model([short, long], padding_side=side)
    n = alone.shape[0]
    got = batch[0, -n:] if side == "left" else batch[0, :n]
    assert torch.allclose(got, alone, atol=1e-5)
    assert torch.allclose(batch[1], model(long)[0], atol=1e-5)


def test_left_padded_token_input_uses_the_mask(models):
    model = models["llama"]
    toks = model.to_tokens(["Hello world", "The cat sat on the mat."], padding_side="left")
    model.tokenizer.padding_side = "left"
    try:
        from_tokens = model(toks)
    finally:
        model.tokenizer.padding_side = "right"
    assert torch.allclose(from_tokens, model(["Hello world", "The cat sat on the mat."], padding_side="left"), atol=1e-6)
    explicit = model(toks, attention_mask=(toks != model.tokenizer.pad_token_id).long())
    assert torch.allclose(from_tokens, explicit, atol=1e-6)


@pytest.mark.parametrize("family", ["llama", "neox"])
def test_padded_rotary_forward_works_under_inference_mode(models, family):
    # Rotary tables are memoised per positions tensor; inference tensors have no version counter.
    model = models[family]
    prompts = ["Hello world", "The cat sat on the mat."]
    expected = model(prompts, padding_side="left")
    with torch.inference_mode():
        got = model(prompts, padding_side="left")
    assert torch.allclose(got, expected, atol=1e-6)


def test_padded_loss_ignores_padding(models):
    model = models["gpt2"]
    per = model(["Hello world", "The cat sat on the mat."], return_type="loss", loss_per_token=True)
    n = len(model.to_str_tokens("Hello world"))
    assert torch.all(per[0, n - 1 :] == 0) and torch.all(per[0, : n - 1] > 0)


# ---------------------------------------------------------------------------- tokenisation
@pytest.fixture(scope="module")
def tok_model():
    return tiny_model("gpt2", tokenizer=True)


def test_to_tokens_bos_and_padding(tok_model):
    m = tok_model
    bos, pad = m.tokenizer.bos_token_id, m.tokenizer.pad_token_id
    t = m.to_tokens("Hello world")
    assert t.shape[0] == 1 and t[0, 0] == bos
    assert torch.equal(m.to_tokens("Hello world", prepend_bos=False), t[:, 1:])
    batch = m.to_tokens(["Hi", "Hello world"])
    assert batch[0, -1] == pad and batch[0, 0] == bos
    left = m.to_tokens(["Hi", "Hello world"], padding_side="left")
    assert left[0, 0] == pad and left[0, -1] != pad
    long = m.to_tokens("the " * 40)
    assert long.shape[1] == 32
    assert m.to_tokens("the " * 40, truncate=False).shape[1] > 32
    with pytest.raises(InvalidOptionError, match="'left'"):
        m.to_tokens("x", padding_side="middle")
    with pytest.raises(TokenizationError, match="no tokens"):
        m.to_tokens("", prepend_bos=False)
    assert m.to_tokens("").tolist() == [[bos]]


def test_prepend_bos_is_independent_of_tokenizer_auto_bos():
    tok = tiny_tokenizer()
    tok_auto = tiny_tokenizer()
    from tokenizers import processors

    tok_auto._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", special_tokens=[("<|bos|>", 0)]
    )
    a = tiny_model("gpt2", tokenizer=tok)
    b = tiny_model("gpt2", tokenizer=tok_auto)
    assert a.cfg.tokenizer_prepends_bos is False and b.cfg.tokenizer_prepends_bos is True
    for prepend in (True, False):
        assert torch.equal(a.to_tokens("Hello", prepend_bos=prepend), b.to_tokens("Hello", prepend_bos=prepend))


def test_default_prepend_bos_and_missing_pad():
    model = tiny_model("gpt2", tokenizer=tiny_tokenizer(pad=False, bos=False), default_prepend_bos=False)
    tok = model.tokenizer
    assert tok.pad_token_id == tok.eos_token_id == tok.bos_token_id == 1
    assert model.to_tokens("Hello")[0, 0] != 1
    assert model.to_tokens("Hello", prepend_bos=True)[0, 0] == 1


def test_str_tokens_and_string(tok_model):
    m = tok_model
    pieces = m.to_str_tokens("Hello world")
    assert pieces[0] == "<|bos|>" and "".join(pieces[1:]) == "Hello world"
    toks = m.to_tokens("Hello world")
    assert m.to_str_tokens(toks) == pieces == m.to_str_tokens(toks[0]) == m.to_str_tokens(toks[0].numpy())
    assert m.to_str_tokens(["Hi", "Hello"], prepend_bos=False) == [m.to_str_tokens("Hi", prepend_bos=False), m.to_str_tokens("Hello", prepend_bos=False)]
    two = m.to_tokens(["Hi", "Hello"])
    assert len(m.to_str_tokens(two)) == 2
    assert m.to_string(toks[0]) == "<|bos|>Hello world"
    assert m.to_string(toks) == ["<|bos|>Hello world"]
    assert m.to_string(toks[0, 1:].tolist()) == "Hello world"


def test_single_token_helpers(tok_model):
    m = tok_model
    tid = m.to_single_token(" the")
    assert m.to_single_str_token(tid) == " the"
    with pytest.raises(TokenizationError) as err:
        m.to_single_token("Hello world")
    msg = str(err.value)
    assert "'Hello world'" in msg and "tokens, not 1" in msg and "' w'" in msg
    with pytest.raises(OutOfRangeError, match="0..299"):
        m.to_single_str_token(300)


def test_get_token_position(tok_model):
    m = tok_model
    text = "the cat sat on the mat"
    first_id = int(m.to_tokens(text, prepend_bos=False)[0, 0])
    str_toks = m.to_str_tokens(text)
    first = str_toks.index(" the")
    last = len(str_toks) - 1 - str_toks[::-1].index(" the")
    assert m.get_token_position(" the", text) == first
    assert m.get_token_position(" the", text, mode="last") == last
    assert m.get_token_position(first_id, text, prepend_bos=False) == 0
    assert m.get_token_position(" the", m.to_tokens(text)) == first
    with pytest.raises(TokenizationError, match="does not occur"):
        m.get_token_position(" the", "cat", prepend_bos=False)
    with pytest.raises(InvalidOptionError, match="'last'"):
        m.get_token_position(" the", text, mode="middle")


# ---------------------------------------------------------------------------- weights, layout, toggles
def test_state_dict_follows_convention(models):
    sd = models["llama"].state_dict()
    assert sd["embed.W_E"].shape == (300, 32)
    assert sd["blocks.0.attn.W_Q"].shape == (4, 32, 8)
    assert sd["blocks.0.attn._W_K"].shape == (2, 32, 8) and sd["blocks.0.attn._b_V"].shape == (2, 8)
    assert sd["blocks.0.attn.W_O"].shape == (4, 8, 32)
    assert sd["blocks.0.mlp.W_gate"].shape == sd["blocks.0.mlp.W_in"].shape == (32, 64)
    assert sd["blocks.0.ln1.w"].shape == (32,) and "blocks.0.ln1.b" not in sd
    assert sd["unembed.W_U"].shape == (32, 300) and sd["unembed.b_U"].shape == (300,)
    assert not any("rotary" in k or "mask" in k for k in sd)
    gpt2 = models["gpt2"].state_dict()
    assert gpt2["pos_embed.W_pos"].shape == (32, 32) and gpt2["blocks.1.ln2.b"].shape == (32,)


@pytest.mark.parametrize("assign", [False, True])
def test_loading_a_state_dict_keeps_results_and_fast_layout(models, assign):
    from lenswidget.components.layout import has_fast_layout

    src = models["llama"]
    fresh = tiny_model("llama", seed=123)
    fresh.load_state_dict({k: v.contiguous().clone() for k, v in src.state_dict().items()}, assign=assign)
    assert torch.equal(fresh(TOKENS), src(TOKENS))
    for mod in fresh.modules():
        for name, order in getattr(mod, "LAYOUTS", {}).items():
            if name in mod._parameters:
                assert has_fast_layout(mod._parameters[name], order), name
    assert fresh.ensure_fast_layout() == 0


def test_stacked_weight_properties(models):
    m = models["llama"]
    assert m.W_Q.shape == (2, 4, 32, 8) and m.W_K.shape == (2, 4, 32, 8) and m.b_V.shape == (2, 4, 8)
    assert torch.equal(m.W_K[0, 1], m.blocks[0].attn._W_K[0]) and torch.equal(m.W_K[0, 2], m.blocks[0].attn._W_K[1])
    assert m.W_O.shape == (2, 4, 8, 32) and m.b_O.shape == (2, 32)
    assert m.W_in.shape == m.W_gate.shape == (2, 32, 64) and m.W_out.shape == (2, 64, 32)
    assert m.b_in.shape == (2, 64) and m.b_out.shape == (2, 32)
    assert m.W_E.shape == (300, 32) and m.W_U.shape == (32, 300) and m.b_U.shape == (300,)
    with pytest.raises(ConfigError, match="W_pos"):
        m.W_pos
    g = models["gpt2"]
    assert g.W_E_pos.shape == (332, 32) and g.W_gate is None


def test_set_use_attn_result(models):
    m = models["gpt2"]
    before = m(TOKENS)
    m.set_use_attn_result(True)
    try:
        _, cache = m.run_with_cache(TOKENS)
        result = cache["blocks.0.attn.hook_result"]
        assert result.shape == (2, 7, 4, 32)
        assert torch.allclose(result.sum(2) + m.blocks[0].attn.b_O, cache["blocks.0.hook_attn_out"], atol=1e-5)
        assert torch.allclose(m(TOKENS), before, atol=1e-5)
    finally:
        m.set_use_attn_result(False)
    # as in TransformerLens the hook point stays (it just no longer fires)
    assert "blocks.0.attn.hook_result" in m.hook_dict
    _, cache = m.run_with_cache(TOKENS)
    assert "blocks.0.attn.hook_result" not in cache


def test_split_qkv_attn_in_and_mlp_in(models):
    m = models["llama"]
    before = m(TOKENS)
    m.set_use_split_qkv_input(True)
    m.set_use_attn_in(True)
    m.set_use_hook_mlp_in(True)
    try:
        _, cache = m.run_with_cache(TOKENS)
        assert cache["blocks.0.hook_attn_in"].shape == (2, 7, 4, 32)
        assert cache["blocks.0.hook_q_input"].shape == (2, 7, 4, 32)
        assert cache["blocks.0.hook_k_input"].shape == cache["blocks.0.hook_v_input"].shape == (2, 7, 2, 32)
        assert cache["blocks.0.ln1.hook_scale"].shape[-2:] == (2, 1)  # last ln1 call: v input
        assert torch.equal(cache["blocks.1.hook_mlp_in"], cache["blocks.1.hook_resid_mid"])
        assert torch.allclose(m(TOKENS), before, atol=1e-5)

        def zero_head(x, hook):
            x[:, :, 1] = 0
            return x

        patched = m.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.hook_q_input", zero_head)])
        assert not torch.allclose(patched, before)
    finally:
        m.set_use_split_qkv_input(False)
        m.set_use_attn_in(False)
        m.set_use_hook_mlp_in(False)
    _, cache = m.run_with_cache(TOKENS)
    assert not any(n.endswith(("_input", "attn_in", "mlp_in")) for n in cache)  # off: the points never fire
    assert torch.allclose(m(TOKENS), before, atol=1e-6)


def test_split_qkv_with_ungrouped_gqa(models):
    m = models["llama"]
    before = m(TOKENS)
    m.set_use_split_qkv_input(True)
    m.set_ungroup_grouped_query_attention(True)
    try:
        logits, cache = m.run_with_cache(TOKENS, names_filter=["blocks.0.hook_k_input", "blocks.0.attn.hook_k"])
        assert cache["blocks.0.hook_k_input"].shape == (2, 7, 4, 32)
        assert cache["blocks.0.attn.hook_k"].shape == (2, 7, 4, 8)
        assert torch.allclose(logits, before, atol=1e-5)
    finally:
        m.set_use_split_qkv_input(False)
        m.set_ungroup_grouped_query_attention(False)


def test_rebuild_norms_after_folding(models):
    m = tiny_model("llama")
    m.cfg.normalization_type = "RMSPre"
    m._rebuild_norms()
    assert type(m.blocks[0].ln1).__name__ == "RMSNormPre" and type(m.ln_final).__name__ == "RMSNormPre"
    assert "blocks.0.ln1.hook_scale" in m.hook_dict and m.hook_dict["blocks.0.ln1.hook_scale"] is m.blocks[0].ln1.hook_scale
    assert not any(k.startswith("blocks.0.ln1.") for k in m.state_dict())
    m(TOKENS)


def test_to_dtype_updates_cfg():
    m = tiny_model("llama")
    ref = m(TOKENS)
    m.to(torch.float64, print_details=False)
    assert m.cfg.dtype == torch.float64 and m.W_Q.dtype == torch.float64
    assert torch.allclose(m(TOKENS).float(), ref, atol=1e-4)
    m.to("cpu", print_details=False)
    assert m.cfg.device == "cpu"


def test_half_precision_runs():
    m = tiny_model("llama", dtype=torch.bfloat16)
    ref = tiny_model("llama")
    out = m(TOKENS)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref(TOKENS)).abs().max() < 0.2


def test_init_is_seeded():
    assert torch.equal(tiny_model("gpt2", seed=7).W_Q, tiny_model("gpt2", seed=7).W_Q)
    assert not torch.equal(tiny_model("gpt2", seed=7).W_Q, tiny_model("gpt2", seed=8).W_Q)


def test_dict_config_and_missing_vocab():
    cfg = tiny_cfg("gpt2").to_dict()
    assert isinstance(HookedTransformer(cfg).cfg.n_layers, int)
    cfg["d_vocab"] = -1
    with pytest.raises(ConfigError, match="d_vocab"):
        HookedTransformer(cfg)


def test_zero_bias_skipping_notices_in_place_edits():
    m = tiny_model("gpt2")
    with torch.no_grad():
        base = m(TOKENS)  # biases are zero: the adds are skipped
        m.unembed.b_U[5] += 3.0
        m.blocks[0].mlp.b_in.fill_(0.5)
        edited = m(TOKENS)
        m.blocks[0].mlp.b_in.zero_()
        again = m(TOKENS)
    assert not torch.allclose(edited, base)
    assert torch.allclose(again - base, torch.nn.functional.one_hot(torch.tensor(5), 300).float() * 3.0, atol=1e-5)
    with torch.enable_grad():
        m(TOKENS, return_type="loss").backward()
    assert m.blocks[1].attn.b_O.grad is not None  # zero biases still get gradients


def test_hook_tokens_and_post_embedding_ln():
    m = tiny_model("gpt2", use_hook_tokens=True, post_embedding_ln=True)
    assert "hook_tokens" in m.hook_dict and "embed.ln.hook_scale" in m.hook_dict
    swapped = m.run_with_hooks(TOKENS, fwd_hooks=[("hook_tokens", lambda t, hook: torch.zeros_like(t))])
    assert torch.allclose(swapped, m(torch.zeros_like(TOKENS)))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(positional_embedding_type="shortformer"),
        dict(attention_dir="bidirectional"),
        dict(scale_attn_by_inverse_layer_idx=True),
        dict(normalization_type=None),
        dict(final_rms=True),
        dict(act_fn="quick_gelu", init_mode="xavier_uniform"),
        dict(act_fn="relu", init_mode="kaiming_normal"),
        dict(positional_embedding_type="rotary", rotary_adjacent_pairs=True, rotary_dim=4),
        dict(positional_embedding_type="rotary", use_NTK_by_parts_rope=True, NTK_original_ctx_len=8),
    ],
)
def test_config_variants_agree_across_attention_paths(overrides):
    m = tiny_model("gpt2", **overrides)
    fast = m(TOKENS)
    slow = m.run_with_hooks(TOKENS, fwd_hooks=[ALL_PATTERNS])
    assert torch.isfinite(fast).all() and torch.allclose(fast, slow, atol=1e-5)
    if overrides.get("attention_dir") == "bidirectional":
        _, cache = m.run_with_cache(TOKENS, names_filter="blocks.0.attn.hook_pattern")
        assert (cache["blocks.0.attn.hook_pattern"].triu(1) > 0).any()
    if overrides.get("normalization_type", "LN") is None:
        assert not any("ln" in n for n in m.hook_dict)


def test_post_norms_keep_their_weights_in_a_folded_config():
    # Gemma-2 post-norms are never folded, so a model built from an RMSPre config still has them.
    model = tiny_model("gemma2", normalization_type="RMSPre")
    for block in model.blocks:
        assert block.ln1_post.w.shape == (model.cfg.d_model,)
        assert block.ln2_post.w.shape == (model.cfg.d_model,)
    assert not hasattr(model.blocks[0].ln1, "w")

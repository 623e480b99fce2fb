"""Weight processing: each step preserves log-probs exactly and does what it says."""

from __future__ import annotations

import logging

import pytest
import torch

from conftest import make_tiny_hf
from lenswidget import processing
from lenswidget.errors import ConfigError

TOL = 1e-4
STEPS = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases")


def _raw(family: str):
    from lenswidget import HookedTransformer

    return HookedTransformer.from_pretrained_no_processing("tiny", hf_model=make_tiny_hf(family),
                                                           device="cpu")


@pytest.fixture(scope="module")
def raw_models():
    return {f: _raw(f) for f in ("gpt2", "llama", "gemma2")}


def _tokens() -> torch.Tensor:
    return torch.randint(0, 211, (2, 9), generator=torch.Generator().manual_seed(3))


def _log_probs(model) -> torch.Tensor:
    with torch.no_grad():
        return model(_tokens()).log_softmax(-1)


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fresh_copy(model):
    import copy

    return copy.deepcopy(model)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
@pytest.mark.parametrize("step", STEPS + ("refactor_factored_attn_matrices",))
def test_each_step_preserves_log_probs(raw_models, family, step):
    model = _fresh_copy(raw_models[family])
    before = _log_probs(model)
    flags = {s: False for s in STEPS + ("refactor_factored_attn_matrices",)}
    flags[step] = True
    if step == "refactor_factored_attn_matrices" and family != "gpt2":
        with pytest.raises(ConfigError, match="rotary"):
            model.process_weights_(**flags)
        return
    model.process_weights_(**flags)
    assert (_log_probs(model) - before).abs().max().item() <= TOL


def test_fold_ln_layernorm(raw_models):
    model = _fresh_copy(raw_models["gpt2"])
    sd = _state(model)
    out = processing.fold_layer_norm(dict(sd), model.cfg)
    assert not any(".ln1." in k or ".ln2." in k or k.startswith("ln_final") for k in out)
    # LN bias moved into the reading biases, weights centred along d_model
    assert not torch.allclose(out["blocks.0.attn.b_Q"], sd["blocks.0.attn.b_Q"])
    assert out["blocks.0.attn.W_Q"].mean(-2).abs().max() < 1e-6
    assert out["blocks.0.mlp.W_in"].mean(0).abs().max() < 1e-6
    assert out["unembed.W_U"].mean(0).abs().max() < 1e-6
    model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=False,
                           fold_value_biases=False)
    assert model.cfg.normalization_type == "LNPre"
    assert type(model.blocks[0].ln1).__name__ == "LayerNormPre"


def test_fold_ln_rms_gated_and_gqa(raw_models):
    model = raw_models["llama"]
    sd = _state(model)
    assert "blocks.0.attn._W_K" in sd  # GQA naming
    out = processing.fold_layer_norm(dict(sd), model.cfg)
    w1, w2 = sd["blocks.0.ln1.w"], sd["blocks.0.ln2.w"]
    assert torch.allclose(out["blocks.0.attn._W_K"], sd["blocks.0.attn._W_K"] * w1[:, None])
    assert torch.allclose(out["blocks.0.mlp.W_in"], sd["blocks.0.mlp.W_in"] * w2[:, None])
    assert torch.allclose(out["blocks.0.mlp.W_gate"], sd["blocks.0.mlp.W_gate"] * w2[:, None])
    assert torch.allclose(out["unembed.W_U"], sd["unembed.W_U"] * sd["ln_final.w"][:, None])
    # RMS: no centring
    assert out["blocks.0.attn.W_Q"].mean(-2).abs().max() > 1e-3


def test_gemma2_post_norms_are_kept(raw_models):
    model = _fresh_copy(raw_models["gemma2"])
    before = _log_probs(model)
    model.process_weights_()
    sd = model.state_dict()
    assert "blocks.0.ln1_post.w" in sd and "blocks.0.ln2_post.w" in sd
    assert "blocks.0.ln1.w" not in sd and model.cfg.normalization_type == "RMSPre"
    assert (_log_probs(model) - before).abs().max().item() <= TOL


def test_center_writing_weights_skips_rms_with_reason(raw_models, caplog):
    model = raw_models["llama"]
    sd = _state(model)
    with caplog.at_level(logging.INFO, logger="lenswidget.processing"):
        out = processing.center_writing_weights(dict(sd), model.cfg)
    assert all(out[k] is sd[k] for k in sd)
    assert "not LayerNorm" in caplog.text


def test_center_writing_weights_layernorm(raw_models):
    model = raw_models["gpt2"]
    out = processing.center_writing_weights(_state(model), model.cfg)
    for key in ("embed.W_E", "pos_embed.W_pos", "blocks.1.attn.W_O", "blocks.1.attn.b_O",
                "blocks.1.mlp.W_out", "blocks.1.mlp.b_out"):
        assert out[key].mean(-1).abs().max() < 1e-6, key


def test_center_unembed(raw_models, caplog):
    out = processing.center_unembed(_state(raw_models["llama"]), raw_models["llama"].cfg)
    assert out["unembed.W_U"].mean(-1).abs().max() < 1e-6
    assert out["unembed.b_U"].mean().abs() < 1e-6
    # soft-capped logits are not shift invariant: skipped, with the reason logged
    g = raw_models["gemma2"]
    sd = _state(g)
    with caplog.at_level(logging.INFO, logger="lenswidget.processing"):
        out = processing.center_unembed(dict(sd), g.cfg)
    assert out["unembed.W_U"] is sd["unembed.W_U"] and "soft-capped" in caplog.text


def test_fold_value_biases_gqa(raw_models):
    model = raw_models["llama"]
    sd = _state(model)
    sd["blocks.0.attn._b_V"] = torch.randn_like(sd["blocks.0.attn._b_V"])
    out = processing.fold_value_biases(dict(sd), model.cfg)
    assert out["blocks.0.attn._b_V"].abs().max() == 0
    group = model.cfg.n_heads // model.cfg.n_key_value_heads
    expected = sd["blocks.0.attn.b_O"] + torch.einsum(
        "hd,hdm->m", sd["blocks.0.attn._b_V"].repeat_interleave(group, 0), sd["blocks.0.attn.W_O"])
    assert torch.allclose(out["blocks.0.attn.b_O"], expected, atol=1e-6)


def test_refactor_balances_factors(raw_models):
    model = raw_models["gpt2"]
    sd = _state(model)
    out = processing.refactor_factored_attn_matrices(dict(sd), model.cfg)
    W_O = out["blocks.0.attn.W_O"]  # orthonormal rows
    eye = torch.eye(W_O.shape[1]).expand(W_O.shape[0], -1, -1)
    assert torch.allclose(W_O @ W_O.transpose(-1, -2), eye, atol=1e-5)
    qk_before = sd["blocks.0.attn.W_Q"] @ sd["blocks.0.attn.W_K"].transpose(-1, -2)
    qk_after = out["blocks.0.attn.W_Q"] @ out["blocks.0.attn.W_K"].transpose(-1, -2)
    assert torch.allclose(qk_before, qk_after, atol=1e-5)
    q_norms = out["blocks.0.attn.W_Q"].norm(dim=-2)  # equal column norms in Q and K (with bias row)
    k_aug = torch.cat([out["blocks.0.attn.W_K"], out["blocks.0.attn.b_K"][:, None]], 1)
    q_aug = torch.cat([out["blocks.0.attn.W_Q"], out["blocks.0.attn.b_Q"][:, None]], 1)
    assert torch.allclose(q_aug.norm(dim=-2), k_aug.norm(dim=-2), atol=1e-5)
    assert q_norms.shape == (model.cfg.n_heads, model.cfg.d_head)


def test_process_weights_matches_from_pretrained(raw_models):
    from lenswidget import HookedTransformer

    hf = make_tiny_hf("llama")
    loaded = HookedTransformer.from_pretrained("tiny", hf_model=hf, device="cpu")
    model = _fresh_copy(raw_models["llama"])
    model.process_weights_()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_load_and_process_state_dict_and_methods(raw_models):
    model = _fresh_copy(raw_models["gpt2"])
    before = _log_probs(model)
    sd = _state(model)
    assert model.fold_layer_norm(dict(sd)).keys() == processing.fold_layer_norm(dict(sd), model.cfg).keys()
    model.load_and_process_state_dict(sd, fold_ln=True, center_writing_weights=True,
                                      center_unembed=True, fold_value_biases=True,
                                      refactor_factored_attn_matrices=False)
    assert model.cfg.normalization_type == "LNPre"
    assert (_log_probs(model) - before).abs().max().item() <= TOL


def test_low_precision_is_processed_in_float32():
    from lenswidget import HookedTransformer

    hf = make_tiny_hf("llama")
    bf = HookedTransformer.from_pretrained_no_processing("tiny", hf_model=hf, device="cpu",
                                                         dtype=torch.bfloat16)
    sd = {k: v.detach().clone() for k, v in bf.state_dict().items()}
    out, norm = processing.process_state_dict(dict(sd), bf.cfg)
    assert norm == "RMSPre" and all(v.dtype == torch.bfloat16 for v in out.values())
    exact = sd["blocks.0.mlp.W_in"].float() * sd["blocks.0.ln2.w"].float()[:, None]
    assert torch.equal(out["blocks.0.mlp.W_in"], exact.to(torch.bfloat16))


def test_state_dict_mismatch_is_reported(raw_models):
    model = _fresh_copy(raw_models["gpt2"])
    sd = _state(model)
    sd["blocks.0.attn.W_Qx"] = sd.pop("blocks.0.attn.W_Q")
    with pytest.raises(ConfigError, match="W_Q"):
        processing.load_and_process_state_dict(model, sd, fold_ln=False, center_writing_weights=False,
                                               center_unembed=False, fold_value_biases=False)

"""SAE objects, SAELens folders and HookedSAETransformer on small random models.

References: hand-written encoder maths, bit-exact identities (error term), and the model's
own outputs without SAEs. The differential test against SAELens is tests/test_sae_saelens.py.
"""

from __future__ import annotations

import json

import pytest
import torch

from lenswidget import HookedSAETransformer, SAE
from lenswidget.errors import ConfigError, ModelNotAvailableError, ShapeMismatchError, UnknownNameError
from tests.models import tiny_cfg

HOOK = "blocks.0.hook_resid_post"
TOKENS = torch.tensor([[0, 5, 17, 42, 7, 99, 3]])


def make_sae(arch="standard", hook=HOOK, hook_out=None, d_in=32, d_sae=64, d_out=None, seed=1, **extra):
    meta = {"hook_name": hook}
    if hook_out:
        meta["hook_name_out"] = hook_out
    cfg = {"d_in": d_in, "d_sae": d_sae, "architecture": arch, "metadata": meta, **extra}
    if d_out is not None:
        cfg["d_out"] = d_out
    sae = SAE.from_dict(cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in sae.parameters():  # non-zero biases and thresholds, so every term matters
            if p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen).abs() if p is getattr(sae, "threshold", None)
                        else 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[0] ** 0.5)
    return sae


@pytest.fixture(scope="module")
def model():
    return HookedSAETransformer(tiny_cfg("llama")).eval()


def _reference_encode(sae, x):
    c = sae.cfg
    sae_in = x - (sae.b_dec if c.apply_b_dec_to_input else 0)
    pre = sae_in @ sae.W_enc + sae.b_enc
    if c.activation == "relu":
        return torch.relu(pre)
    if c.activation == "jumprelu":
        return torch.where(pre > sae.threshold, torch.relu(pre), torch.zeros_like(pre))
    top = pre.topk(c.k, dim=-1).indices
    out = torch.zeros_like(pre)
    return out.scatter(-1, top, pre.gather(-1, top).relu())


@pytest.mark.parametrize("arch,extra", [("standard", {}), ("jumprelu", {}), ("topk", {"k": 5}),
                                        ("transcoder", {}), ("jumprelu_transcoder", {})])
def test_encode_decode_match_the_definitions(arch, extra):
    tc = "transcoder" in arch
    sae = make_sae(arch, hook_out="blocks.0.hook_mlp_out" if tc else None, **extra)
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acts = sae.encode(x)
        torch.testing.assert_close(acts, _reference_encode(sae, x), rtol=1e-5, atol=1e-6)
        assert (acts > 0).any() and (acts == 0).any()
        if arch == "topk":
            assert int((acts != 0).sum(-1).max()) <= 5
        torch.testing.assert_close(sae.decode(acts), acts @ sae.W_dec + sae.b_dec)


@pytest.mark.parametrize("arch,extra", [("standard", {}), ("jumprelu", {}), ("topk", {"k": 7}),
                                        ("skip_transcoder", {})])
def test_folder_round_trip(tmp_path, arch, extra):
    tc = "transcoder" in arch
    sae = make_sae(arch, hook_out="blocks.0.hook_mlp_out" if tc else None, **extra)
    sae.save_model(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["metadata"]["hook_name"] == HOOK
    back = SAE.load_from_disk(tmp_path)
    for name, p in sae.named_parameters():
        assert torch.equal(p, getattr(back, name)), name
    half = SAE.load_from_disk(tmp_path, dtype="bfloat16")
    assert half.W_enc.dtype == torch.bfloat16 and half.cfg.dtype == "bfloat16"


def test_old_flat_cfg_format(tmp_path):
    sae = make_sae("topk", k=3)
    sae.save_model(tmp_path)
    flat = {"d_in": 32, "d_sae": 64, "hook_point": HOOK, "activation_fn_str": "topk",
            "activation_fn_kwargs": {"k": 3}, "normalize_activations": False, "dtype": "torch.float32"}
    (tmp_path / "cfg.json").write_text(json.dumps(flat))
    back = SAE.load_from_disk(tmp_path)
    assert back.cfg.architecture == "topk" and back.cfg.k == 3 and back.cfg.hook_name == HOOK
    assert back.cfg.normalize_activations == "none"


def test_bad_folders(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="cfg.json"):
        SAE.load_from_disk(tmp_path)
    sae = make_sae()
    sae.save_model(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["d_sae"] = 65
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"has shape \(.*\) but cfg.json .*d_sae=65"):
        SAE.load_from_disk(tmp_path)
    cfg["d_sae"], cfg["architecture"] = 64, "jumprelu"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="missing.*threshold"):
        SAE.load_from_disk(tmp_path)
    (tmp_path / "cfg.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        SAE.load_from_disk(tmp_path)
    with pytest.raises(ConfigError, match="hook_name"):
        SAE.from_dict({"d_in": 4, "d_sae": 8})


@pytest.mark.parametrize("kind", ["sae", "transcoder", "topk", "jumprelu"])
def test_error_term_output_is_exact_and_gradients_reach_features(model, kind):
    if kind == "transcoder":
        sae = make_sae("transcoder", hook="blocks.1.mlp.hook_in", hook_out="blocks.1.hook_mlp_out")
    else:
        sae = make_sae({"sae": "standard", "topk": "topk", "jumprelu": "jumprelu"}[kind], **({"k": 4} if kind == "topk" else {}))
    with torch.no_grad():
        base = model(TOKENS)
        assert torch.equal(model.run_with_saes(TOKENS, saes=[sae], use_error_term=True), base)
        without = model.run_with_saes(TOKENS, saes=[sae], use_error_term=False)
        assert (without - base).abs().max() > 1e-3  # the reconstruction really replaces the activation
        # with caching hooks on every SAE hook point the output is still exact
        plain, _ = model.run_with_cache(TOKENS)
        logits, cache = model.run_with_cache_with_saes(TOKENS, saes=[sae], use_error_term=True)
        assert torch.equal(logits, plain)
    out = sae.cfg.hook_name_out
    torch.testing.assert_close(cache[f"{out}.hook_sae_recons"] + cache[f"{out}.hook_sae_error"],
                               cache[f"{out}.hook_sae_output"], rtol=1e-5, atol=1e-5)
    model.add_sae(sae, use_error_term=True)
    try:
        saved = {}

        def keep(act, hook):
            act.retain_grad()
            saved["acts"] = act

        with model.hooks(fwd_hooks=[(f"{out}.hook_sae_acts_post", keep)]):
            model(TOKENS)[0, -1, 5].backward()
        grad = saved["acts"].grad
        assert grad is not None and grad.abs().sum() > 0
        # d logit / d act_f = W_dec[f] . d logit / d output: check at one active feature
        assert torch.isfinite(grad).all()
    finally:
        model.reset_saes()
        model.zero_grad(set_to_none=True)


def test_feature_ablation_hook_changes_output_and_cache_names(model):
    sae = make_sae()
    name = f"{HOOK}.hook_sae_acts_post"
    with torch.no_grad():
        _, cache = model.run_with_cache_with_saes(TOKENS, saes=[sae], use_error_term=True)
        top = int(cache[name][0, -1].argmax())

        def ablate(act, hook):
            act[:, :, top] = 0.0

        base = model(TOKENS)
        ablated = model.run_with_hooks_with_saes(TOKENS, saes=[sae], fwd_hooks=[(name, ablate)])
        delta = (ablated - base)[0]
        # the change at the last position equals -act * W_dec[top] pushed through the rest of the model
        assert delta[-1].abs().max() > 1e-4
        assert set(cache) >= {f"{HOOK}.{h}" for h in ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post",
                                                      "hook_sae_recons", "hook_sae_error", "hook_sae_output")}
    assert not model.acts_to_saes and not any("hook_sae" in n for n in model.hook_dict)


def test_saes_context_restores_previous_and_survives_errors(model):
    first, second = make_sae(seed=1), make_sae(seed=2)
    model.add_sae(first)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with model.saes(saes=[second]):
                assert model.acts_to_saes[HOOK] is second
                raise RuntimeError("boom")
        assert model.acts_to_saes[HOOK] is first
        model.reset_hooks(including_permanent=True)  # hook resets never detach SAEs
        with torch.no_grad():
            assert torch.equal(model(TOKENS), model.run_with_saes(TOKENS, saes=[first]))
    finally:
        model.reset_saes()
    from lenswidget.patching.engine.ops import unsupported_reason

    assert unsupported_reason(model) is None  # nothing left behind: the fast patching path is back


def _state(model):
    return (list(model.hook_dict), {n: len(m._forward_hooks) for n, m in model.named_modules()},
            dict(model.acts_to_saes))


@pytest.mark.parametrize("case", ["d_in", "d_out", "hook", "hook_out", "device", "dtype_mixed", "dtype_cfg"])
def test_bad_sae_fails_clearly_and_changes_nothing(model, case):
    good = make_sae(seed=3)
    model.add_sae(good)
    try:
        before = _state(model)
        if case == "d_in":
            bad, err, msg = make_sae(d_in=16), ShapeMismatchError, "d_in=16.*width 32"
        elif case == "d_out":
            bad = make_sae("transcoder", hook="blocks.1.hook_resid_pre", hook_out="blocks.1.mlp.hook_post", d_out=32)
            err, msg = ShapeMismatchError, "d_out=32.*width 64"
        elif case == "hook":
            bad, err, msg = make_sae(hook="blocks.0.hook_resid_pots"), UnknownNameError, "blocks.0.hook_resid_post"
        elif case == "hook_out":
            bad = make_sae("transcoder", hook="blocks.1.mlp.hook_in", hook_out="blocks.9.hook_mlp_out")
            err, msg = UnknownNameError, "hook_name_out"
        elif case == "device":
            bad, err, msg = make_sae().to("meta"), ConfigError, "is on meta"
        elif case == "dtype_mixed":
            bad = make_sae()
            bad.b_enc.data = bad.b_enc.data.half()
            err, msg = ConfigError, "one floating dtype"
        else:
            bad = make_sae()
            bad.cfg.dtype = "bfloat16"
            err, msg = ConfigError, "cfg.dtype"
        with pytest.raises(err, match=msg):
            model.add_sae(bad)
        with pytest.raises(err, match=msg):
            model.run_with_saes(TOKENS, saes=[make_sae(seed=9, hook="blocks.1.hook_resid_post"), bad])
        assert _state(model) == before
    finally:
        model.reset_saes()


def test_sae_keeps_its_dtype(model):
    sae = make_sae().to(torch.bfloat16)
    with torch.no_grad():
        logits, cache = model.run_with_cache_with_saes(TOKENS, saes=[sae])
    assert sae.W_enc.dtype == torch.bfloat16
    assert cache[f"{HOOK}.hook_sae_acts_post"].dtype == torch.bfloat16
    assert cache[f"{HOOK}.hook_sae_output"].dtype == torch.float32 and logits.dtype == torch.float32
    ref = sae.decode(sae.encode(cache[f"{HOOK}.hook_sae_input"].float()))
    torch.testing.assert_close(cache[f"{HOOK}.hook_sae_output"], ref.float())


def test_exclude_special_tokens(model):
    sae = make_sae()
    with torch.no_grad():
        _, cache = model.run_with_cache_with_saes(TOKENS, saes=[sae], exclude_special_tokens=[0, 7])
        out, inp = cache[f"{HOOK}.hook_sae_output"][0], cache[f"{HOOK}.hook_sae_input"][0]
    skipped = torch.tensor([t in (0, 7) for t in TOKENS[0].tolist()])
    assert torch.equal(out[skipped], inp[skipped])
    assert (out[~skipped] - inp[~skipped]).abs().max() > 1e-3


def test_hook_z_sae(model):
    cfg = model.cfg
    sae = make_sae(hook="blocks.1.attn.hook_z", d_in=cfg.n_heads * cfg.d_head, reshape_activations="hook_z")
    with torch.no_grad():
        base = model(TOKENS)
        logits, cache = model.run_with_cache_with_saes(TOKENS, saes=[sae], use_error_term=True)
    assert cache["blocks.1.attn.hook_z.hook_sae_acts_post"].shape == (1, TOKENS.shape[1], 64)
    assert cache["blocks.1.attn.hook_z.hook_sae_output"].shape == cache["blocks.1.attn.hook_z.hook_sae_input"].shape[:-1] + (cfg.n_heads, cfg.d_head)
    torch.testing.assert_close(logits, base, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module", ["config", "sae", "files", "train", "corpus"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"lenswidget.sae.{module}")
    result = doctest.testmod(mod, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


def test_feature_activations_in_batches_match_the_cache(model):
    from lenswidget.sae import feature_activations
    from tests.models import tiny_tokenizer

    tok_model = HookedSAETransformer(tiny_cfg("llama"), tokenizer=tiny_tokenizer()).eval()
    sae = make_sae(hook="blocks.1.hook_resid_pre")
    texts = ["The cat sat on the mat.", "Hello world", "The capital of France is Paris. The dog sat on the log."]
    seen = []
    got = feature_activations(tok_model, sae, texts, batch_size=2, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 3), (3, 3)]
    for text, acts in zip(texts, got):
        with torch.no_grad():
            _, cache = tok_model.run_with_cache_with_saes(text, saes=[sae])
        torch.testing.assert_close(acts, cache["blocks.1.hook_resid_pre.hook_sae_acts_post"][0], rtol=1e-5, atol=1e-5)
    some = feature_activations(tok_model, sae, texts, features=[3, 10])
    torch.testing.assert_close(some[2], got[2][:, [3, 10]])


def test_attribution_needs_a_hooked_sae_transformer():
    from lenswidget import HookedTransformer
    from lenswidget.sae import direct_feature_attribution

    plain = HookedTransformer(tiny_cfg("llama")).eval()
    with pytest.raises(TypeError, match="HookedSAETransformer"):
        direct_feature_attribution(plain, make_sae(), TOKENS, 5)

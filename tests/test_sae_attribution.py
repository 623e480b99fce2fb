"""Feature attribution on small random models: direct feature attribution (an identity with the
component's DLA), exact feature patching (against a one-forward-per-patch loop) and attribution
patching (against exact patching)."""

from __future__ import annotations

import pytest
import torch

from lenswidget import HookedSAETransformer, patching
from lenswidget.errors import OutOfRangeError, UnknownNameError
from lenswidget.sae import (compare_feature_patching, direct_feature_attribution, feature_attribution_patch,
                            feature_logit_effects, patch_features)
from lenswidget.sae.patching import feature_grid
from tests.models import tiny_cfg, tiny_tokenizer
from tests.test_sae_core import make_sae

CLEAN = torch.tensor([[0, 5, 17, 42, 7, 99, 3], [0, 15, 17, 2, 71, 9, 33]])
CORRUPT = torch.tensor([[0, 5, 18, 42, 7, 98, 3], [0, 15, 17, 3, 71, 9, 34]])
RIGHT, WRONG = torch.tensor([5, 11]), torch.tensor([7, 13])


def logit_diff(logits):
    last = logits[:, -1]
    idx = torch.arange(last.shape[0])
    return (last[idx, RIGHT] - last[idx, WRONG]).mean()


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request):
    return HookedSAETransformer(tiny_cfg(request.param), tokenizer=tiny_tokenizer()).eval()


def _saes(model):
    cfg = model.cfg
    return {
        "resid": make_sae(),
        "topk_mlp_out": make_sae("topk", hook="blocks.1.hook_mlp_out", k=6),
        "transcoder": make_sae("transcoder", hook="blocks.1.mlp.hook_in", hook_out="blocks.1.hook_mlp_out"),
        "skip_transcoder": make_sae("skip_transcoder", hook="blocks.0.mlp.hook_in", hook_out="blocks.0.hook_mlp_out"),
        "hook_z": make_sae(hook="blocks.1.attn.hook_z", d_in=cfg.n_heads * cfg.d_head, reshape_activations="hook_z"),
        "layer_norm_input": make_sae(normalize_activations="layer_norm"),
    }


@pytest.mark.parametrize("kind", ["resid", "topk_mlp_out", "transcoder", "skip_transcoder", "hook_z",
                                  "layer_norm_input"])
def test_feature_attributions_sum_to_the_components_dla(model, kind):
    sae = _saes(model)[kind]
    fa = direct_feature_attribution(model, sae, CLEAN, RIGHT[:, None], WRONG[:, None])
    total = fa.features.sum(-1) + fa.bias + fa.skip + fa.error
    torch.testing.assert_close(total, fa.component, rtol=1e-5, atol=1e-5)
    # the component's DLA through the cache's own logit_attrs, on a run without any SAE
    _, cache = model.run_with_cache(CLEAN)
    out = sae.cfg.hook_name_out
    comp = cache[out]
    if out.endswith("hook_z"):
        comp = torch.einsum("bphd,hdm->bpm", comp, model.blocks[1].attn.W_O)
    dla = cache.logit_attrs(comp[None], RIGHT[:, None], WRONG[:, None])[0]
    torch.testing.assert_close(fa.component, dla, rtol=1e-4, atol=1e-5)
    assert fa.features.shape == (2, CLEAN.shape[1], sae.cfg.d_sae)
    assert fa.features.abs().sum() > 0 and fa.error.abs().sum() > 0
    if kind == "skip_transcoder":
        assert fa.skip.abs().sum() > 0


def test_one_feature_by_hand(model):
    sae = make_sae()
    fa = direct_feature_attribution(model, sae, CLEAN, 5)
    _, cache = model.run_with_cache_with_saes(CLEAN, saes=[sae], use_error_term=True)
    acts = cache["blocks.0.hook_resid_post.hook_sae_acts_post"]
    b, p = 1, 4
    f = int(acts[b, p].argmax())
    vec = acts[b, p, f] * sae.W_dec[f]
    if model.cfg.normalization_type.startswith("LN"):
        vec = vec - vec.mean()
    want = (vec / cache["ln_final.hook_scale"][b, p]) @ model.W_U[:, 5]
    torch.testing.assert_close(fa.features[b, p, f], want.detach(), rtol=1e-4, atol=1e-6)
    assert fa.top(1, pos=p, batch=b)[0][0] == int(fa.features[b, p].argmax())


def test_feature_logit_effects(model):
    sae = make_sae()
    eff = feature_logit_effects(model, sae, 3, k=4)
    v = sae.W_dec[3].detach()
    if model.cfg.normalization_type.startswith("LN"):
        v = v - v.mean()
    logits = v @ model.W_U.detach()
    assert [t for t, _ in eff["promoted"]] == [model.to_single_str_token(int(i)) for i in logits.topk(4).indices]
    assert eff["suppressed"][0][1] == pytest.approx(float(logits.min()), rel=1e-5)
    with pytest.raises(OutOfRangeError):
        feature_logit_effects(model, sae, sae.cfg.d_sae)


def _naive(model, sae, cache, runs, ablate=False):
    name = f"{sae.cfg.hook_name_out}.hook_sae_acts_post"
    out = []
    with torch.no_grad():
        for run in runs:
            def hook(act, hook, run=run):
                for pos, f in run:
                    act[:, pos, f] = 0.0 if ablate else cache[name][:, pos, f]
            logits = model.run_with_hooks_with_saes(CORRUPT, saes=[sae], use_error_term=True, fwd_hooks=[(name, hook)])
            out.append(float(logit_diff(logits)))
    return torch.tensor(out)


@pytest.mark.parametrize("kind", ["resid", "transcoder"])
def test_exact_feature_patching_matches_a_naive_loop(model, kind):
    sae = _saes(model)[kind]
    _, clean_cache = model.run_with_cache_with_saes(CLEAN, saes=[sae], use_error_term=True)
    acts = clean_cache[f"{sae.cfg.hook_name_out}.hook_sae_acts_post"]
    top = acts[:, -1].sum(0).topk(3).indices.tolist()
    runs = feature_grid(top, [-1, 2]) + [[(-1, top[0]), (3, top[1]), (2, top[2])]]
    got = patch_features(model, sae, CORRUPT, clean_cache, logit_diff, runs, verbose=False, max_batch=3)
    torch.testing.assert_close(got, _naive(model, sae, clean_cache, runs), rtol=1e-4, atol=1e-5)
    ablated = patch_features(model, sae, CORRUPT, None, logit_diff, runs[:2], ablate=True, verbose=False)
    torch.testing.assert_close(ablated, _naive(model, sae, clean_cache, runs[:2], ablate=True), rtol=1e-4, atol=1e-5)
    # a declared batched metric gives the same numbers
    batched = patching.batched_metric(lambda lg: (lg[:, torch.arange(2), -1, RIGHT] - lg[:, torch.arange(2), -1, WRONG]).mean(-1),
                                      positions=[-1])
    torch.testing.assert_close(patch_features(model, sae, CORRUPT, clean_cache, batched, runs, verbose=False), got,
                               rtol=1e-5, atol=1e-6)
    assert not model.acts_to_saes and not any(m._forward_hooks for m in model.modules())


def test_feature_patching_bad_input_leaves_model_clean(model):
    sae = make_sae()
    _, plain = model.run_with_cache(CLEAN)
    with pytest.raises(UnknownNameError, match="run_with_cache_with_saes"):
        patch_features(model, sae, CORRUPT, plain, logit_diff, [(1, 2)], verbose=False)
    _, clean_cache = model.run_with_cache_with_saes(CLEAN, saes=[sae], use_error_term=True)
    with pytest.raises(OutOfRangeError, match="feature"):
        patch_features(model, sae, CORRUPT, clean_cache, logit_diff, [(1, sae.cfg.d_sae)], verbose=False)
    with pytest.raises(OutOfRangeError, match="position"):
        patch_features(model, sae, CORRUPT, clean_cache, logit_diff, [(9, 0)], verbose=False)

    def broken(logits):
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        patch_features(model, sae, CORRUPT, clean_cache, broken, [(1, 2)], verbose=False)
    with pytest.raises(RuntimeError, match="metric failed"):
        feature_attribution_patch(model, sae, CORRUPT, clean_cache, broken)
    assert not model.acts_to_saes and not any(m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_attribution_patching_tracks_exact_patching(model):
    sae = make_sae(hook="blocks.1.hook_resid_pre")
    _, clean_cache = model.run_with_cache_with_saes(CLEAN, saes=[sae], use_error_term=True)
    est = feature_attribution_patch(model, sae, CORRUPT, clean_cache, logit_diff)
    assert est.features.shape == (CLEAN.shape[1], sae.cfg.d_sae) and est.error.shape == (CLEAN.shape[1],)
    with torch.no_grad():
        assert est.value == pytest.approx(float(logit_diff(model(CORRUPT))), abs=1e-5)
    res = compare_feature_patching(model, sae, CORRUPT, clean_cache, logit_diff, n=24, estimate=est)
    assert len(res["entries"]) == 24 and res["pearson"] > 0.8, res["pearson"]
    # identical prompts: nothing to patch, every estimate is 0
    same = feature_attribution_patch(model, sae, CLEAN, clean_cache, logit_diff)
    assert float(same.features.abs().max()) < 1e-5 and float(same.error.abs().max()) < 1e-5
    assert not model.acts_to_saes and all(p.grad is None for p in model.parameters())

"""The default SAE on the real SmolLM2-135M-Instruct: its features mean something, the error term is
exact, direct feature attribution sums to the residual stream's DLA, and attribution patching
tracks exact patching. Uses the SAE that scripts/setup.sh trains (built here under CI if missing)."""

from __future__ import annotations

import os

import pytest
import torch

from lenswidget.sae import compare_feature_patching, direct_feature_attribution, feature_attribution_patch
from lenswidget.sae import feature_activations
from lenswidget.sae.default import DEFAULT_HOOK, demo_features

pytestmark = [pytest.mark.smollm2, pytest.mark.slow]


@pytest.fixture(scope="module")
def model(smollm2_dir):
    from lenswidget import HookedSAETransformer

    return HookedSAETransformer.from_pretrained("SmolLM2-135M-Instruct", device="cpu").eval()


@pytest.fixture(scope="module")
def sae(smollm2_dir):
    from lenswidget.errors import ModelNotAvailableError
    from lenswidget.sae import load_default_sae

    try:
        return load_default_sae(build=bool(os.environ.get("CI")))
    except ModelNotAvailableError as exc:
        pytest.skip(str(exc))


def _max_tokens(model, sae, feature, texts):
    """The token where ``feature`` fires most in each text (position 0, the attention sink, excluded)."""
    out = []
    for text, acts in zip(texts, feature_activations(model, sae, texts)):
        out.append(model.to_str_tokens(text)[1 + int(acts[1:, feature].argmax())].strip())
    return out


def test_demo_features_are_selective_on_new_sentences(model, sae):
    found = demo_features(model, sae)
    assert len(set(found.values())) == len(found), found  # one distinct feature per concept
    animals = {"cat", "dog", "horse", "fox", "owl", "rabbit", "goat", "sheep", "deer", "wolf", "bear", "duck"}
    hits = _max_tokens(model, sae, found["animal"], [
        "Behind the barn a sleepy goat chewed on some grass.", "My neighbour walks her dog every morning.",
        "In the story, a clever fox tricked the farmer.", "We saw a wolf near the frozen lake last winter.",
        "The children fed the duck some old bread."])
    assert sum(h in animals for h in hits) >= 4, hits
    countries = {"France", "Germany", "Spain", "Italy", "Mexico", "Brazil", "Turkey", "Austria", "Russia", "Japan",
                 "China", "India", "Canada", "Peru", "Egypt"}
    hits = _max_tokens(model, sae, found["country"], [
        "Last year we travelled through Austria by train.", "The team from Brazil won the tournament.",
        "Her grandparents emigrated from Mexico.", "Exports from Canada rose sharply this spring."])
    assert sum(h in countries for h in hits) >= 3, hits


def test_error_term_is_exact_on_smollm2(model, sae):
    toks = model.to_tokens(["The capital of France is", "When Mary and John went to"])
    with torch.no_grad():
        base = model(toks)
        assert torch.equal(model.run_with_saes(toks, saes=[sae], use_error_term=True), base)
        recon = model.run_with_saes(toks, saes=[sae], use_error_term=False)
    # without the error term position 0 (the attention sink, norm ~2e4) is reconstructed badly:
    # the SAE was not trained there, so the outputs differ a lot
    assert float((recon - base).abs().max()) > 1.0


def test_direct_feature_attribution_sums_to_the_dla(model, sae):
    fa = direct_feature_attribution(model, sae, "The capital of France is", " Paris", " Rome")
    total = fa.features.sum(-1) + fa.bias + fa.error
    scale = float(fa.component.abs().max())
    assert float((total - fa.component).abs().max()) <= 1e-4 * scale
    _, cache = model.run_with_cache("The capital of France is")
    dla = cache.logit_attrs(cache[DEFAULT_HOOK][None], " Paris", " Rome")[0]
    assert float((dla - fa.component).abs().max()) <= 1e-4 * scale
    assert fa.features[0, -1].abs().max() > 0


def test_attribution_patching_tracks_exact_patching(model, sae):
    clean = model.to_tokens(["The capital of France is", "The capital of Japan is"])
    corrupt = model.to_tokens(["The capital of Japan is", "The capital of France is"])
    paris, tokyo = model.to_single_token(" Paris"), model.to_single_token(" Tokyo")
    right, wrong = torch.tensor([paris, tokyo]), torch.tensor([tokyo, paris])

    def metric(logits):
        last = logits[:, -1]
        return (last[torch.arange(2), right] - last[torch.arange(2), wrong]).mean()

    with torch.no_grad():
        _, clean_cache = model.run_with_cache_with_saes(clean, saes=[sae], use_error_term=True,
                                                        names_filter=lambda n: ".hook_sae_" in n)
    est = feature_attribution_patch(model, sae, corrupt, clean_cache, metric)
    res = compare_feature_patching(model, sae, corrupt, clean_cache, metric, n=24, estimate=est)
    assert res["pearson"] > 0.5, res["pearson"]
    assert not model.acts_to_saes

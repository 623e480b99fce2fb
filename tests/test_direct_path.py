"""Direct path patching equals a naive per-head implementation of seed 002's linear approximation."""

from __future__ import annotations

import pytest
import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, UnknownNameError
from lenswidget.tools.analysis.direct_path_patching import (
    get_act_patch_direct_path,
    get_act_patch_direct_path_all_sources,
)
from tests.models import tiny_model
from tests.test_patching_reference import logit_diff_metric, no_hooks_left, one_thread  # noqa: F401

TOL = 1e-4


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def setup(request):
    model = tiny_model(request.param, n_layers=3)
    gen = torch.Generator().manual_seed(5)
    clean = torch.randint(3, 300, (2, 6), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:4] = torch.randint(3, 300, (2, 3), generator=gen)
    _, clean_cache = model.run_with_cache(clean)
    _, corrupted_cache = model.run_with_cache(corrupted)
    return model, corrupted, clean_cache, corrupted_cache, logit_diff_metric(5, 7)


def naive_direct_path(model, corrupted, clean_cache, corrupted_cache, metric, sl, sh, component):
    """One hooked forward per destination head: add (delta_A / ln1_scale) @ W_comp[B] to B's input."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(L, H)
    W_O = model.blocks[sl].attn.W_O[sh]
    z = f"blocks.{sl}.attn.hook_z"
    delta = clean_cache[z][:, :, sh] @ W_O - corrupted_cache[z][:, :, sh] @ W_O
    for dl in range(sl + 1, L):
        name = f"blocks.{dl}.attn.hook_{component}"
        group = H // corrupted_cache[name].shape[2]  # GQA: the key/value head a query head reads
        for dh in range(H):
            W = getattr(model.blocks[dl].attn, f"W_{component.upper()}")[dh]
            add = (delta / corrupted_cache[f"blocks.{dl}.ln1.hook_scale"]) @ W

            def hook(act, hook, add=add, h=dh // group):
                act[:, :, h] = act[:, :, h] + add
                return act

            with torch.no_grad():
                out[dl, dh] = float(metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])))
    return out


@pytest.mark.parametrize("component", ["q", "k", "v"])
def test_matches_naive(setup, component):
    model, corrupted, clean_cache, corrupted_cache, metric = setup
    got = get_act_patch_direct_path(model, corrupted, clean_cache, corrupted_cache, metric, 0, 1, component,
                                    verbose=False)
    ref = naive_direct_path(model, corrupted, clean_cache, corrupted_cache, metric, 0, 1, component)
    assert got.shape == (3, 4)
    assert (got.cpu() - ref).abs().max() <= TOL
    assert torch.all(got[0] == 0)
    assert no_hooks_left(model)


def test_all_sources(setup):
    model, corrupted, clean_cache, corrupted_cache, metric = setup
    full = get_act_patch_direct_path_all_sources(model, corrupted, clean_cache, corrupted_cache, metric, "v",
                                                 verbose=False)
    assert full.shape == (3, 4, 3, 4)
    for sl, sh in [(0, 2), (1, 3)]:
        ref = naive_direct_path(model, corrupted, clean_cache, corrupted_cache, metric, sl, sh, "v")
        assert (full[sl, sh].cpu() - ref).abs().max() <= TOL
    assert torch.all(full[2] == 0)  # no later layer for the last source layer


def test_bad_input(setup):
    model, corrupted, clean_cache, corrupted_cache, metric = setup
    with pytest.raises(InvalidOptionError, match="component"):
        get_act_patch_direct_path(model, corrupted, clean_cache, corrupted_cache, metric, 0, 0, "o")
    with pytest.raises(OutOfRangeError, match="src head"):
        get_act_patch_direct_path(model, corrupted, clean_cache, corrupted_cache, metric, 0, 9)
    _, thin = model.run_with_cache(corrupted, names_filter=lambda n: n.endswith(("hook_z", "hook_q")))
    with pytest.raises(UnknownNameError, match="ln1.hook_scale"):
        get_act_patch_direct_path(model, corrupted, clean_cache, thin, metric, 0, 0, verbose=False)

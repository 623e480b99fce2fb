"""generic_activation_patch: index tables, custom setters, the paths that serve them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lenswidget import patching
from tests.models import tiny_model
from tests.test_patching_reference import (  # noqa: F401  (one_thread: autouse fixture)
    logit_diff_metric, naive_rows, no_hooks_left, one_thread, set_pos_head,
)

TOL = 1e-4


@pytest.fixture(scope="module")
def setup():
    model = tiny_model("llama", n_layers=3)
    gen = torch.Generator().manual_seed(2)
    clean = torch.randint(3, 300, (2, 7), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:5] = torch.randint(3, 300, (2, 4), generator=gen)
    _, cache = model.run_with_cache(clean)
    return model, corrupted, cache, logit_diff_metric(11, 13)


def two_positions(act, index, clean):
    """Custom setter: patch the residual at pos and pos+1 (a patch no built-in setter makes)."""
    _, pos = index
    act[:, pos : pos + 2] = clean[:, pos : pos + 2]
    return act


def scaled_head(act, index, clean):
    """Custom setter returning a new tensor: half-way interpolation of one head."""
    _, pos, head = index
    out = act.clone()
    out[:, pos, head] = 0.5 * (act[:, pos, head] + clean[:, pos, head])
    return out


def test_index_df_and_axis_names_agree_with_custom_setter(setup):
    model, corrupted, cache, metric = setup
    grid = patching.generic_activation_patch(model, corrupted, cache, metric, two_positions, "resid_pre",
                                             index_axis_names=("layer", "pos"), verbose=False)
    df = pd.DataFrame([(l, p) for l in (2, 0, 1) for p in (5, 0, 3)], columns=["layer", "pos"])
    flat, df_back = patching.generic_activation_patch(model, corrupted, cache, metric, two_positions, "resid_pre",
                                                      index_df=df, return_index_df=True, verbose=False)
    assert df_back is df
    assert flat.shape == (len(df),)
    expected = torch.stack([grid[l, p] for l, p in df.itertuples(index=False)])
    assert (flat - expected).abs().max() <= 1e-6
    ref = naive_rows(model, corrupted, cache, metric, "resid_pre", two_positions, df.values.tolist())
    assert (flat.cpu() - ref).abs().max() <= TOL


@pytest.mark.parametrize("method", ["fast", "hooks"])
def test_custom_setter_returning_new_tensor(setup, method):
    model, corrupted, cache, metric = setup
    df = pd.DataFrame([(0, 2, 1), (1, 4, 0), (2, 6, 3), (2, 0, 2)], columns=["layer", "pos", "head"])
    got = patching.generic_activation_patch(model, corrupted, cache, metric, scaled_head, "z", index_df=df,
                                            verbose=False, method=method)
    ref = naive_rows(model, corrupted, cache, metric, "z", scaled_head, df.values.tolist())
    assert (got.cpu() - ref).abs().max() <= TOL


def test_custom_and_builtin_setters_agree(setup):
    model, corrupted, cache, metric = setup
    builtin = patching.get_act_patch_attn_head_q_by_pos(model, corrupted, cache, metric, verbose=False)
    custom = patching.generic_activation_patch(model, corrupted, cache, metric, set_pos_head, "q",
                                               index_axis_names=("layer", "pos", "head"), verbose=False)
    assert (builtin - custom).abs().max() <= 1e-6


def test_sweep_accepts_index_df(setup):
    model, corrupted, cache, metric = setup
    df = pd.DataFrame([(1, 3, 1), (0, 6, 0)], columns=["layer", "pos", "head_index"])  # v: 2 key/value heads
    full = patching.get_act_patch_attn_head_v_by_pos(model, corrupted, cache, metric, verbose=False)
    flat = patching.get_act_patch_attn_head_v_by_pos(model, corrupted, cache, metric, index_df=df, verbose=False)
    assert torch.allclose(flat, torch.stack([full[1, 3, 1], full[0, 6, 0]]), atol=1e-6)


def test_activation_without_fast_site_uses_hooks(setup):
    """hook_post (MLP hidden units) has no fast site: the exact hook-based path serves it."""
    model, corrupted, cache, metric = setup

    def neurons(act, index, clean):
        _, pos = index
        act[:, pos, :8] = clean[:, pos, :8]
        return act

    df = pd.DataFrame([(0, 1), (2, 6), (1, 4)], columns=["layer", "pos"])
    got = patching.generic_activation_patch(model, corrupted, cache, metric, neurons, "post", index_df=df,
                                            verbose=False)
    ref = naive_rows(model, corrupted, cache, metric, "post", neurons, df.values.tolist())
    assert (got.cpu() - ref).abs().max() <= TOL
    assert no_hooks_left(model)


def test_attached_hooks_are_honoured(setup):
    """With a hook already on the model, sweeps run through it (hook-based path), like TransformerLens."""
    model, corrupted, cache, metric = setup

    def damp(act, hook):
        return act * 0.9

    model.add_hook("blocks.1.hook_mlp_out", damp)
    try:
        got = patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False)
        from tests.test_patching_reference import naive_grid, set_pos

        ref = naive_grid(model, corrupted, cache, metric, "resid_pre", set_pos, (3, 7))
        assert (got.cpu() - ref).abs().max() <= TOL
        assert len(model.hook_dict["blocks.1.hook_mlp_out"].fwd_hooks) == 1  # the user's hook stays
    finally:
        model.reset_hooks()


def test_make_df_from_ranges_matches_grid_order():
    df = patching.make_df_from_ranges([2, 3], ["layer", "pos"])
    assert df.values.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


def test_return_index_df_with_axis_names(setup):
    model, corrupted, cache, metric = setup
    res, df = patching.get_act_patch_mlp_out(model, corrupted, cache, metric, return_index_df=True, verbose=False)
    assert res.shape == (3, 7) and len(df) == 21 and list(df.columns) == ["layer", "pos"]


def test_progress_callback_and_cancel(setup):
    model, corrupted, cache, metric = setup
    seen = []
    patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False,
                                     on_progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (21, 21) and all(t == 21 for _, t in seen)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(patching.PatchingCancelled) as info:
        patching.get_act_patch_attn_head_out_by_pos(model, corrupted, cache, metric, verbose=False, max_batch=2,
                                                    should_stop=stop)
    partial = info.value.partial
    assert partial.shape == (3, 7, 4)
    assert torch.isnan(partial).any() and (~torch.isnan(partial)).any()
    assert no_hooks_left(model)


def test_every_reports_combined_progress(setup):
    model, corrupted, cache, metric = setup
    seen = []
    patching.get_act_patch_block_every(model, corrupted, cache, metric, verbose=False,
                                       on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (63, 63)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

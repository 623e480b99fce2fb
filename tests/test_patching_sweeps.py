"""Every get_act_patch_* sweep equals the naive one-forward-per-patch reference (<= 1e-4).

Families: GPT-2 style (LN, learned positions), Llama style (RMS, rotary, gated MLP, GQA),
NeoX style (parallel attention + MLP, partial rotary) and Gemma-2 style (post-norms, soft
caps, sliding windows).
"""

from __future__ import annotations

import pytest
import torch

from lenswidget import patching
from tests.models import tiny_model
from tests.test_patching_reference import (  # noqa: F401  (one_thread: autouse fixture)
    SWEEPS, kv_heads, logit_diff_metric, naive_grid, no_hooks_left, one_thread,
)

TOL = 1e-4
B, T = 2, 6


def _setup(family, **overrides):
    model = tiny_model(family, **overrides)
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(3, 300, (B, T), generator=gen)
    clean[:, 0] = 0  # shared first token: exercises the "patch changes nothing" shortcut
    corrupted = clean.clone()
    corrupted[:, 2:4] = torch.randint(3, 300, (B, 2), generator=gen)
    _, cache = model.run_with_cache(clean)
    return model, corrupted, cache


@pytest.fixture(scope="module", params=["gpt2", "llama", "neox", "gemma2"])
def setup(request):
    return (request.param,) + _setup(request.param)


def _sizes(model, sizes_fn):
    cfg = model.cfg
    return sizes_fn(cfg.n_layers, T, cfg.n_heads, kv_heads(model))


def _run(model, corrupted, cache, metric, fn_name, **kw):
    return getattr(patching, fn_name)(model, corrupted, cache, metric, verbose=False, **kw)


@pytest.mark.parametrize("fn_name, act, setter, sizes_fn", SWEEPS, ids=[s[0][14:] for s in SWEEPS])
def test_sweep_matches_naive(setup, fn_name, act, setter, sizes_fn):
    family, model, corrupted, cache = setup
    if act == "resid_mid" and model.cfg.parallel_attn_mlp:
        pytest.skip("parallel blocks have no resid_mid")
    metric = logit_diff_metric(5, 7)
    sizes = _sizes(model, sizes_fn)
    ref = naive_grid(model, corrupted, cache, metric, act, setter, sizes)
    plain = _run(model, corrupted, cache, metric, fn_name)
    batched = patching.batched_metric(lambda lg: (lg[:, :, -1, 5] - lg[:, :, -1, 7]).mean(1), positions=[-1])
    fast = _run(model, corrupted, cache, batched, fn_name, method="fast")
    assert tuple(plain.shape) == tuple(sizes) == tuple(fast.shape)
    assert (plain.cpu() - ref).abs().max() <= TOL
    assert (fast.cpu() - ref).abs().max() <= TOL
    assert no_hooks_left(model)


@pytest.mark.parametrize("fn_name", ["get_act_patch_resid_pre", "get_act_patch_attn_head_v_by_pos",
                                     "get_act_patch_attn_head_pattern_by_pos"])
def test_metric_reading_several_positions(setup, fn_name):
    """A declared metric reading an early and the last position: unchanged positions come from the corrupted run."""
    family, model, corrupted, cache = setup
    act, setter, sizes_fn = next((a, s, f) for n, a, s, f in SWEEPS if n == fn_name)

    def per_run(lg):  # [batch, 2, vocab]
        return (lg[:, 0, 5] - lg[:, 1, 7]).mean()

    metric = patching.batched_metric(per_run, positions=[2, -1], batched=False)
    ref = naive_grid(model, corrupted, cache, metric, act, setter, _sizes(model, sizes_fn))
    got = _run(model, corrupted, cache, metric, fn_name)
    assert (got.cpu() - ref).abs().max() <= TOL


@pytest.mark.parametrize("method", ["hooks", "naive"])
def test_other_paths_match(method):
    model, corrupted, cache = _setup("llama")
    metric = logit_diff_metric(5, 7)
    for fn_name in ("get_act_patch_resid_pre", "get_act_patch_attn_head_k_all_pos"):
        ref = _run(model, corrupted, cache, metric, fn_name, method="fast")
        got = _run(model, corrupted, cache, metric, fn_name, method=method, max_batch=3)
        assert (got - ref).abs().max() <= TOL
    assert no_hooks_left(model)


def test_small_chunks_match():
    """A tiny memory budget (one run per chunk) gives the same numbers."""
    model, corrupted, cache = _setup("gpt2")
    metric = logit_diff_metric(5, 7)
    a = _run(model, corrupted, cache, metric, "get_act_patch_attn_head_out_by_pos")
    b = _run(model, corrupted, cache, metric, "get_act_patch_attn_head_out_by_pos", memory_budget=1)
    assert (a - b).abs().max() <= 1e-6


def test_ungrouped_gqa_sweeps_query_heads():
    model, corrupted, cache = _setup("llama", ungroup_grouped_query_attention=True)
    metric = logit_diff_metric(5, 7)
    from tests.test_patching_reference import set_head

    ref = naive_grid(model, corrupted, cache, metric, "k", set_head, (2, 4))
    got = _run(model, corrupted, cache, metric, "get_act_patch_attn_head_k_all_pos")
    assert got.shape == (2, 4)
    assert (got.cpu() - ref).abs().max() <= TOL


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_every_stacks_components(family):
    model, corrupted, cache = _setup(family)
    metric = logit_diff_metric(5, 7)
    H = model.cfg.n_heads
    group = H // kv_heads(model)
    every = patching.get_act_patch_attn_head_all_pos_every(model, corrupted, cache, metric, verbose=False)
    assert every.shape == (5, 2, H)
    parts = ["out", "q", "k", "v", "pattern"]
    for i, part in enumerate(parts):
        single = _run(model, corrupted, cache, metric, f"get_act_patch_attn_head_{part}_all_pos")
        if part in ("k", "v"):
            single = single.repeat_interleave(group, dim=1)  # key/value head result on each query head
        assert torch.allclose(every[i], single, atol=1e-6)
    by_pos = patching.get_act_patch_attn_head_by_pos_every(model, corrupted, cache, metric, verbose=False)
    assert by_pos.shape == (5, 2, T, H)
    pattern = _run(model, corrupted, cache, metric, "get_act_patch_attn_head_pattern_by_pos")
    assert torch.allclose(by_pos[4], pattern.transpose(1, 2), atol=1e-6)
    block = patching.get_act_patch_block_every(model, corrupted, cache, metric, verbose=False)
    assert block.shape == (3, 2, T)
    assert torch.allclose(block[2], _run(model, corrupted, cache, metric, "get_act_patch_mlp_out"), atol=1e-6)


@pytest.mark.parametrize("family, overrides", [
    ("gpt2", dict(attn_only=True)),
    ("neox", dict(rotary_adjacent_pairs=True, parallel_attn_mlp=False)),
    ("gpt2", dict(scale_attn_by_inverse_layer_idx=True, normalization_type=None)),
    ("llama", dict(use_NTK_by_parts_rope=True, NTK_original_ctx_len=4, n_key_value_heads=1)),
    ("gemma2", dict(use_attn_result=True, use_split_qkv_input=True)),
], ids=["attn_only", "gptj_rotary", "no_norm_layer_scale", "ntk_rope_mqa", "gemma2_optional_hooks"])
def test_more_configs(family, overrides):
    model, corrupted, cache = _setup(family, **overrides)
    metric = logit_diff_metric(5, 7)
    for fn_name, act, setter, sizes_fn in SWEEPS:
        if act in ("resid_mid", "mlp_out") and (model.cfg.attn_only or model.cfg.parallel_attn_mlp):
            continue
        if fn_name.endswith("dest_src_pos"):
            continue
        ref = naive_grid(model, corrupted, cache, metric, act, setter, _sizes(model, sizes_fn))
        got = _run(model, corrupted, cache, metric, fn_name, method="fast")
        assert (got.cpu() - ref).abs().max() <= TOL, fn_name
    if model.cfg.use_attn_result:
        from tests.test_patching_reference import set_pos_head

        ref = naive_grid(model, corrupted, cache, metric, "result", set_pos_head, (2, T, 4))
        got = patching.generic_activation_patch(model, corrupted, cache, metric, set_pos_head, "result",
                                                index_axis_names=("layer", "pos", "head"), verbose=False,
                                                method="fast")
        assert (got.cpu() - ref).abs().max() <= TOL


def test_left_padding_uses_exact_path():
    """Left-padded prompts carry an attention mask: the hook-based path handles them exactly."""
    model = tiny_model("llama", tokenizer=True)
    model.tokenizer.padding_side = "left"
    clean = model.to_tokens(["The cat sat on the mat", "The dog"], padding_side="left")
    corrupted = model.to_tokens(["The dog sat on the log", "The cat"], padding_side="left")
    assert clean.shape == corrupted.shape
    _, cache = model.run_with_cache(clean, padding_side="left")
    metric = logit_diff_metric(5, 7)
    from lenswidget.patching.engine import fast_path_reason

    assert "padding" in (fast_path_reason(model, "resid_pre", corrupted) or "")
    T2 = corrupted.shape[1]
    from tests.test_patching_reference import set_pos

    ref = naive_grid(model, corrupted, cache, metric, "resid_pre", set_pos, (2, T2))
    got = _run(model, corrupted, cache, metric, "get_act_patch_resid_pre")
    assert (got.cpu() - ref).abs().max() <= TOL

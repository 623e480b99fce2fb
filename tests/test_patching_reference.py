"""The naive reference for activation patching, written independently of lenswidget.patching.

One ``run_with_hooks`` forward per patch, with setters written here, as the loops of the
worked notebook (seed 004) do. Other patching tests compare the engine against it.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from lenswidget.utils import get_act_name

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread (on a shared 2-core box, thread spinning costs 10-50x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- setters (seed-004 style)


def set_pos(act, row, clean):
    _, pos = row
    act[:, pos] = clean[:, pos]
    return act


def set_pos_head(act, row, clean):
    _, pos, head = row
    act[:, pos, head] = clean[:, pos, head]
    return act


def set_head(act, row, clean):
    _, head = row
    act[:, :, head] = clean[:, :, head]
    return act


def set_pattern_head(act, row, clean):
    _, head = row
    act[:, head] = clean[:, head]
    return act


def set_pattern_dest(act, row, clean):
    _, head, dest = row
    act[:, head, dest] = clean[:, head, dest]
    return act


def set_pattern_dest_src(act, row, clean):
    _, head, dest, src = row
    act[:, head, dest, src] = clean[:, head, dest, src]
    return act


def naive_rows(model, tokens, clean_cache, metric, act, setter, rows):
    """Metric of each row's patched run: one full hooked forward each."""
    out = []
    for row in rows:
        name = get_act_name(act, row[0])
        clean = clean_cache[name]

        def hook(a, hook, row=row, clean=clean):
            return setter(a, row, clean)

        with torch.no_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])
        out.append(float(metric(logits)))
    return torch.tensor(out)


def naive_grid(model, tokens, clean_cache, metric, act, setter, sizes):
    """naive_rows over every index of ``sizes`` (layer first), reshaped to ``sizes``."""
    rows = [list(r) for r in itertools.product(*[range(s) for s in sizes])]
    return naive_rows(model, tokens, clean_cache, metric, act, setter, rows).reshape(sizes)


# (function name, activation, setter, axis sizes as a function of (L, T, H, H_kv))
SWEEPS = [
    ("get_act_patch_resid_pre", "resid_pre", set_pos, lambda L, T, H, K: (L, T)),
    ("get_act_patch_resid_mid", "resid_mid", set_pos, lambda L, T, H, K: (L, T)),
    ("get_act_patch_attn_out", "attn_out", set_pos, lambda L, T, H, K: (L, T)),
    ("get_act_patch_mlp_out", "mlp_out", set_pos, lambda L, T, H, K: (L, T)),
    ("get_act_patch_attn_head_out_by_pos", "z", set_pos_head, lambda L, T, H, K: (L, T, H)),
    ("get_act_patch_attn_head_q_by_pos", "q", set_pos_head, lambda L, T, H, K: (L, T, H)),
    ("get_act_patch_attn_head_k_by_pos", "k", set_pos_head, lambda L, T, H, K: (L, T, K)),
    ("get_act_patch_attn_head_v_by_pos", "v", set_pos_head, lambda L, T, H, K: (L, T, K)),
    ("get_act_patch_attn_head_pattern_by_pos", "pattern", set_pattern_dest, lambda L, T, H, K: (L, H, T)),
    ("get_act_patch_attn_head_pattern_dest_src_pos", "pattern", set_pattern_dest_src,
     lambda L, T, H, K: (L, H, T, T)),
    ("get_act_patch_attn_head_out_all_pos", "z", set_head, lambda L, T, H, K: (L, H)),
    ("get_act_patch_attn_head_q_all_pos", "q", set_head, lambda L, T, H, K: (L, H)),
    ("get_act_patch_attn_head_k_all_pos", "k", set_head, lambda L, T, H, K: (L, K)),
    ("get_act_patch_attn_head_v_all_pos", "v", set_head, lambda L, T, H, K: (L, K)),
    ("get_act_patch_attn_head_pattern_all_pos", "pattern", set_pattern_head, lambda L, T, H, K: (L, H)),
]


def kv_heads(model) -> int:
    cfg = model.cfg
    if cfg.n_key_value_heads and not cfg.ungroup_grouped_query_attention:
        return cfg.n_key_value_heads
    return cfg.n_heads


def logit_diff_metric(right: int, wrong: int):
    """Plain metric: mean logit difference at the last position."""

    def metric(logits):
        return (logits[:, -1, right] - logits[:, -1, wrong]).mean()

    return metric


def no_hooks_left(model) -> bool:
    return not any(hp.has_hooks("fwd") or hp.has_hooks("bwd") or hp.has_hooks("both") for hp in model.hook_dict.values())


def test_reference_noop_patch_is_corrupted_run():
    """Patching an activation with itself gives the corrupted metric (sanity of the reference)."""
    from tests.models import tiny_model

    model = tiny_model("gpt2")
    tokens = torch.randint(3, 300, (2, 5), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    metric = logit_diff_metric(5, 7)
    got = naive_grid(model, tokens, cache, metric, "resid_pre", set_pos, (2, 5))
    with torch.no_grad():
        base = float(metric(model(tokens)))
    assert torch.allclose(got, torch.full_like(got, base), atol=1e-5)

"""Fast patching equals the naive reference on the real SmolLM2-135M (Llama: RMS, rotary, GQA 9/3)."""

from __future__ import annotations

import pandas as pd
import pytest

from lenswidget import patching
from tests.test_patching_reference import (  # noqa: F401  (one_thread: autouse fixture)
    naive_grid, naive_rows, no_hooks_left, one_thread, set_pattern_dest, set_pos, set_pos_head,
)

pytestmark = pytest.mark.smollm2
TOL = 1e-4


@pytest.fixture(scope="module")
def pair(smollm2):
    model = smollm2
    # one pair keeps the naive reference (one full forward per patch) affordable in CI
    clean = model.to_tokens("The capital of France is", prepend_bos=True)
    corrupted = model.to_tokens("The capital of Spain is", prepend_bos=True)
    assert clean.shape == corrupted.shape and clean.shape[1] <= 8
    right, wrong = model.to_single_token(" Paris"), model.to_single_token(" Madrid")

    def metric(logits):
        return (logits[:, -1, right] - logits[:, -1, wrong]).mean()

    _, cache = model.run_with_cache(clean)
    return model, corrupted, cache, metric


def test_resid_pre_all_layers_and_positions(pair):
    model, corrupted, cache, metric = pair
    L, T = model.cfg.n_layers, corrupted.shape[1]
    got = patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False)
    ref = naive_grid(model, corrupted, cache, metric, "resid_pre", set_pos, (L, T))
    assert got.shape == (L, T)
    assert (got.cpu() - ref).abs().max() <= TOL
    assert no_hooks_left(model)


@pytest.mark.parametrize("fn_name, act, setter, heads", [
    ("get_act_patch_attn_head_out_by_pos", "z", set_pos_head, 9),
    ("get_act_patch_attn_head_q_by_pos", "q", set_pos_head, 9),
    ("get_act_patch_attn_head_k_by_pos", "k", set_pos_head, 3),
    ("get_act_patch_attn_head_v_by_pos", "v", set_pos_head, 3),
])
def test_heads_on_a_few_layers(pair, fn_name, act, setter, heads):
    model, corrupted, cache, metric = pair
    T = corrupted.shape[1]
    rows = [(l, p, h) for l in (0, 29) for p in (1, T - 2, T - 1) for h in (0, heads - 1)]
    df = pd.DataFrame(rows, columns=["layer", "pos", "head_index"])
    got = getattr(patching, fn_name)(model, corrupted, cache, metric, index_df=df, verbose=False)
    ref = naive_rows(model, corrupted, cache, metric, act, setter, [list(r) for r in rows])
    assert (got.cpu() - ref).abs().max() <= TOL


def test_pattern_rows_on_a_few_layers(pair):
    model, corrupted, cache, metric = pair
    T = corrupted.shape[1]
    rows = [(l, h, d) for l in (2, 28) for h in (0, 8) for d in (3, T - 1)]
    df = pd.DataFrame(rows, columns=["layer", "head_index", "dest_pos"])
    got = patching.get_act_patch_attn_head_pattern_by_pos(model, corrupted, cache, metric, index_df=df, verbose=False)
    ref = naive_rows(model, corrupted, cache, metric, "pattern", set_pattern_dest, [list(r) for r in rows])
    assert (got.cpu() - ref).abs().max() <= TOL

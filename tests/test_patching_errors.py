"""Bad input gets typed errors naming what is wrong; failures mid-sweep leave nothing behind."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lenswidget import patching
from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, UnknownNameError
from tests.models import tiny_model
from tests.test_patching_reference import logit_diff_metric, no_hooks_left, one_thread  # noqa: F401

METHODS = ["fast", "hooks", "naive"]


@pytest.fixture(scope="module")
def setup():
    model = tiny_model("llama")
    gen = torch.Generator().manual_seed(3)
    clean = torch.randint(3, 300, (2, 6), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:] = torch.randint(3, 300, (2, 5), generator=gen)
    _, cache = model.run_with_cache(clean)
    return model, corrupted, cache, logit_diff_metric(5, 7)


def test_shape_mismatch_names_both_shapes(setup):
    model, corrupted, cache, metric = setup
    with pytest.raises(ShapeMismatchError) as info:
        patching.get_act_patch_resid_pre(model, corrupted[:, :5], cache, metric, verbose=False)
    msg = str(info.value)
    assert "(2, 5)" in msg and "(2, 6, 32)" in msg and "blocks.0.hook_resid_pre" in msg
    with pytest.raises(ShapeMismatchError, match=r"\(1, 6\)"):
        patching.get_act_patch_attn_head_pattern_all_pos(model, corrupted[:1], cache, metric, verbose=False)


def test_missing_cache_entry_says_what_to_cache(setup):
    model, corrupted, _, metric = setup
    _, partial = model.run_with_cache(corrupted, names_filter=lambda n: n.endswith("resid_pre"))
    with pytest.raises(UnknownNameError) as info:
        patching.get_act_patch_attn_head_out_by_pos(model, corrupted, partial, metric, verbose=False)
    msg = str(info.value)
    assert "blocks.0.attn.hook_z" in msg and "names_filter" in msg
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("method", METHODS)
def test_non_scalar_metric(setup, method):
    model, corrupted, cache, _ = setup

    def per_prompt(logits):
        return logits[:, -1, 5] - logits[:, -1, 7]  # [batch]: forgot the mean

    with pytest.raises(ShapeMismatchError, match=r"scalar.*shape \(2,\)"):
        patching.get_act_patch_mlp_out(model, corrupted, cache, per_prompt, verbose=False, method=method)
    assert no_hooks_left(model)


def test_batched_metric_wrong_shape(setup):
    model, corrupted, cache, _ = setup
    bad = patching.batched_metric(lambda lg: lg[:, :, -1, 5], positions=[-1])  # [runs, batch]
    with pytest.raises(ShapeMismatchError, match=r"one value per run"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, bad, verbose=False)


def test_unknown_activation_name(setup):
    model, corrupted, cache, metric = setup
    with pytest.raises(UnknownNameError, match=r"resid_pree.*resid_pre"):
        patching.generic_activation_patch(model, corrupted, cache, metric, patching.layer_pos_patch_setter,
                                          "resid_pree", index_axis_names=("layer", "pos"), verbose=False)


def test_bad_options(setup):
    model, corrupted, cache, metric = setup
    with pytest.raises(InvalidOptionError, match="method"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, metric, method="turbo", verbose=False)
    with pytest.raises(InvalidOptionError, match="index axis name"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, metric, index_axis_names=("layer", "posn"),
                                         verbose=False)
    with pytest.raises(OutOfRangeError, match="'layer' 7"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False,
                                         index_df=pd.DataFrame({"layer": [0, 7], "pos": [0, 1]}))
    with pytest.raises(ShapeMismatchError, match="first column must be 'layer'"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False,
                                         index_df=pd.DataFrame({"pos": [0], "layer": [1]}))
    with pytest.raises(OutOfRangeError, match="metric position"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, patching.batched_metric(lambda x: x, [9]),
                                         verbose=False)


# ---------------------------------------------------------------- fault injection


class Boom(RuntimeError):
    pass


def _snapshot(model, cache):
    return ({k: v.clone() for k, v in model.state_dict().items()}, {k: v.clone() for k, v in cache.items()})


def _assert_untouched(model, cache, snap, corrupted, logits_before):
    params, acts = snap
    assert no_hooks_left(model)
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, acts[k]) for k, v in cache.items())
    assert model.context_level == 0
    with torch.no_grad():
        assert torch.equal(model(corrupted), logits_before)


def _failing_metric(exc, after=2):
    calls = {"n": 0}

    def metric(logits):
        calls["n"] += 1
        if calls["n"] > after:
            raise exc
        return (logits[:, -1, 5] - logits[:, -1, 7]).mean()

    return metric


def _failing_setter(exc, after=3):
    calls = {"n": 0}

    def setter(act, index, clean):
        calls["n"] += 1
        if calls["n"] > after:
            raise exc
        return patching.layer_pos_head_vector_patch_setter(act, index, clean)

    return setter


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("exc", [Boom("metric failed"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_metric_raising_leaves_model_clean(setup, method, exc):
    model, corrupted, cache, _ = setup
    snap = _snapshot(model, cache)
    with torch.no_grad():
        before = model(corrupted)
    metric = _failing_metric(exc)
    with pytest.raises(type(exc)):
        patching.get_act_patch_resid_pre(model, corrupted, cache, metric, verbose=False, method=method, max_batch=1)
    _assert_untouched(model, cache, snap, corrupted, before)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("exc", [Boom("setter failed"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_setter_raising_leaves_model_clean(setup, method, exc):
    """The setter runs inside a hook on the hook-based and naive paths."""
    model, corrupted, cache, metric = setup
    snap = _snapshot(model, cache)
    with torch.no_grad():
        before = model(corrupted)
    with pytest.raises(type(exc)):
        patching.generic_activation_patch(model, corrupted, cache, metric, _failing_setter(exc), "z",
                                          index_axis_names=("layer", "pos", "head"), verbose=False, method=method)
    _assert_untouched(model, cache, snap, corrupted, before)


def test_interrupt_in_progress_callback(setup):
    model, corrupted, cache, metric = setup
    snap = _snapshot(model, cache)
    with torch.no_grad():
        before = model(corrupted)

    def on_progress(done, total):
        if done > 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        patching.get_act_patch_attn_head_all_pos_every(model, corrupted, cache, metric, verbose=False,
                                                       max_batch=1, on_progress=on_progress)
    _assert_untouched(model, cache, snap, corrupted, before)

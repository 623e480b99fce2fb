"""Attribution patching: shapes of the exact sweeps, gradients checked against autograd written here."""

from __future__ import annotations

import pytest
import torch

from lenswidget import patching
from lenswidget.errors import InvalidOptionError, ShapeMismatchError
from lenswidget.patching import attribution
from lenswidget.utils import get_act_name
from tests.models import tiny_model
from tests.test_patching_reference import logit_diff_metric, no_hooks_left, one_thread  # noqa: F401


@pytest.fixture(scope="module")
def setup():
    model = tiny_model("llama", n_layers=3)
    gen = torch.Generator().manual_seed(4)
    clean = torch.randint(3, 300, (2, 6), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 2:] = torch.randint(3, 300, (2, 4), generator=gen)
    _, cache = model.run_with_cache(clean)
    return model, corrupted, cache, logit_diff_metric(5, 7)


def _reference(model, corrupted, cache, metric, name):
    """metric(corrupted) + sum((clean - corr) * grad) at hook ``name``, by direct autograd."""
    held = {}

    def leaf(act, hook):
        held["x"] = act.detach().requires_grad_(True)
        return held["x"]

    with torch.enable_grad():
        value = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, leaf)]))
        (grad,) = torch.autograd.grad(value, [held["x"]])
    return float(value.detach()), (cache[name] - held["x"].detach()) * grad


def test_shapes_match_exact_sweeps(setup):
    model, corrupted, cache, metric = setup
    est = attribution.attribution_patch(model, corrupted, cache, metric)
    assert set(est) == set(attribution.SWEEPS)
    for sweep, value in est.items():
        exact = getattr(patching, f"get_act_patch_{sweep}")(model, corrupted, cache, metric, verbose=False)
        assert value.shape == exact.shape, sweep
    assert est["attn_head_k_all_pos"].shape == (3, 2)  # GQA: key/value heads


@pytest.mark.parametrize("sweep, act, reduce", [
    ("resid_pre", "resid_pre", lambda x: x.sum((0, 2))),
    ("mlp_out", "mlp_out", lambda x: x.sum((0, 2))),
    ("attn_head_out_by_pos", "z", lambda x: x.sum((0, 3))),
    ("attn_head_v_all_pos", "v", lambda x: x.sum((0, 1, 3))),
    ("attn_head_pattern_dest_src_pos", "pattern", lambda x: x.sum(0)),
])
def test_estimates_match_autograd(setup, sweep, act, reduce):
    model, corrupted, cache, metric = setup
    est = getattr(attribution, f"get_act_patch_{sweep}")(model, corrupted, cache, metric)
    for layer in range(3):
        value, contrib = _reference(model, corrupted, cache, metric, get_act_name(act, layer))
        assert torch.allclose(est[layer], value + reduce(contrib), atol=1e-5), (sweep, layer)
    delta = attribution.attribution_patch(model, corrupted, cache, metric, (sweep,), return_delta=True)[sweep]
    with torch.no_grad():
        base = float(metric(model(corrupted)))
    assert torch.allclose(est - delta, torch.full_like(est, base), atol=1e-5)


def test_compare_with_exact(setup):
    model, corrupted, cache, metric = setup
    r = attribution.compare_with_exact(model, corrupted, cache, metric, sweeps=("mlp_out", "attn_head_out_all_pos"),
                                       verbose=False)
    assert set(r) == {"mlp_out", "attn_head_out_all_pos"}
    assert all(-1.0 <= v <= 1.0 for v in r.values())
    assert r["attn_head_out_all_pos"] > 0.8  # small patches on a tiny model: nearly linear
    full = attribution.compare_with_exact(model, corrupted, cache, metric, sweeps="mlp_out", return_values=True,
                                          verbose=False)
    rr, est, exact = full["mlp_out"]
    assert est.shape == exact.shape == (3, 6) and abs(rr - r["mlp_out"]) < 1e-9


def test_leaves_no_hooks_or_gradients(setup):
    model, corrupted, cache, metric = setup
    attribution.attribution_patch(model, corrupted, cache, metric, ("resid_pre", "attn_head_q_by_pos"))
    assert no_hooks_left(model)
    assert all(p.grad is None for p in model.parameters())


def test_bad_input(setup):
    model, corrupted, cache, metric = setup
    with pytest.raises(InvalidOptionError, match="attribution sweep"):
        attribution.attribution_patch(model, corrupted, cache, metric, ("resid_pree",))
    with pytest.raises(ShapeMismatchError, match="scalar"):
        attribution.attribution_patch(model, corrupted, cache, lambda lg: lg[:, -1, 5], ("mlp_out",))
    with pytest.raises(ShapeMismatchError, match="differentiabl"):
        attribution.attribution_patch(model, corrupted, cache, lambda lg: lg[0, -1, 5].detach(),
                                      ("mlp_out",))
    with pytest.raises(ShapeMismatchError, match=r"\(2, 5\)"):
        attribution.attribution_patch(model, corrupted[:, :5], cache, metric, ("mlp_out",))

    def boom(logits):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attribution.attribution_patch(model, corrupted, cache, boom, ("mlp_out",))
    assert no_hooks_left(model)

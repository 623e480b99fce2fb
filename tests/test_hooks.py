"""HookPoint / HookedRootModule: adding, running, caching and always removing hooks."""

from __future__ import annotations

import logging

import pytest
import torch

from lenswidget.errors import InvalidOptionError, ShapeMismatchError, UnknownNameError
from lenswidget.hook_points import HookedRootModule, HookPoint
from tests.models import tiny_model

TOKENS = torch.tensor([[5, 17, 42, 7, 99, 3], [8, 1, 2, 250, 11, 9]])


@pytest.fixture(scope="module")
def model():
    return tiny_model("gpt2")


@pytest.fixture(autouse=True)
def _clean(model):
    model.reset_hooks(including_permanent=True)
    yield
    model.reset_hooks(including_permanent=True)


def n_hooks(model) -> int:
    """Every hook anywhere: our handle lists and torch's own hook dicts."""
    total = 0
    for hp in model.hook_dict.values():
        total += len(hp.fwd_hooks) + len(hp.bwd_hooks) + len(hp._forward_hooks) + len(hp._backward_hooks)
    return total


# ---------------------------------------------------------------------------- basics
def test_setup_names_every_hook_point(model):
    assert model.hook_dict["blocks.1.attn.hook_z"].name == "blocks.1.attn.hook_z"
    assert model.mod_dict["blocks.0.attn"] is model.blocks[0].attn
    assert set(model.hook_dict) == {hp.name for hp in model.hook_points()}
    assert model.hook_dict["blocks.1.mlp.hook_post"].layer() == 1
    with pytest.raises(ValueError, match="not inside a block"):
        model.hook_dict["hook_embed"].layer()


def test_hook_edits_activation_and_none_keeps_it(model):
    clean = model(TOKENS)
    same = model.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: None)])
    assert torch.equal(clean, same)
    zeroed = model.run_with_hooks(
        TOKENS, fwd_hooks=[("blocks.1.hook_resid_post", lambda x, hook: torch.zeros_like(x))]
    )
    # The final residual is zero, so LN output is zero and logits are just b_U.
    assert torch.allclose(zeroed, model.unembed.b_U.expand_as(zeroed))
    assert n_hooks(model) == 0


def test_hook_receives_name_and_predicate_selection(model):
    seen = []
    model.run_with_hooks(
        TOKENS, fwd_hooks=[(lambda n: n.endswith("hook_attn_out"), lambda x, hook: seen.append(hook.name))]
    )
    assert seen == ["blocks.0.hook_attn_out", "blocks.1.hook_attn_out"]


def test_prepend_runs_first(model):
    order = []
    model.add_hook("hook_embed", lambda x, hook: order.append("a"))
    model.add_hook("hook_embed", lambda x, hook: order.append("b"), prepend=True)
    model(TOKENS)
    assert order == ["b", "a"]


def test_has_hooks(model):
    hp = model.hook_dict["blocks.0.attn.hook_pattern"]
    assert not hp.has_hooks()
    model.add_hook(hp.name, lambda x, hook: None)
    assert hp.has_hooks("fwd") and not hp.has_hooks("bwd") and hp.has_hooks("both") and hp.has_hooks()
    model.reset_hooks()
    assert not hp.has_hooks("both")
    model.add_perma_hook(hp.name, lambda x, hook: None)
    assert hp.has_hooks() and not hp.has_hooks(including_permanent=False)
    with model.hooks(fwd_hooks=[(hp.name, lambda x, hook: None)]):
        assert hp.has_hooks(level=1) and hp.has_hooks(including_permanent=False)
    assert not hp.has_hooks(level=1)


def test_list_hooks_and_check_and_add_hook(model):
    fn = lambda x, hook: None  # noqa: E731
    model.check_and_add_hook(model.hook_dict["hook_embed"], "hook_embed", fn)
    model.add_perma_hook("blocks.0.hook_resid_pre", fn)
    listed = model.list_hooks()
    assert sorted(listed) == ["blocks.0.hook_resid_pre", "hook_embed"]
    assert list(model.list_hooks(including_permanent=False)) == ["hook_embed"]
    assert list(model.list_hooks("blocks.0.hook_resid_pre")) == ["blocks.0.hook_resid_pre"]
    assert model.list_hooks(dir="bwd") == {}


def test_alias_names_call_the_hook_once_per_alias(model):
    seen = []

    def hook(x, hook):
        seen.append(hook.name)
        return x + 1

    hp = model.hook_dict["blocks.0.hook_resid_post"]
    hp.add_hook(hook, alias_names=["a.hook_x", "b.hook_y"])
    try:
        _, cache = model.run_with_cache(TOKENS, names_filter="blocks.1.hook_resid_pre")
    finally:
        model.reset_hooks()
    assert seen == ["a.hook_x", "b.hook_y"]
    _, ref = model.run_with_cache(TOKENS, names_filter="blocks.1.hook_resid_pre")
    assert torch.allclose(cache["blocks.1.hook_resid_pre"], ref["blocks.1.hook_resid_pre"] + 2)


# ---------------------------------------------------------------------------- errors never leave hooks
def test_unknown_hook_name_lists_nearest_and_adds_nothing(model):
    with pytest.raises(UnknownNameError) as err:
        model.run_with_hooks(
            TOKENS,
            fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: None), ("blocks.0.hook_resid_pree", lambda x, hook: None)],
        )
    msg = str(err.value)
    assert "blocks.0.hook_resid_pree" in msg and "'blocks.0.hook_resid_pre'" in msg
    assert n_hooks(model) == 0
    with pytest.raises(KeyError):  # typed errors are also the natural builtin
        model.add_hook("blocks.9.hook_resid_pre", lambda x, hook: None)


def test_optional_hook_points_exist_when_off_and_never_fire(model):
    # TransformerLens 3.9 creates these whatever the use_* flags say; hooks on them are legal
    names = ["blocks.0.attn.hook_result", "blocks.0.hook_attn_in", "blocks.0.hook_q_input",
             "blocks.0.hook_k_input", "blocks.0.hook_v_input", "blocks.1.hook_mlp_in"]
    seen = []
    out = model.run_with_hooks(TOKENS, fwd_hooks=[(n, lambda x, hook: seen.append(hook.name)) for n in names])
    assert seen == [] and torch.allclose(out, model(TOKENS))
    assert n_hooks(model) == 0


def test_raising_hook_leaves_zero_hooks(model):
    def boom(x, hook):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        model.run_with_hooks(
            TOKENS,
            fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: None), ("blocks.1.hook_mlp_out", boom)],
            bwd_hooks=[("blocks.0.hook_resid_post", lambda g, hook: None)],
        )
    assert n_hooks(model) == 0
    with pytest.raises(RuntimeError, match="hook failed"):
        model.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", boom)], reset_hooks_end=False)
    assert n_hooks(model) == 0


def test_raising_forward_and_caller_leave_zero_hooks(model):
    with pytest.raises(ShapeMismatchError):  # float input is not tokens
        model.run_with_hooks(torch.randn(2, 3), fwd_hooks=[("hook_embed", lambda x, hook: None)])
    assert n_hooks(model) == 0
    with pytest.raises(ZeroDivisionError):
        with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: None)]):
            model(TOKENS)
            1 / 0
    assert n_hooks(model) == 0
    with pytest.raises(ShapeMismatchError):
        model.run_with_cache(TOKENS, remove_batch_dim=True)  # batch is 2
    assert n_hooks(model) == 0


def test_bad_direction(model):
    with pytest.raises(InvalidOptionError, match="'bwd'"):
        model.add_hook("hook_embed", lambda x, hook: None, dir="backward")


# ---------------------------------------------------------------------------- permanence and levels
def test_permanent_hooks_survive_reset(model):
    calls = []
    model.add_perma_hook("hook_embed", lambda x, hook: calls.append(1))
    model.add_hook("hook_embed", lambda x, hook: calls.append(2))
    model.reset_hooks()
    model(TOKENS)
    assert calls == [1]
    model.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", lambda x, hook: calls.append(3))])
    assert calls == [1, 1, 3]
    model.reset_hooks(including_permanent=True)
    model(TOKENS)
    assert calls == [1, 1, 3]


def test_nested_contexts_remove_only_their_level(model):
    hp = model.hook_dict["hook_embed"]
    with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: None)]):
        assert len(hp.fwd_hooks) == 1
        with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: None)]):
            assert len(hp.fwd_hooks) == 2
            assert {h.context_level for h in hp.fwd_hooks} == {1, 2}
        assert len(hp.fwd_hooks) == 1 and hp.fwd_hooks[0].context_level == 1
    assert len(hp.fwd_hooks) == 0 and model.context_level == 0


def test_reset_hooks_by_level_and_direction(model):
    model.add_hook("hook_embed", lambda x, hook: None, level=3)
    model.add_hook("hook_embed", lambda x, hook: None, level=4)
    model.add_hook("hook_embed", lambda g, hook: None, dir="bwd")
    model.reset_hooks(level=3)
    hp = model.hook_dict["hook_embed"]
    assert [h.context_level for h in hp.fwd_hooks] == [4] and len(hp.bwd_hooks) == 1
    model.reset_hooks(direction="fwd")
    assert not hp.fwd_hooks and len(hp.bwd_hooks) == 1
    model.reset_hooks(direction="bwd")
    assert n_hooks(model) == 0


def test_context_dict_and_clear_contexts(model):
    def remember(x, hook):
        hook.ctx["norm"] = x.norm().item()

    model.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.hook_resid_pre", remember)])
    hp = model.hook_dict["blocks.0.hook_resid_pre"]
    assert "norm" in hp.ctx
    model.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", lambda x, hook: None)], clear_contexts=True)
    assert hp.ctx == {}
    hp.ctx["x"] = 1
    model.reset_hooks(clear_contexts=False)
    assert hp.ctx == {"x": 1}
    model.reset_hooks()
    assert hp.ctx == {}


def test_reset_hooks_end_false_keeps_hooks(model):
    model.run_with_hooks(TOKENS, fwd_hooks=[("hook_embed", lambda x, hook: None)], reset_hooks_end=False)
    assert len(model.hook_dict["hook_embed"].fwd_hooks) == 1


# ---------------------------------------------------------------------------- backward hooks
def test_backward_hook_sees_and_edits_gradient(model):
    grads = {}

    def record(g, hook):
        grads[hook.name] = g.clone()

    def zero(g, hook):
        return torch.zeros_like(g)

    with torch.enable_grad():
        with model.hooks(bwd_hooks=[("blocks.1.hook_resid_pre", record)]):
            model(TOKENS, return_type="loss").backward()
        assert grads["blocks.1.hook_resid_pre"].shape == (2, 6, 32)
        model.zero_grad()
        with model.hooks(bwd_hooks=[("blocks.0.hook_attn_out", zero)]):
            model(TOKENS, return_type="loss").backward()
        # attn_out only feeds the block-0 attention weights' gradient path through W_O
        assert torch.all(model.blocks[0].attn.W_O.grad == 0)
        assert model.blocks[0].mlp.W_in.grad.abs().sum() > 0
        # After the context, the same graph-building forward has no live gradient hooks.
        model.zero_grad()
        with model.hooks(bwd_hooks=[("blocks.0.hook_attn_out", zero)]):
            loss = model(TOKENS, return_type="loss")
        loss.backward()
        assert model.blocks[0].attn.W_O.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_run_with_hooks_warns_about_bwd_hooks_removed(model, caplog):
    with caplog.at_level(logging.WARNING):
        model.run_with_hooks(TOKENS, bwd_hooks=[("hook_embed", lambda g, hook: None)])
    assert "backward" in caplog.text
    assert n_hooks(model) == 0


# ---------------------------------------------------------------------------- caching
def test_run_with_cache_caches_each_hook_once(model):
    writes = {}
    orig = dict.__setitem__

    class CountingDict(dict):
        def __setitem__(self, k, v):
            writes[k] = writes.get(k, 0) + 1
            orig(self, k, v)

    cache, fwd, _ = model.get_caching_hooks(cache=CountingDict())
    with model.hooks(fwd_hooks=fwd):
        model(TOKENS)
    assert writes and set(writes.values()) == {1}
    _, cache = model.run_with_cache(TOKENS)
    assert len(cache.cache_dict) == len(writes)
    assert set(cache.cache_dict) <= set(model.hook_dict)
    assert n_hooks(model) == 0


def test_names_filter_forms(model):
    _, c1 = model.run_with_cache(TOKENS, names_filter="blocks.0.hook_resid_post")
    assert list(c1.cache_dict) == ["blocks.0.hook_resid_post"]
    _, c2 = model.run_with_cache(TOKENS, names_filter=["blocks.1.attn.hook_pattern", "hook_embed", "hook_embed"])
    assert list(c2.cache_dict) == ["hook_embed", "blocks.1.attn.hook_pattern"]
    _, c3 = model.run_with_cache(TOKENS, names_filter=lambda n: n.endswith("hook_scale"))
    assert sorted(c3.cache_dict) == ["blocks.0.ln1.hook_scale", "blocks.0.ln2.hook_scale", "blocks.1.ln1.hook_scale", "blocks.1.ln2.hook_scale", "ln_final.hook_scale"]
    assert c3["blocks.0.ln1.hook_scale"].shape == (2, 6, 1)
    with pytest.raises(UnknownNameError, match="hook_resid_post"):
        model.run_with_cache(TOKENS, names_filter=["blocks.0.hook_resid_postt"])
    assert n_hooks(model) == 0


def test_cache_values_match_forward_and_are_detached(model):
    logits, cache = model.run_with_cache(TOKENS, device="cpu", return_cache_object=False)
    assert isinstance(cache, dict)
    assert torch.allclose(logits, model(TOKENS), atol=1e-5)  # cached run uses the explicit paths
    resid = cache["blocks.1.hook_resid_post"]
    assert not resid.requires_grad and resid.device.type == "cpu"
    assert torch.allclose(cache["blocks.1.hook_resid_mid"] + cache["blocks.1.hook_mlp_out"], resid)


def test_run_with_cache_returns_activation_cache(model):
    from lenswidget.cache import ActivationCache

    _, cache = model.run_with_cache(TOKENS[:1], remove_batch_dim=True)
    assert isinstance(cache, ActivationCache) and cache.has_batch_dim is False
    assert cache["blocks.0.hook_resid_pre"].shape == (6, 32)


def test_incl_bwd_gives_gradients(model):
    loss, cache = model.run_with_cache(TOKENS, return_type="loss", incl_bwd=True, return_cache_object=False)
    assert loss.ndim == 0
    assert cache["blocks.0.hook_resid_pre_grad"].shape == cache["blocks.0.hook_resid_pre"].shape
    assert cache["blocks.1.attn.hook_pattern_grad"].shape == (2, 4, 6, 6)
    assert cache["blocks.0.hook_resid_pre_grad"].abs().sum() > 0
    assert n_hooks(model) == 0
    model.zero_grad(set_to_none=True)
    with pytest.raises(ShapeMismatchError, match="return_type='loss'"):
        model.run_with_cache(TOKENS, incl_bwd=True)
    assert n_hooks(model) == 0


def test_pos_slice_keeps_the_position_axis(model):
    # TransformerLens reads an int pos_slice as [int]: the axis stays, with length 1.
    _, cache = model.run_with_cache(TOKENS, pos_slice=-1, return_cache_object=False)
    _, full = model.run_with_cache(TOKENS, return_cache_object=False)
    assert cache["blocks.0.hook_resid_pre"].shape == (2, 1, 32)
    assert torch.equal(cache["blocks.0.hook_resid_pre"], full["blocks.0.hook_resid_pre"][:, -1:])
    assert cache["blocks.0.attn.hook_z"].shape == (2, 1, 4, 8)  # [batch, pos, head, d_head]
    assert cache["blocks.0.attn.hook_pattern"].shape == (2, 4, 1, 6)  # query position sliced
    assert cache["unembed.hook_out"].shape == (2, 1, 300)
    _, some = model.run_with_cache(TOKENS, pos_slice=(1, 4), return_cache_object=False)
    assert torch.equal(some["blocks.1.attn.hook_q"], full["blocks.1.attn.hook_q"][:, 1:4])
    _, picked = model.run_with_cache(TOKENS, pos_slice=[0, 5], return_cache_object=False)
    assert torch.equal(picked["blocks.1.ln2.hook_scale"], full["blocks.1.ln2.hook_scale"][:, [0, 5]])


def test_unembed_hooks_are_cached_and_hookable(model):
    logits, cache = model.run_with_cache(TOKENS)
    keys = list(cache.keys())
    assert keys[-4:] == ["ln_final.hook_scale", "ln_final.hook_normalized", "unembed.hook_in", "unembed.hook_out"]
    assert torch.equal(cache["unembed.hook_out"], logits)
    W_U, b_U = model.unembed.W_U, model.unembed.b_U
    assert torch.allclose(cache["unembed.hook_in"] @ W_U + b_U, logits, atol=1e-5)
    doubled = model.run_with_hooks(TOKENS, fwd_hooks=[("unembed.hook_out", lambda x, hook: 2 * x)])
    assert torch.allclose(doubled, 2 * logits, atol=1e-5)


def test_hook_returning_wrong_shape_names_hook_and_shapes(model):
    def first_pos(x, hook):
        return x[:, :1]

    with pytest.raises(ShapeMismatchError, match=r"'first_pos' on 'blocks.0.hook_resid_pre'.*\(2, 1, 32\).*\(2, 6, 32\)"):
        model.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.hook_resid_pre", first_pos)])
    assert n_hooks(model) == 0
    # returning None or a same-shaped tensor is fine
    model.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x.clone())])


def test_cache_device_alias_and_offload(model):
    seen = []

    class Spy(torch.Tensor):
        pass

    _, a = model.run_with_cache(TOKENS, cache_device="cpu", return_cache_object=False)
    _, b = model.run_with_cache(TOKENS, device=torch.device("cpu"), return_cache_object=False)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InvalidOptionError, match="cache_device"):
        model.run_with_cache(TOKENS, device="cpu", cache_device="meta")
    # Each activation is moved as it is cached, during the forward: a later hook already sees
    # the earlier activation on the cache device.
    from lenswidget.hooks import ActivationRecorder

    store: dict = {}
    rec = ActivationRecorder(store, device="meta")
    with model.hooks(fwd_hooks=[("hook_embed", rec), ("blocks.0.hook_resid_pre", lambda x, hook: seen.append(store["hook_embed"].device))]):
        model(TOKENS)
    assert seen == [torch.device("meta")]
    assert n_hooks(model) == 0


def test_cache_all_and_cache_some(model):
    store = {}
    model.cache_some(store, lambda n: n.endswith("hook_resid_pre"))
    model(TOKENS)
    assert sorted(store) == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    model.reset_hooks()
    everything = {}
    model.cache_all(everything)
    model(TOKENS)
    model.reset_hooks()
    assert len(everything) > len(store)
    assert n_hooks(model) == 0


# ---------------------------------------------------------------------------- minimal root module
class Doubler(HookedRootModule):
    def __init__(self):
        super().__init__()
        self.hook_in = HookPoint()
        self.hook_out = HookPoint()
        self.setup()

    def forward(self, x):
        return self.hook_out(self.hook_in(x) * 2)


def test_custom_root_module():
    m = Doubler()
    assert sorted(m.hook_dict) == ["hook_in", "hook_out"]
    out = m.run_with_hooks(torch.ones(3), fwd_hooks=[("hook_in", lambda x, hook: x + 1)])
    assert torch.equal(out, torch.full((3,), 4.0))
    out, cache = m.run_with_cache(torch.ones(3))
    assert torch.equal(cache["hook_out"], out)
    m.remove_hook("hook_in")


def test_keep_freed_memory_lets_the_next_cache_reuse_pages(tmp_path):
    """Page faults of a second run_with_cache, in a fresh process, with and without the malloc
    tuning: with it, the freed first cache is reused (far fewer minor faults)."""
    import os
    import subprocess
    import sys

    code = """
import resource, torch
from tests.models import tiny_model
torch.set_num_threads(1)
m = tiny_model("gpt2", d_model=256, d_head=64, n_heads=4, d_mlp=1024, n_ctx=256, n_layers=4)
tokens = torch.randint(0, 300, (4, 256))
with torch.inference_mode():
    m.run_with_cache(tokens)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    m.run_with_cache(tokens)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {}
    for flag in ("0", "1"):
        env = {**os.environ, "LENSWIDGET_MALLOC_TUNING": flag, "PYTHONPATH": os.getcwd()}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        faults[flag] = int(out.stdout.split()[-1])
    from lenswidget.allocator import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc: there is no allocator tuning to test")
    assert faults["1"] * 4 < faults["0"], faults

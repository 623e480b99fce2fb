"""ActivationCache on random tiny models: indexing, and every decomposition sums to its residual."""

import pytest
import torch

from lenswidget.cache import ActivationCache
from lenswidget.errors import (
    ConfigError,
    InvalidOptionError,
    OutOfRangeError,
    ShapeMismatchError,
    TokenizationError,
    UnknownNameError,
)
from tests.models import tiny_model

TOL = dict(atol=2e-5, rtol=1e-5)
FAMILIES = ("gpt2", "llama", "neox")  # LN+learned pos / RMS+rotary+GQA+gated / parallel attn+MLP


def randomize_small_params_(model, seed=1):
    """Random biases and norm weights (init leaves them 0 / 1), so bias terms really matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def build(family, processed=False, **kw):
    model = randomize_small_params_(tiny_model(family, n_layers=3, **kw))
    if processed:
        model.process_weights_()
    return model


@pytest.fixture(scope="module", params=FAMILIES)
def run(request):
    model = build(request.param)
    tokens = torch.randint(3, 300, (2, 6), generator=torch.Generator().manual_seed(0))
    logits, cache = model.run_with_cache(tokens)
    return model, tokens, logits, cache


def independent_final_norm(model, x):
    """The final norm written out from its definition (not lenswidget's module)."""
    ln = model.ln_final
    eps = model.cfg.eps
    if model.cfg.normalization_type in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    if hasattr(ln, "w"):
        x = x * ln.w
    if hasattr(ln, "b"):
        x = x + ln.b
    return x


def close(a, b, **kw):
    torch.testing.assert_close(a, b, **{**TOL, **kw})


def resid_into(cache, layer, mlp_input=False):
    n = cache.model.cfg.n_layers
    if layer == n:
        return cache["resid_post", -1]
    if mlp_input:
        return cache["resid_pre" if cache.model.cfg.parallel_attn_mlp else "resid_mid", layer]
    return cache["resid_pre", layer]


# ------------------------------------------------------------------ indexing


def test_indexing_aliases_and_negative_layers(run):
    model, tokens, _, cache = run
    n = model.cfg.n_layers
    assert cache["resid_post", -1] is cache[f"blocks.{n - 1}.hook_resid_post"]
    assert cache["resid_pre", 1] is cache["blocks.1.hook_resid_pre"]
    assert cache["pattern", 2] is cache["blocks.2.attn.hook_pattern"]
    assert cache["attn", 2] is cache["pattern", 2]
    assert cache["z", 1, "attn"] is cache["blocks.1.attn.hook_z"]
    assert cache["scale", 0, "ln1"] is cache["blocks.0.ln1.hook_scale"]
    assert cache["scale"] is cache["ln_final.hook_scale"]
    assert cache["embed"] is cache["hook_embed"]
    assert cache["pattern", 0].shape == (2, model.cfg.n_heads, 6, 6)
    assert cache["z", 0].shape == (2, 6, model.cfg.n_heads, model.cfg.d_head)
    assert cache["scale", 0, "ln1"].shape == (2, 6, 1)


def test_dict_interface(run):
    _, _, _, cache = run
    keys = list(cache.keys())
    assert keys[0] == "hook_embed" and "blocks.0.hook_resid_pre" in keys[:3]
    assert list(cache) == keys and len(cache) == len(keys)
    assert "blocks.0.hook_resid_pre" in cache and "nope" not in cache
    assert [k for k, _ in cache.items()] == keys
    assert all(v is cache[k] for k, v in zip(keys, cache.values()))
    assert repr(cache).startswith("ActivationCache with keys ['hook_embed'")


def test_unknown_key_lists_nearest_and_is_a_keyerror(run):
    _, _, _, cache = run
    with pytest.raises(UnknownNameError) as e:
        cache["blocks.0.hook_resid_pree"]
    assert "blocks.0.hook_resid_pre" in str(e.value)
    assert isinstance(e.value, KeyError)
    with pytest.raises(UnknownNameError) as e:
        cache["resid_pro", 1]
    assert "'blocks.1.hook_resid_pre'" in str(e.value) or "'blocks.1.hook_resid_post'" in str(e.value)


def test_layer_out_of_range(run):
    model, _, _, cache = run
    n = model.cfg.n_layers
    for bad in (n, -n - 1, 99):
        with pytest.raises(OutOfRangeError, match=f"valid: {-n}..{n - 1}"):
            cache["resid_pre", bad]
    with pytest.raises(OutOfRangeError):
        cache.decompose_resid(layer=n + 1)
    with pytest.raises(OutOfRangeError):
        cache.accumulated_resid(layer=-2)
    with pytest.raises(OutOfRangeError):
        cache.stack_head_results(layer=n + 1)
    with pytest.raises(OutOfRangeError):
        cache.get_neuron_results(n)
    with pytest.raises(OutOfRangeError):  # mlp_input of the unembed
        cache.decompose_resid(layer=None, mlp_input=True)


# ------------------------------------------------------------------ residual stacks


def test_decompose_resid_sums_to_resid_at_every_layer(run):
    model, _, _, cache = run
    n = model.cfg.n_layers
    for layer in range(n + 1):
        stack, labels = cache.decompose_resid(layer=layer, return_labels=True)
        close(stack.sum(0), resid_into(cache, layer))
        assert len(labels) == stack.shape[0]
        if layer < n:
            close(cache.decompose_resid(layer=layer, mlp_input=True).sum(0), resid_into(cache, layer, True))
    stack, labels = cache.decompose_resid(return_labels=True)
    close(stack.sum(0), cache["resid_post", -1])
    assert cache.decompose_resid(layer=-1).shape == stack.shape


def test_decompose_resid_labels_and_modes(run):
    model, _, _, cache = run
    n = model.cfg.n_layers
    embeds = ["embed", "pos_embed"] if model.cfg.positional_embedding_type == "standard" else ["embed"]
    _, labels = cache.decompose_resid(return_labels=True)
    assert labels == embeds + [f"{l}_{k}_out" for l in range(n) for k in ("attn", "mlp")]
    attn, la = cache.decompose_resid(mode="attn", incl_embeds=False, return_labels=True)
    mlp, lm = cache.decompose_resid(mode="mlp", incl_embeds=False, return_labels=True)
    assert la == [f"{l}_attn_out" for l in range(n)] and lm == [f"{l}_mlp_out" for l in range(n)]
    emb = cache.decompose_resid(layer=0)
    close(attn.sum(0) + mlp.sum(0) + emb.sum(0), cache["resid_post", -1])
    _, l1 = cache.decompose_resid(layer=1, mlp_input=True, return_labels=True)
    if model.cfg.parallel_attn_mlp:
        assert l1[-1] == "0_mlp_out"
    else:
        assert l1[-1] == "1_attn_out"
    with pytest.raises(InvalidOptionError, match="'all', 'mlp', 'attn'"):
        cache.decompose_resid(mode="heads")
    empty = cache.decompose_resid(layer=0, incl_embeds=False)
    assert empty.shape == (0, 2, 6, model.cfg.d_model)


def test_accumulated_resid(run):
    model, _, _, cache = run
    n = model.cfg.n_layers
    acc, labels = cache.accumulated_resid(return_labels=True)
    assert labels == [f"{l}_pre" for l in range(n)] + ["final_post"]
    close(acc[-1], cache["resid_post", -1])
    for l in range(n):
        close(acc[l], cache["resid_pre", l])
    acc_mid, lm = cache.accumulated_resid(incl_mid=True, return_labels=True)
    if model.cfg.parallel_attn_mlp:
        assert lm == labels
    else:
        assert lm[:3] == ["0_pre", "0_mid", "1_pre"] and len(lm) == 2 * n + 1
        close(acc_mid[1], cache["resid_mid", 0])
    part, lp = cache.accumulated_resid(layer=2, return_labels=True)
    assert lp == ["0_pre", "1_pre", "2_pre"]
    if not model.cfg.parallel_attn_mlp:
        _, lmi = cache.accumulated_resid(layer=1, mlp_input=True, return_labels=True)
        assert lmi == ["0_pre", "1_pre", "1_mid"]
    last = cache.accumulated_resid(pos_slice=-1)
    assert last.shape == (n + 1, 2, model.cfg.d_model)
    close(last, acc[:, :, -1])


def test_apply_ln_reproduces_each_norms_normalized_output(run):
    model, _, _, cache = run
    n = model.cfg.n_layers
    # the logit lens: each residual through model.ln_final with its own statistics (TL 3.9),
    # so the last row is exactly what the unembed read, and logits follow from W_U, b_U
    acc = cache.accumulated_resid(apply_ln=True)
    close(acc[-1], cache["unembed.hook_in"])
    W_U, b_U = model.W_U, model.b_U
    close(acc[-1] @ W_U + b_U, cache["unembed.hook_out"], atol=1e-4)
    for l in range(n):
        close(acc[l], independent_final_norm(model, cache["resid_pre", l]))
    for l in range(n):
        x = cache["resid_pre", l][None]
        close(cache.apply_ln_to_stack(x, layer=l)[0], cache["normalized", l, "ln1"])
        mid = resid_into(cache, l, mlp_input=True)[None]
        close(cache.apply_ln_to_stack(mid, layer=l, mlp_input=True)[0], cache["normalized", l, "ln2"])
    # linearity: the scaled pieces of a decomposition add up to the normalized residual
    close(cache.decompose_resid(apply_ln=True).sum(0), cache["ln_final.hook_normalized"], atol=1e-4)
    # seed 004 usage: a [batch, d_model] stack (no component dim), pos_slice=-1
    final = cache["resid_post", -1][:, -1, :]
    close(cache.apply_ln_to_stack(final, layer=-1, pos_slice=-1), cache["ln_final.hook_normalized"][:, -1])
    # batch_slice slices both the stack's batch dim (dim 1) and the cached scale
    one = cache.apply_ln_to_stack(cache["resid_post", -1][None], batch_slice=(1, 2))
    close(one[0], cache["ln_final.hook_normalized"][1:])
    # a stack that is the input doubled normalises to double (the cached scale is fixed)
    close(cache.apply_ln_to_stack(2 * final[None], pos_slice=-1)[0], 2 * cache["ln_final.hook_normalized"][:, -1])


def test_apply_ln_is_identity_without_norm():
    model = tiny_model("gpt2", normalization_type=None)
    _, cache = model.run_with_cache(torch.tensor([[5, 6, 7]]))
    x = torch.randn(2, 1, 3, model.cfg.d_model)
    assert cache.apply_ln_to_stack(x) is x


# ------------------------------------------------------------------ heads and neurons


def test_head_results_sum_to_attn_out_and_residual(run):
    model, _, _, cache = run
    n, H = model.cfg.n_layers, model.cfg.n_heads
    heads, labels = cache.stack_head_results(return_labels=True)
    assert heads.shape == (n * H, 2, 6, model.cfg.d_model)
    assert labels[:H + 1] == [f"L0H{h}" for h in range(H)] + ["L1H0"] and labels[-1] == f"L{n - 1}H{H - 1}"
    for l in range(n):
        close(heads[l * H:(l + 1) * H].sum(0) + model.blocks[l].attn.b_O, cache["attn_out", l])
    for layer in range(n + 1):
        full, fl = cache.stack_head_results(layer=layer, incl_remainder=True, return_labels=True)
        assert fl[-1] == "remainder" and full.shape[0] == layer * H + 1
        close(full.sum(0), resid_into(cache, layer))
    assert cache.stack_head_results(layer=0).shape == (0, 2, 6, model.cfg.d_model)


def test_head_results_pos_slice_and_cached_results(run):
    model, _, _, cache = run
    heads = cache.stack_head_results()
    close(cache.stack_head_results(pos_slice=-1), heads[:, :, -1])
    close(cache.stack_head_results(pos_slice=(1, 4)), heads[:, :, 1:4])
    close(cache.stack_head_results(pos_slice=[0, 5]), heads[:, :, [0, 5]])
    scaled = cache.stack_head_results(pos_slice=-1, apply_ln=True)
    close(scaled, cache.apply_ln_to_stack(heads[:, :, -1], pos_slice=-1))
    # compute_head_results stores hook_result; the stack then reads it and agrees
    copy = ActivationCache(dict(cache.cache_dict), model)
    copy.compute_head_results()
    assert copy["result", 0].shape == (2, 6, model.cfg.n_heads, model.cfg.d_model)
    close(copy.stack_head_results(), heads)


def test_head_results_need_z(run):
    model, tokens, _, _ = run
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: "resid" in name or "scale" in name)
    with pytest.raises(UnknownNameError) as e:
        cache.stack_head_results()
    assert "blocks.0.attn.hook_z" in str(e.value) and "names_filter" in str(e.value)
    with pytest.raises(UnknownNameError, match="hook_z"):
        cache.get_full_resid_decomposition()
    with pytest.raises(UnknownNameError, match="ln_final.hook_scale|hook_scale"):
        ActivationCache({"blocks.0.hook_resid_pre": torch.zeros(1, 2, 32)}, model).apply_ln_to_stack(torch.zeros(1, 1, 2, 32))


def test_neuron_results(run):
    model, _, _, cache = run
    n, d_mlp = model.cfg.n_layers, model.cfg.d_mlp
    r = cache.get_neuron_results(1)
    assert r.shape == (2, 6, d_mlp, model.cfg.d_model)
    close(r.sum(-2) + model.blocks[1].mlp.b_out, cache["mlp_out", 1])
    close(cache.get_neuron_results(-1, neuron_slice=[3, 7], pos_slice=-1), cache.get_neuron_results(n - 1)[:, -1, [3, 7]])
    assert cache.get_neuron_results(0, neuron_slice=5).shape == (2, 6, model.cfg.d_model)
    stack, labels = cache.stack_neuron_results(2, return_labels=True)
    assert stack.shape == (2 * d_mlp, 2, 6, model.cfg.d_model)
    assert labels[0] == "L0N0" and labels[d_mlp] == "L1N0" and labels[-1] == f"L1N{d_mlp - 1}"
    close(stack[d_mlp:].sum(0), r.sum(-2).movedim(-1, -1))
    sub, sl = cache.stack_neuron_results(3, neuron_slice=(0, 10, 3), pos_slice=-1, return_labels=True, incl_remainder=True)
    assert sl == [f"L{l}N{i}" for l in range(3) for i in (0, 3, 6, 9)] + ["remainder"]
    close(sub.sum(0), resid_into(cache, 3)[:, -1])
    one, ol = cache.stack_neuron_results(1, neuron_slice=4, return_labels=True)
    assert ol == ["L0N4"] and one.shape == (1, 2, 6, model.cfg.d_model)
    close(one[0], cache.get_neuron_results(0, neuron_slice=4))


def test_stack_activation(run):
    model, _, _, cache = run
    n = model.cfg.n_layers
    pat = cache.stack_activation("pattern")
    assert pat.shape == (n, 2, model.cfg.n_heads, 6, 6)
    assert torch.equal(pat[1], cache["pattern", 1])
    assert cache.stack_activation("resid_pre", layer=2).shape == (2, 2, 6, model.cfg.d_model)
    assert cache.stack_activation("scale", 3, "ln1").shape == (3, 2, 6, 1)


# ------------------------------------------------------------------ full decomposition


@pytest.mark.parametrize("expand_neurons", [True, False])
def test_full_resid_decomposition_sums_with_bias(run, expand_neurons):
    model, _, _, cache = run
    cfg = model.cfg
    n, H = cfg.n_layers, cfg.n_heads
    for layer in range(n + 1):
        for mlp_input in ([False, True] if layer < n else [False]):
            stack, labels = cache.get_full_resid_decomposition(
                layer, mlp_input=mlp_input, expand_neurons=expand_neurons, return_labels=True
            )
            assert len(labels) == stack.shape[0] and labels[-1] == "bias"
            close(stack.sum(0), resid_into(cache, layer, mlp_input), atol=5e-5)
    stack, labels = cache.get_full_resid_decomposition(expand_neurons=expand_neurons, return_labels=True)
    n_mlp = n * cfg.d_mlp if expand_neurons else n
    n_emb = 2 if cfg.positional_embedding_type == "standard" else 1
    assert stack.shape == (n * H + n_mlp + n_emb + 1, 2, 6, cfg.d_model)
    assert labels[:2] == ["L0H0", "L0H1"] and labels[n * H] == ("L0N0" if expand_neurons else "0_mlp_out")
    assert labels[-1 - n_emb] == "embed"
    bias = stack[-1]
    close(bias, model.accumulated_bias(n, include_mlp_biases=expand_neurons).expand_as(bias))
    # pos_slice and apply_ln agree with slicing and scaling afterwards
    sliced = cache.get_full_resid_decomposition(expand_neurons=expand_neurons, pos_slice=-1, apply_ln=True)
    close(sliced, cache.apply_ln_to_stack(stack[:, :, -1], pos_slice=-1), atol=1e-4)


def test_full_decomposition_refuses_post_norm_models():
    model = tiny_model("gemma2")
    _, cache = model.run_with_cache(torch.tensor([[5, 6, 7]]))
    with pytest.raises(ConfigError, match="decompose_resid"):
        cache.get_full_resid_decomposition()
    close(cache.decompose_resid().sum(0), cache["resid_post", -1])


# ------------------------------------------------------------------ logit attribution


@pytest.mark.parametrize("family", FAMILIES)
def test_logit_attrs_reconstruct_logit_minus_b_U_on_processed_model(family):
    model = build(family, processed=True)
    tokens = torch.randint(3, 300, (3, 5), generator=torch.Generator().manual_seed(2))
    logits, cache = model.run_with_cache(tokens)
    answer = torch.tensor([7, 42, 250])
    wrong = torch.tensor([9, 8, 100])
    target = logits[torch.arange(3), -1, answer] - model.b_U[answer]
    # b_U is a per-token constant no component writes, so it is left out of the difference too
    diff = target - (logits[torch.arange(3), -1, wrong] - model.b_U[wrong])
    assert model.b_U.abs().max() > 1e-3  # the identity is not trivially bias-free
    stacks = [
        cache.decompose_resid(pos_slice=-1),
        cache.stack_head_results(pos_slice=-1, incl_remainder=True),
        cache.get_full_resid_decomposition(pos_slice=-1),
        cache.get_full_resid_decomposition(pos_slice=-1, expand_neurons=False),
        cache.accumulated_resid(pos_slice=-1)[-1:],
    ]
    for stack in stacks:
        attrs = cache.logit_attrs(stack, answer, pos_slice=-1)
        assert attrs.shape == (stack.shape[0], 3)
        close(attrs.sum(0), target, atol=1e-3, rtol=1e-4)
        close(cache.logit_attrs(stack, answer, incorrect_tokens=wrong, pos_slice=-1).sum(0), diff, atol=1e-3, rtol=1e-4)
    # a scaled stack dotted with W_U directly gives the same numbers
    full = cache.get_full_resid_decomposition(pos_slice=-1, apply_ln=True)
    direct = (full * model.tokens_to_residual_directions(answer)).sum(-1)
    close(direct.sum(0), target, atol=1e-3, rtol=1e-4)
    # every position at once: tokens shaped [batch, pos]
    per_pos = cache.logit_attrs(cache.decompose_resid(), tokens)
    ref = logits.gather(-1, tokens[..., None])[..., 0] - model.b_U[tokens]
    close(per_pos.sum(0), ref, atol=1e-3, rtol=1e-4)
    # an int token broadcasts over batch and pos
    close(cache.logit_attrs(cache.decompose_resid(), 11).sum(0), logits[..., 11] - model.b_U[11], atol=1e-3, rtol=1e-4)


def test_logit_attrs_unprocessed_equals_normalized_dot_W_U():
    # without fold_ln the identity holds for the normalised (pre-weight) final residual
    model = build("gpt2")
    logits, cache = model.run_with_cache(torch.tensor([[4, 5, 6, 7]]))
    attrs = cache.logit_attrs(cache.decompose_resid(), 33)
    close(attrs.sum(0), cache["ln_final.hook_normalized"] @ model.W_U[:, 33], atol=1e-4)


def test_logit_attrs_strings_and_errors():
    model = tiny_model("gpt2", tokenizer=True)
    logits, cache = model.run_with_cache("The capital of France is")
    the = model.to_single_token(" the")
    stack, labels = cache.decompose_resid(return_labels=True, mode="attn")
    attrs = cache.logit_attrs(stack, " the")
    assert attrs.shape == (len(labels), 1, cache["resid_pre", 0].shape[1])
    close(attrs, cache.logit_attrs(stack, the))
    close(cache.logit_attrs(stack, " the", " is"), attrs - cache.logit_attrs(stack, " is"))
    with pytest.raises(TokenizationError, match="not one"):
        cache.logit_attrs(stack, " Paris")
    with pytest.raises(TokenizationError):
        cache.logit_attrs(stack, " the", incorrect_tokens=" France")
    with pytest.raises(ShapeMismatchError):
        cache.logit_attrs(stack, torch.tensor([1, 2]), torch.tensor([1, 2, 3]))
    with pytest.raises(ShapeMismatchError):
        cache.logit_attrs(stack, torch.tensor([1, 2, 3]), pos_slice=-1)


def test_pos_slice_beyond_sequence(run):
    model, _, _, cache = run
    for call in (
        lambda: cache.decompose_resid(pos_slice=6),
        lambda: cache.accumulated_resid(pos_slice=-7),
        lambda: cache.stack_head_results(pos_slice=[0, 9]),
        lambda: cache.get_full_resid_decomposition(pos_slice=(10, 12)),
        lambda: cache.stack_neuron_results(1, pos_slice=6),
        lambda: cache.apply_ln_to_stack(torch.zeros(1, 2, 32), pos_slice=6),
    ):
        with pytest.raises(OutOfRangeError, match="pos_slice"):
            call()


# ------------------------------------------------------------------ batch dims & moving


def test_without_batch_dim(run):
    model, tokens, _, _ = run
    logits, cache = model.run_with_cache(tokens[:1])
    cache.remove_batch_dim()
    assert not cache.has_batch_dim
    d = model.cfg.d_model
    assert cache["resid_pre", 0].shape == (6, d) and cache["pattern", 0].shape == (model.cfg.n_heads, 6, 6)
    for layer in (0, 2, None):
        ref = resid_into(cache, model.cfg.n_layers if layer is None else layer)
        close(cache.decompose_resid(layer).sum(0), ref)
        close(cache.stack_head_results(layer if layer is not None else -1, incl_remainder=True).sum(0), ref)
        close(cache.get_full_resid_decomposition(layer).sum(0), ref, atol=5e-5)
    acc = cache.accumulated_resid(apply_ln=True, pos_slice=-1)
    assert acc.shape == (model.cfg.n_layers + 1, d)
    close(acc[-1], cache["unembed.hook_in"][-1])
    assert cache.stack_head_results(pos_slice=-1).shape == (model.cfg.n_layers * model.cfg.n_heads, d)
    assert cache.logit_attrs(cache.decompose_resid(pos_slice=-1), 5, pos_slice=-1).shape[1:] == ()
    assert cache.remove_batch_dim() is cache  # a second call is a no-op


def test_remove_batch_dim_needs_batch_one(run):
    _, _, _, cache = run
    copy = ActivationCache(dict(cache.cache_dict), cache.model)
    with pytest.raises(ShapeMismatchError, match="apply_slice_to_batch_dim"):
        copy.remove_batch_dim()


def test_apply_slice_to_batch_dim(run):
    model, _, _, cache = run
    one = cache.apply_slice_to_batch_dim(1)
    assert not one.has_batch_dim and one["resid_pre", 0].shape == (6, model.cfg.d_model)
    assert torch.equal(one["resid_pre", 0], cache["resid_pre", 0][1])
    keep = cache.apply_slice_to_batch_dim([1])
    assert keep.has_batch_dim and keep["resid_pre", 0].shape == (1, 6, model.cfg.d_model)
    close(keep.decompose_resid().sum(0), cache["resid_post", -1][[1]])
    with pytest.raises(OutOfRangeError, match="batch_slice"):
        cache.apply_slice_to_batch_dim(5)
    with pytest.raises(InvalidOptionError):
        one.apply_slice_to_batch_dim(0)


def test_to_and_toggle_autodiff(run):
    _, _, _, cache = run
    copy = ActivationCache(dict(cache.cache_dict), cache.model)
    assert copy.to("cpu") is copy and copy["resid_pre", 0].device.type == "cpu"
    before = torch.is_grad_enabled()
    try:
        copy.toggle_autodiff(False)
        assert not torch.is_grad_enabled()
        copy.toggle_autodiff(True)
        assert torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(before)


# ------------------------------------------------------------------ TL 3.9 arguments


def test_project_output_onto_equals_projecting_the_stack(run):
    model, _, _, cache = run
    d = model.cfg.d_model
    g = torch.Generator().manual_seed(3)
    P2, P1 = torch.randn(d, 3, generator=g), torch.randn(d, generator=g)
    for kw in (dict(), dict(apply_ln=True), dict(pos_slice=-1, expand_neurons=False), dict(layer=2, mlp_input=True, apply_ln=True)):
        full = cache.get_full_resid_decomposition(**kw)
        close(cache.get_full_resid_decomposition(project_output_onto=P2, **kw), full @ P2, atol=1e-4, rtol=1e-4)
        stack, labels = cache.get_full_resid_decomposition(project_output_onto=P1, return_labels=True, **kw)
        close(stack, full @ P1, atol=1e-4, rtol=1e-4)
        assert len(labels) == stack.shape[0]
    for kw in (dict(), dict(apply_ln=True, incl_remainder=True), dict(neuron_slice=(0, 10, 3), pos_slice=-1, apply_ln=True)):
        full = cache.stack_neuron_results(2, **kw)
        close(cache.stack_neuron_results(2, project_output_onto=P2, **kw), full @ P2, atol=1e-4, rtol=1e-4)
        close(cache.stack_neuron_results(2, project_output_onto=P1, **kw), full @ P1, atol=1e-4, rtol=1e-4)
    close(cache.get_neuron_results(1, project_output_onto=P2), cache.get_neuron_results(1) @ P2, atol=1e-5, rtol=1e-5)
    close(cache.get_neuron_results(1, neuron_slice=4, project_output_onto=P1), cache.get_neuron_results(1, neuron_slice=4) @ P1)
    with pytest.raises(ShapeMismatchError, match="project_output_onto"):
        cache.get_full_resid_decomposition(project_output_onto=torch.zeros(d + 1))


def test_recompute_ln_applies_ln_final_to_each_component(run):
    model, _, _, cache = run
    stack = cache.accumulated_resid()
    re = cache.apply_ln_to_stack(stack, recompute_ln=True)
    for i in range(stack.shape[0]):
        close(re[i], independent_final_norm(model, stack[i]))
    # only the final layer recomputes; elsewhere the cached scale is used, as without it
    mid = cache.accumulated_resid(layer=2)
    close(cache.apply_ln_to_stack(mid, layer=2, recompute_ln=True), cache.apply_ln_to_stack(mid, layer=2))
    # batch_slice applies to the stack first
    close(cache.apply_ln_to_stack(stack, recompute_ln=True, batch_slice=1), re[:, 1])

"""bfloat16 end to end on CPU (the dtype paths a GPU run takes), against HF and a float32 reference.

* Per family, lenswidget's bf16 error against the float32 reference (HF in float32 on the same
  bf16-exact checkpoint) is at most 1.5x HF's own bf16 error (mean |log-prob error|; processed
  weights centre the logits, so log-probs are what both must agree on), processed and not.
* Hooks that only watch (caching, a pre-hook, a pattern hook) leave bf16 logits bit-identical;
  a hook that replaces the pattern changes them by no more than bf16's own noise.
* forward, run_with_cache, generate, every patching sweep (fast engine = hooked path) and every
  widget run on a bf16 model; SDPA without ``enable_gqa`` (torch < 2.5) gives the same result.
"""

from __future__ import annotations

import functools

import pytest
import torch

from conftest import TINY_FAMILIES, make_tiny_hf, weights_to

BF16 = torch.bfloat16
TOKENS = torch.randint(0, 211, (2, 32), generator=torch.Generator().manual_seed(11))


def _hf_sdpa(hf16):
    """HF's model with its default (SDPA) attention where the architecture allows it."""
    try:
        hf16.set_attn_implementation("sdpa")
    except (ValueError, ImportError):  # e.g. soft-capped Gemma 2: eager only
        hf16.set_attn_implementation("eager")
    return hf16


@functools.lru_cache(maxsize=1)
def _checkpoint(name: str):
    """(float32 reference log-probs, HF bf16 log-probs, HF bf16 model) on a bf16-exact checkpoint."""
    hf = weights_to(weights_to(make_tiny_hf(name), BF16), torch.float32)  # weights exactly representable in bf16
    with torch.no_grad():
        ref = hf(TOKENS).logits.double().log_softmax(-1)
        hf16 = _hf_sdpa(weights_to(hf, BF16))
        out16 = hf16(TOKENS).logits.double().log_softmax(-1)
    return ref, out16, hf16


def _lw(hf16, processed: bool):
    from lenswidget import HookedTransformer

    flags = dict(fold_ln=processed, center_writing_weights=processed, center_unembed=processed,
                 fold_value_biases=processed)
    return HookedTransformer.from_pretrained("tiny", hf_model=hf16, dtype=BF16, device="cpu", **flags)


def bf16_errors(name: str) -> dict:
    """Mean |log-prob - float32 reference| for HF bf16 and lenswidget bf16 (raw and processed)."""
    ref, out16, hf16 = _checkpoint(name)
    errs = {"hf": (out16 - ref).abs().mean().item()}
    for processed in (False, True):
        model = _lw(hf16, processed)
        assert model.W_E.dtype == BF16
        with torch.no_grad():
            ours = model(TOKENS).double().log_softmax(-1)
        errs["processed" if processed else "raw"] = (ours - ref).abs().mean().item()
    return errs


@pytest.mark.parametrize("name", TINY_FAMILIES)
def test_bf16_error_is_within_1_5x_hf(name):
    errs = bf16_errors(name)
    print(f"bf16 mean |log-prob error| {name}: {errs}")
    assert errs["hf"] > 0
    for kind in ("raw", "processed"):
        assert errs[kind] <= 1.5 * errs["hf"], (kind, errs)


@pytest.mark.parametrize("name", ["llama", "gemma2", "olmo2", "gemma3"])
def test_watching_hooks_leave_bf16_logits_unchanged(name):
    ref, out16, hf16 = _checkpoint(name)
    model = _lw(hf16, processed=False)
    with torch.no_grad():
        plain = model(TOKENS)
        cached, cache = model.run_with_cache(TOKENS)
        seen = []
        handle = model.blocks[0].attn.hook_pattern.register_forward_pre_hook(lambda mod, args: seen.append(1))
        try:
            pre_hooked = model(TOKENS)
        finally:
            handle.remove()
        replaced = model.run_with_hooks(TOKENS, fwd_hooks=[(lambda n: n.endswith("hook_pattern"),
                                                            lambda x, hook: x.clone())])
    assert cache["blocks.0.attn.hook_pattern"].dtype == BF16
    assert seen, "a forward pre-hook on hook_pattern must be seen (the explicit path runs)"
    assert torch.equal(cached, plain) and torch.equal(pre_hooked, plain)
    noise = (out16 - ref).abs().mean().item()  # HF's own bf16 error
    change = (replaced.double().log_softmax(-1) - plain.double().log_softmax(-1)).abs().mean().item()
    assert 0 < change <= 1.5 * noise  # an edit re-rounds: bf16 noise, as for the families


def test_sdpa_without_enable_gqa_gives_the_same_result(monkeypatch):
    from lenswidget.components import attention_kernel

    _, _, hf16 = _checkpoint("llama")
    model = _lw(hf16, processed=False)
    with torch.no_grad():
        with_gqa = model(TOKENS)
        monkeypatch.setattr(attention_kernel, "SDPA_HAS_GQA", False)  # torch < 2.5
        without = model(TOKENS)
    assert torch.equal(with_gqa, without) or (with_gqa.float() - without.float()).abs().max() <= 2 ** -6


@pytest.fixture(scope="module")
def tiny_bf16():
    from tests.models import tiny_model

    return tiny_model("llama", tokenizer=True, dtype=BF16)


def test_forward_cache_generate_in_bf16(tiny_bf16):
    model = tiny_bf16
    model.cfg.device = "cuda"  # cfg.device may disagree with the weights: text goes where the weights are
    try:
        logits = model("The cat sat on the mat")
        out = model.generate("The cat", max_new_tokens=4, do_sample=False, verbose=False, return_type="tokens")
    finally:
        model.cfg.device = "cpu"
    assert logits.dtype == BF16 and torch.isfinite(logits.float()).all()
    prompt = model.to_tokens("The cat")
    assert torch.equal(out[:, : prompt.shape[1]], prompt)
    assert int(out[0, prompt.shape[1]]) == int(model(prompt)[0, -1].argmax())
    _, cache = model.run_with_cache("The cat sat")
    assert all(v.dtype in (BF16, torch.float32) for v in cache.values())


def test_every_patching_sweep_in_bf16(tiny_bf16):
    from lenswidget import patching
    from tests.test_patching_reference import SWEEPS

    model = tiny_bf16
    clean = torch.randint(3, 300, (2, 7), generator=torch.Generator().manual_seed(2))
    corrupted = clean.clone()
    corrupted[:, 2:4] = 5
    _, cache = model.run_with_cache(clean)
    metric = patching.batched_metric(lambda lg: (lg[:, :, -1, 5] - lg[:, :, -1, 7]).float().mean(1), positions=[-1])
    for fn_name, *_ in SWEEPS:
        fn = getattr(patching, fn_name)
        fast = fn(model, corrupted, cache, metric, verbose=False, method="auto")
        hooks = fn(model, corrupted, cache, metric, verbose=False, method="hooks")
        assert torch.isfinite(fast).all(), fn_name
        scale = max(1.0, hooks.abs().max().item())
        assert (fast.float() - hooks.float()).abs().max() <= 0.05 * scale, fn_name
    every = patching.get_act_patch_block_every(model, corrupted, cache, metric, verbose=False)
    assert torch.isfinite(every).all()


def test_every_widget_on_a_bf16_model(tiny_bf16):
    from lenswidget import patching
    from lenswidget.widgets import attention, head_heatmap, patcher, residual

    model = tiny_bf16
    w = attention(model, "The cat sat on the mat")
    w.set_state({"layer": 1, "head": 2})
    assert w.error == ""
    answer = model.to_str_tokens("The cat sat on the mat")[-1]  # a single token of the tiny vocabulary
    r = residual(model, ["The cat sat on the", "The dog sat on the"], answer)
    assert r.error == ""
    p = patcher(model, "The cat sat on the mat. The dog", "The dog sat on the log. The cat")
    before = p.metric_value
    p.add_patch("resid_pre", layers=0, positions=None)
    assert p.metric_value != before and abs(p.metric_value - 1.0) < 0.1  # all of resid_pre[0]: the clean run
    p.run_sweep("resid_pre")
    assert p.sweep_result is not None and torch.isfinite(p.sweep_result.float()).all()
    _, cache = model.run_with_cache(model.to_tokens("The cat sat"))
    grid = patching.get_act_patch_attn_head_out_all_pos(model, model.to_tokens("The dog sat"), cache,
                                                       lambda lg: lg[:, -1, 5].mean(), verbose=False)
    h = head_heatmap(grid)
    assert h is not None


def test_gemma_one_plus_w_is_computed_in_float32():
    """A bf16 Gemma checkpoint loaded in float32: ``1 + w`` exactly, not rounded to bf16 first."""
    from lenswidget import HookedTransformer

    hf16 = make_tiny_hf("gemma3").to(BF16)
    model = HookedTransformer.from_pretrained_no_processing("tiny", hf_model=hf16, dtype=torch.float32, device="cpu")
    layer = hf16.model.layers[0]
    for ours, theirs in ((model.blocks[0].ln1_post.w, layer.post_attention_layernorm.weight),
                         (model.blocks[0].attn.q_norm.w, layer.self_attn.q_norm.weight)):
        exact = theirs.float() + 1.0
        assert torch.equal(ours, exact)
        assert not torch.equal(exact, (theirs + 1.0).float())  # bf16 arithmetic would have rounded


@pytest.mark.parametrize("name", ["llama", "gemma2", "qwen3"])
def test_float16_error_and_watching_hooks(name):
    from lenswidget import HookedTransformer

    hf = make_tiny_hf(name).to(torch.float16).to(torch.float32)
    with torch.no_grad():
        ref = hf(TOKENS).logits.double().log_softmax(-1)
        hf16 = _hf_sdpa(hf.to(torch.float16))
        hf_err = (hf16(TOKENS).logits.double().log_softmax(-1) - ref).abs().mean().item()
        model = HookedTransformer.from_pretrained("tiny", hf_model=hf16, dtype=torch.float16, device="cpu")
        plain = model(TOKENS)
        cached, _ = model.run_with_cache(TOKENS)
    assert torch.equal(plain, cached)
    assert (plain.double().log_softmax(-1) - ref).abs().mean().item() <= 1.5 * hf_err

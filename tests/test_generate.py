"""KV cache and generation: cached forwards equal full forwards; greedy decoding agrees
with and without the cache; the cache is preallocated and written in place."""

from __future__ import annotations

import pytest
import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, TokenizationError
from lenswidget.kv_cache import HookedTransformerKeyValueCache
from lenswidget.sampling import sample_logits
from tests.models import FAMILIES, tiny_model

TOKENS = torch.tensor([[5, 17, 42, 7, 99, 3, 120, 33, 8], [8, 1, 2, 250, 11, 9, 64, 70, 71]])


@pytest.fixture(scope="module")
def models():
    return {f: tiny_model(f, tokenizer=True) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("split", [1, 5, 8])
def test_split_forward_with_cache_equals_full(models, family, split):
    model = models[family]
    full = model(TOKENS)
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2, max_len=9)
    first = model(TOKENS[:, :split], past_kv_cache=cache)
    assert cache.length == split and cache[0].length == split
    second = model(TOKENS[:, split:], past_kv_cache=cache)
    assert torch.allclose(torch.cat([first, second], 1), full, atol=1e-5)


def test_token_by_token_with_hooks_equals_full(models):
    model = models["gemma2"]  # sliding window 4 + soft caps: windows must use cache offsets
    full = model(TOKENS)
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2, max_len=9)
    outs = [model.run_with_hooks(TOKENS[:, i : i + 1], past_kv_cache=cache, fwd_hooks=[(lambda n: n.endswith("pattern"), lambda x, hook: None)]) for i in range(9)]
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_left_padded_prompt_with_cache(models):
    model = models["llama"]
    texts = ["Hello world", "The cat sat on the mat."]
    full = model(texts, padding_side="left")
    toks, mask = model._tokenize(texts, padding_side="left")
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2)
    a = model(toks[:, :6], attention_mask=mask[:, :6], past_kv_cache=cache)
    b = model(toks[:, 6:], past_kv_cache=cache)
    assert cache.has_padding and cache.previous_attention_mask.shape == toks.shape
    real = mask.bool()
    assert torch.allclose(torch.cat([a, b], 1)[real], full[real], atol=1e-5)


def test_cache_is_preallocated_and_written_in_place(models):
    model = models["llama"]
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2, max_len=9)
    ptr = cache[1]._k.data_ptr()
    assert cache[1].capacity == 9 and cache[1]._k.shape == (2, 9, 2, 8)  # GQA: kv heads
    for i in range(9):
        model(TOKENS[:, i : i + 1], past_kv_cache=cache)
    assert cache[1]._k.data_ptr() == ptr and cache[1].length == 9
    assert cache[1].past_keys.shape == (2, 9, 2, 8)


def test_cache_grows_when_not_preallocated(models):
    model = models["gpt2"]
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2)
    for i in range(0, 9, 3):
        model(TOKENS[:, i : i + 3], past_kv_cache=cache)
    assert cache[0].length == 9 and cache[0].capacity >= 9


def test_frozen_cache_does_not_change(models):
    model = models["gpt2"]
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2, max_len=9)
    model(TOKENS[:, :5], past_kv_cache=cache)
    cache.freeze()
    a = model(TOKENS[:, 5:], past_kv_cache=cache)
    b = model(TOKENS[:, 5:], past_kv_cache=cache)
    assert cache.length == 5 and cache[0].length == 5 and torch.equal(a, b)
    assert torch.allclose(a, model(TOKENS)[:, 5:], atol=1e-5)
    cache.unfreeze()
    model(TOKENS[:, 5:], past_kv_cache=cache)
    assert cache[0].length == 9


def test_expanded_prefix_cache(models):
    model = models["llama"]
    prefix, rest = TOKENS[:1, :4], TOKENS[:, 4:]
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=1)
    model(prefix, past_kv_cache=cache)
    shared = cache.expand(2)
    shared.freeze()
    out = model(rest, past_kv_cache=shared)
    full = model(torch.cat([prefix.expand(2, -1), rest], 1))[:, 4:]
    assert torch.allclose(out, full, atol=1e-5)
    # an unfrozen expansion copies the prefix once and leaves the original untouched
    grow = cache.expand(2)
    model(rest, past_kv_cache=grow)
    assert grow[0].length == 9 and cache[0].length == 4
    with pytest.raises(ShapeMismatchError, match="expand"):
        model(rest, past_kv_cache=cache)


def test_start_at_layer_with_frozen_prefix_cache(models):
    model = models["llama"]
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=2)
    model(TOKENS[:, :5], past_kv_cache=cache)
    cache.freeze()
    resid = model(TOKENS[:, 5:], past_kv_cache=cache, stop_at_layer=1)
    out = model(resid, start_at_layer=1, past_kv_cache=cache)
    assert torch.allclose(out, model(TOKENS)[:, 5:], atol=1e-5)


def test_cache_respects_n_ctx(models):
    model = models["gpt2"]
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, "cpu", batch_size=1)
    model(torch.zeros(1, 30, dtype=torch.long), past_kv_cache=cache)
    with pytest.raises(OutOfRangeError, match="30 cached"):
        model(torch.zeros(1, 3, dtype=torch.long), past_kv_cache=cache)


# ---------------------------------------------------------------------------- generate
@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generate_with_and_without_cache_agree(models, family):
    model = models[family]
    kw = dict(max_new_tokens=10, do_sample=False, stop_at_eos=False, verbose=False)
    with_cache = model.generate(TOKENS, **kw)
    without = model.generate(TOKENS, use_past_kv_cache=False, **kw)
    assert with_cache.shape == (2, 19)
    assert torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :9], TOKENS)
    # the first new token is the argmax of a plain forward
    assert torch.equal(with_cache[:, 9], model(TOKENS)[:, -1].argmax(-1))


def test_greedy_left_padded_batch_matches_single_prompts(models):
    model = models["llama"]
    kw = dict(max_new_tokens=6, do_sample=False, stop_at_eos=False, verbose=False, return_type="tokens")
    batch = model.generate(["Hello world", "The cat sat on the mat."], padding_side="left", **kw)
    for i, text in enumerate(["Hello world", "The cat sat on the mat."]):
        alone = model.generate(text, **kw)
        assert torch.equal(batch[i, -6:], alone[0, -6:])
    no_cache = model.generate(["Hello world", "The cat sat on the mat."], padding_side="left", use_past_kv_cache=False, **kw)
    assert torch.equal(batch, no_cache)


def test_generate_returns_text_for_text(models):
    model = models["gpt2"]
    out = model.generate("Hello world", max_new_tokens=4, do_sample=False, stop_at_eos=False, verbose=False)
    assert isinstance(out, str) and out.startswith("Hello world") and "<|bos|>" not in out
    toks = model.generate("Hello world", max_new_tokens=4, do_sample=False, stop_at_eos=False, verbose=False, return_type="tokens")
    assert out == model.to_string(toks[0, 1:])
    outs = model.generate(["Hi", "Hello world"], max_new_tokens=2, verbose=False, stop_at_eos=False)
    assert isinstance(outs, list) and len(outs) == 2 and outs[0].startswith("Hi")
    with pytest.raises(InvalidOptionError, match="'tokens'"):
        model.generate("Hi", return_type="embeds", verbose=False)


def test_stop_at_eos_pads_finished_rows(models):
    model = models["gpt2"]
    kw = dict(max_new_tokens=5, do_sample=False, verbose=False)
    free = model.generate(TOKENS, stop_at_eos=False, **kw)
    eos = int(free[0, 9])  # pretend row 0's first greedy token is EOS
    out = model.generate(TOKENS, eos_token_id=eos, **kw)
    assert torch.all(out[0, 9:] == eos)
    assert torch.equal(out[1, 9:], free[1, 9 : out.shape[1]]) or torch.any(out[1, 9:] == eos)
    single = model.generate(TOKENS[:1], eos_token_id=eos, **kw)
    assert single.shape == (1, 10)  # stopped right after EOS


def test_hooks_stay_active_during_generation(models):
    model = models["llama"]
    calls = []
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: calls.append(x.shape[1]))]):
        model.generate(TOKENS, max_new_tokens=3, do_sample=False, stop_at_eos=False, verbose=False)
    assert calls == [9, 1, 1]
    assert not model.hook_dict["blocks.0.hook_resid_pre"].has_hooks()


def test_generate_errors(models):
    model = models["gpt2"]
    with pytest.raises(OutOfRangeError, match="n_ctx=32"):
        model.generate(TOKENS, max_new_tokens=30, verbose=False)
    no_tok = tiny_model("gpt2")
    with pytest.raises(TokenizationError, match="eos_token_id"):
        no_tok.generate(TOKENS, max_new_tokens=2, verbose=False)
    assert no_tok.generate(TOKENS, max_new_tokens=2, verbose=False, stop_at_eos=False).shape == (2, 11)


def test_sampling_is_seeded_and_valid(models):
    model = models["gpt2"]
    torch.manual_seed(0)
    a = model.generate(TOKENS, max_new_tokens=5, stop_at_eos=False, verbose=False, top_k=5, temperature=0.8)
    torch.manual_seed(0)
    b = model.generate(TOKENS, max_new_tokens=5, stop_at_eos=False, verbose=False, top_k=5, temperature=0.8)
    assert torch.equal(a, b) and a.max() < 300
    greedy = model.generate(TOKENS, max_new_tokens=5, stop_at_eos=False, verbose=False, do_sample=False)
    top1 = model.generate(TOKENS, max_new_tokens=5, stop_at_eos=False, verbose=False, top_k=1)
    assert torch.equal(greedy, top1)


def test_sample_logits_filters():
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.0]])
    assert sample_logits(logits, temperature=0.0).item() == 2
    gen = torch.Generator().manual_seed(0)
    draws = {sample_logits(logits, top_k=2, generator=gen).item() for _ in range(50)}
    assert draws <= {2, 3} and len(draws) == 2
    draws = {sample_logits(logits, top_p=0.5, generator=gen).item() for _ in range(20)}
    assert draws == {2}
    history = torch.tensor([[2, 2, 2, 2]])
    draws = {sample_logits(logits, freq_penalty=10.0, tokens=history, temperature=0.1, generator=gen).item() for _ in range(5)}
    assert draws == {3}
    with pytest.raises(InvalidOptionError, match="top_p"):
        sample_logits(logits, top_p=1.5)


def test_generate_stream_chunks_make_up_generate(models):
    model = models["llama"]
    full = model.generate(TOKENS, max_new_tokens=7, do_sample=False, stop_at_eos=False, verbose=False)
    chunks = list(model.generate_stream(TOKENS, max_new_tokens=7, max_tokens_per_yield=3, do_sample=False,
                                        stop_at_eos=False, verbose=False))
    # the first chunk is the prompt plus the first tokens (TL counts the prompt towards the first yield)
    assert [c.shape[1] for c in chunks] == [TOKENS.shape[1] + 1, 3, 3]
    assert torch.equal(torch.cat(chunks, 1), full)
    with pytest.raises(InvalidOptionError, match="max_tokens_per_yield"):
        next(model.generate_stream(TOKENS, max_tokens_per_yield=0))


def test_generate_output_logits(models):
    model = models["gpt2"]
    out = model.generate(TOKENS, max_new_tokens=3, do_sample=False, stop_at_eos=False, verbose=False,
                         output_logits=True)
    assert torch.equal(out.sequences, model.generate(TOKENS, max_new_tokens=3, do_sample=False, stop_at_eos=False,
                                                     verbose=False))
    assert len(out.logits) == 3
    assert torch.allclose(out.logits[0], model(TOKENS)[:, -1], atol=1e-5)
    with pytest.warns(UserWarning, match="num_beams"):
        model.generate(TOKENS, max_new_tokens=1, verbose=False, num_beams=2)


def test_repetition_penalty_scales_seen_logits():
    logits = torch.tensor([[2.0, -1.0, 1.5, 0.5]])
    seen = torch.tensor([[0, 1]])
    assert sample_logits(logits, temperature=0.0, repetition_penalty=4.0, tokens=seen).item() == 2  # 2/4 < 1.5
    assert sample_logits(logits, temperature=0.0, repetition_penalty=1.0, tokens=seen).item() == 0


def test_n_params_total(models):
    model = models["gemma2"]
    assert model.n_params_total == sum(p.numel() for p in model.parameters()) > model.cfg.n_params

"""Residual-stream explorer: every number shown equals the cache API's answer; drill-down,
pickers and messages; bad input is rejected with state unchanged.

Reference values are computed here with the public API (decompose_resid + logit_attrs,
stack_head_results, stack_neuron_results, accumulated_resid(apply_ln=True)) on random
tiny models and, with ``-m smollm2``, on SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
import pytest
import torch

from lenswidget.errors import OutOfRangeError, ShapeMismatchError, TokenizationError, UnknownNameError
from lenswidget.widgets import codec
from lenswidget.widgets.residual import ResidualExplorer
from lenswidget.widgets.residual import residual as _residual


def residual(*args: Any, **kwargs: Any) -> ResidualExplorer:
    """The explorer with its bars in layer order, so ``data`` lines up with TL's stacks
    (the default order, by |value|, has its own test)."""
    kwargs.setdefault("sort", "layer")
    return _residual(*args, **kwargs)
from tests.models import tiny_model

PROMPTS = ["The cat sat on the", "The dog sat on the"]  # 8 tokens each with the tiny tokenizer
ANSWER, INCORRECT = " on", " the"  # single tokens
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    return tiny_model("gpt2", tokenizer=True)


@pytest.fixture(scope="module")
def ref(gpt2):
    """The model's own logits and cache on PROMPTS."""
    with torch.no_grad():
        logits, cache = gpt2.run_with_cache(gpt2.to_tokens(PROMPTS))
    return logits, cache


def values(payload: dict) -> np.ndarray:
    return codec.decode(payload)


def count_runs(monkeypatch, model) -> list[int]:
    runs = [0]
    original = model.run_with_cache

    def counted(*args, **kwargs):
        runs[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "run_with_cache", counted)
    return runs


def custom(w: ResidualExplorer, content: Any) -> None:
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def update(w: ResidualExplorer, state: Any) -> None:
    w._handle_msg({"content": {"data": {"method": "update", "state": state}}, "buffers": []})


def state_of(w: ResidualExplorer) -> dict:
    return {k: getattr(w, k) for k in w.keys if k not in ("error", "revision", "reply")}


# -- components ------------------------------------------------------------------------------


def test_component_bars_equal_decompose_resid_and_logit_attrs(gpt2, ref):
    logits, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER)
    ans = gpt2.to_single_token(ANSWER)
    stack, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
    expected = cache.logit_attrs(stack, ans, pos_slice=-1)  # [components, batch]
    assert w.bars["labels"] == labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"]
    assert w.bars["level"] == "components" and w.metric == "logit" and w.answer == [ANSWER, ANSWER]
    np.testing.assert_allclose(values(w.bars["values"]), expected.mean(-1).numpy(), **TOL)
    np.testing.assert_allclose(w.data["per_prompt"].numpy(), expected.numpy(), **TOL)
    # the visible check: sum of bars vs the model's logit - b_U
    actual = (logits[:, -1, ans] - gpt2.b_U[ans]).mean().item()
    assert w.check["target"] == pytest.approx(actual, abs=1e-5)
    assert w.check["sum"] == pytest.approx(actual, abs=1e-5)
    assert w.check["label"] == "model: logit − b_U"
    # it is also the seed's equivalent: decompose_resid(apply_ln=True) . W_U[:, answer]
    scaled = cache.decompose_resid(layer=-1, pos_slice=-1, apply_ln=True)
    np.testing.assert_allclose(values(w.bars["values"]), (scaled @ gpt2.W_U[:, ans]).mean(-1).numpy(), rtol=1e-4, atol=1e-5)


def test_default_order_is_by_magnitude_with_bias_last(gpt2):
    w = _residual(gpt2, PROMPTS, ANSWER)
    assert w.sort == "abs"
    by_layer = residual(gpt2, PROMPTS, ANSWER)
    mags = w.data["values"].abs().tolist()
    assert mags == sorted(mags, reverse=True) and sorted(w.data["labels"]) == sorted(by_layer.data["labels"])
    custom(w, {"type": "select", "component": "1_attn_out"})
    assert w.data["labels"][-1] == "L1 b_O"  # bias stays last
    heads = w.data["values"][:-1].abs().tolist()
    assert heads == sorted(heads, reverse=True)


def test_logit_difference_and_per_prompt_toggle(gpt2, ref):
    logits, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER, incorrect=INCORRECT)
    a, b = gpt2.to_single_token(ANSWER), gpt2.to_single_token(INCORRECT)
    stack = cache.decompose_resid(layer=-1, pos_slice=-1)
    expected = cache.logit_attrs(stack, a, b, pos_slice=-1)
    assert w.metric == "logit_diff" and w.incorrect == [INCORRECT, INCORRECT]
    np.testing.assert_allclose(values(w.bars["values"]), expected.mean(-1).numpy(), **TOL)
    diff = logits[:, -1, a] - logits[:, -1, b] - (gpt2.b_U[a] - gpt2.b_U[b])
    assert w.check["target"] == pytest.approx(diff.mean().item(), abs=1e-5)
    update(w, {"prompt_index": 1})
    assert w.error == "" and w.prompt_index == 1
    np.testing.assert_allclose(values(w.bars["values"]), expected[:, 1].numpy(), **TOL)
    assert w.check["target"] == pytest.approx(diff[1].item(), abs=1e-5)
    assert w.tokens == [str(t) for t in gpt2.to_str_tokens(PROMPTS[1])]


# -- heads and neurons --------------------------------------------------------------------------


def test_attention_bar_opens_heads_equal_to_stack_head_results(gpt2, ref):
    _, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER)
    custom(w, {"type": "select", "component": "1_attn_out"})
    assert w.error == "" and w.path == ["1_attn_out"]
    heads, labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
    attrs = cache.logit_attrs(heads, gpt2.to_single_token(ANSWER), pos_slice=-1).mean(-1)
    assert w.bars["labels"] == labels[4:8] + ["L1 b_O"]
    assert w.bars["kinds"] == ["head"] * 4 + ["bias"]
    shown = values(w.bars["values"])
    np.testing.assert_allclose(shown[:4], attrs[4:8].numpy(), **TOL)
    # heads + b_O add up to the attention bar of the level above
    attn_bar = residual(gpt2, PROMPTS, ANSWER).data["values"][4].item()
    assert w.check["label"] == "1_attn_out"
    assert w.check["target"] == pytest.approx(attn_bar, abs=1e-6)
    assert w.check["sum"] == pytest.approx(attn_bar, abs=1e-5)


def test_mlp_bar_opens_top_neurons_equal_to_stack_neuron_results(gpt2, ref):
    _, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER, top_k=5)
    w.select("0_mlp_out")
    stack, labels = cache.stack_neuron_results(layer=1, pos_slice=-1, return_labels=True)
    attrs = cache.logit_attrs(stack, gpt2.to_single_token(ANSWER), pos_slice=-1).mean(-1)
    top = attrs.abs().topk(5).indices.sort().values
    assert w.bars["labels"] == [labels[i] for i in top] + ["L0 other + b_out"]
    shown = values(w.bars["values"])
    np.testing.assert_allclose(shown[:5], attrs[top].numpy(), rtol=1e-4, atol=1e-6)
    mlp_bar = residual(gpt2, PROMPTS, ANSWER).data["values"][3].item()
    assert w.check["target"] == pytest.approx(mlp_bar, abs=1e-6)
    assert shown.sum() == pytest.approx(mlp_bar, abs=1e-5)
    # a neuron outside the top-k stays visible once picked
    other = next(i for i in range(gpt2.cfg.d_mlp) if i not in top)
    w.select(f"L0N{other}")
    assert w.path == ["0_mlp_out", f"L0N{other}"] and f"L0N{other}" in w.bars["labels"]
    assert w.detail["kind"] == "neuron"
    assert w.detail["value"] == pytest.approx(attrs[other].item(), rel=1e-4, abs=1e-6)
    post = cache["post", 0][:, -1, other].mean().item()
    assert w.detail["activation"] == pytest.approx(post, rel=1e-5, abs=1e-7)


def test_head_detail_pattern_and_direct_effect(gpt2, ref):
    _, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER)
    w.select("L1H2")
    assert w.path == ["1_attn_out", "L1H2"] and w.bars["level"] == "heads"
    d = w.detail
    assert (d["kind"], d["label"], d["layer"], d["index"], d["pos"], d["prompt"]) == ("head", "L1H2", 1, 2, 7, 0)
    pattern = cache["pattern", 1][0, 2].numpy()
    assert np.abs(values(d["pattern"]) - pattern).max() <= 1 / 510 + 1e-7
    np.testing.assert_allclose(values(d["row"]), pattern[7], **TOL)
    heads = cache.stack_head_results(layer=-1, pos_slice=-1)
    effect = (cache.apply_ln_to_stack(heads[4 + 2], layer=-1, pos_slice=-1) @ gpt2.W_U).mean(0)
    top = effect.topk(10)
    assert d["promoted"] == [str(s) for s in gpt2.to_str_tokens(top.indices)]
    np.testing.assert_allclose(values(d["promoted_values"]), top.values.numpy(), rtol=1e-4, atol=1e-6)
    low = (-effect).topk(10)
    np.testing.assert_allclose(values(d["suppressed_values"]), -low.values.numpy(), rtol=1e-4, atol=1e-6)
    assert w.selection == {"path": ["1_attn_out", "L1H2"], "component": "L1H2", "kind": "head", "level": "heads",
                           "layer": 1, "head": 2, "prompt_index": None, "view": "attribution",
                           "all_heads": False, "sort": "layer"}
    # per prompt: the pattern of that prompt and its own effect
    w.prompt_index = 1
    assert np.abs(values(w.detail["pattern"]) - cache["pattern", 1][1, 2].numpy()).max() <= 1 / 510 + 1e-7
    # breadcrumbs back
    custom(w, {"type": "back", "depth": 1})
    assert w.path == ["1_attn_out"] and w.detail == {}
    custom(w, {"type": "back", "depth": 0})
    assert w.path == [] and w.bars["level"] == "components" and w.error == ""


def test_all_heads_grid(gpt2, ref):
    _, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER)
    assert w.head_grid == {}
    update(w, {"all_heads": True})
    heads = cache.stack_head_results(layer=-1, pos_slice=-1)
    attrs = cache.logit_attrs(heads, gpt2.to_single_token(ANSWER), pos_slice=-1).mean(-1).reshape(2, 4)
    np.testing.assert_allclose(values(w.head_grid), attrs.numpy(), **TOL)
    torch.testing.assert_close(w.data["heads"], attrs)


def test_sort_orders_data_like_the_browser(gpt2):
    w = residual(gpt2, PROMPTS, ANSWER)
    update(w, {"sort": "value"})
    v = w.data["values"]
    assert w.sort == "value" and list(v) == sorted(v.tolist(), reverse=True)
    w.select("1_attn_out")
    assert w.data["labels"][-1] == "L1 b_O"  # bias stays last
    heads = w.data["values"][:-1].tolist()
    assert heads == sorted(heads, reverse=True)


# -- logit lens -----------------------------------------------------------------------------------


def test_logit_lens_equals_accumulated_resid_through_the_unembed(gpt2, ref):
    logits, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER, incorrect=INCORRECT, lens_top_k=3)
    assert w.lens == {} and w.lens_grid == {}  # computed when the lens is shown
    update(w, {"view": "lens"})
    a, b = gpt2.to_single_token(ANSWER), gpt2.to_single_token(INCORRECT)
    acc, labels = cache.accumulated_resid(layer=-1, incl_mid=True, apply_ln=True, pos_slice=-1, return_labels=True)
    lens = acc @ gpt2.W_U + gpt2.b_U  # [layers, batch, vocab]
    assert w.lens["labels"] == labels and labels[-1] == "final_post"
    np.testing.assert_allclose(values(w.lens["logit"]), lens[..., a].mean(-1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values(w.lens["diff"]), (lens[..., a] - lens[..., b]).mean(-1).numpy(), rtol=1e-4, atol=1e-5)
    probs = lens.softmax(-1)[..., a].mean(-1)
    np.testing.assert_allclose(values(w.lens["prob"]), probs.numpy(), rtol=1e-4, atol=1e-7)
    rank = (lens > lens[..., a : a + 1]).sum(-1).float().mean(-1)
    np.testing.assert_array_equal(values(w.lens["rank"]), rank.numpy())
    # the last row is the model itself
    assert values(w.lens["logit"])[-1] == pytest.approx(logits[:, -1, a].mean().item(), abs=1e-4)
    # the grid: top tokens at every position after every layer (prompt 0)
    full, grid_labels = cache.accumulated_resid(layer=-1, apply_ln=True, return_labels=True)
    grid_logits = full[:, 0] @ gpt2.W_U + gpt2.b_U  # [layers, pos, vocab]
    g = w.lens_grid
    assert g["labels"] == grid_labels and g["tokens"] == w.tokens
    ids = values(g["ids"]).astype(int)  # [pos, layers, k] indices into vocab_ids
    vocab_ids = np.array(g["vocab_ids"])
    top = grid_logits.topk(3, dim=-1)
    np.testing.assert_array_equal(vocab_ids[ids], top.indices.transpose(0, 1).numpy())
    assert g["vocab"] == [str(s) for s in gpt2.to_str_tokens(torch.tensor(g["vocab_ids"]))]
    top_p = grid_logits.softmax(-1).topk(3, dim=-1).values.transpose(0, 1).numpy()
    np.testing.assert_allclose(values(g["probs"]), top_p, rtol=2e-3, atol=1e-4)  # float16 on the wire
    assert w.data["lens"]["labels"] == labels
    update(w, {"prompt_index": 1})
    np.testing.assert_allclose(values(w.lens["logit"]), lens[:, 1, a].numpy(), rtol=1e-4, atol=1e-5)
    assert w.lens_grid["prompt"] == 1


def _independent_lens(model, resid: torch.Tensor) -> torch.Tensor:
    """ln_final(resid) @ W_U + b_U with the final norm written out from its definition: each
    residual normalised by its own statistics (not the cached final-layer scale)."""
    cfg, ln = model.cfg, model.ln_final
    x = resid.double()
    if cfg.normalization_type in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    x = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.eps)
    if hasattr(ln, "w"):
        x = x * ln.w.double()
    if hasattr(ln, "b"):
        x = x + ln.b.double()
    return x @ model.W_U.double() + model.b_U.double()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_logit_lens_is_ln_final_of_each_residual_through_the_unembed(family):
    # Unprocessed weights with random norm weights and biases, so a lens that reused the final
    # layer's cached scale (or skipped the norm's weights) would give other numbers.
    torch.manual_seed(1)
    model = tiny_model(family, tokenizer=True, n_layers=3)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_((1.0 if name.endswith(".w") else 0.0) + 0.5 * torch.randn(p.shape, generator=g))
    w = residual(model, PROMPTS, ANSWER, incorrect=INCORRECT, lens_top_k=3)
    update(w, {"view": "lens"})
    _, cache = model.run_with_cache(model.to_tokens(PROMPTS))
    n = model.cfg.n_layers
    resids, labels = [], []
    for l in range(n):
        resids += [cache[f"blocks.{l}.hook_resid_pre"][:, -1], cache[f"blocks.{l}.hook_resid_mid"][:, -1]]
        labels += [f"{l}_pre", f"{l}_mid"]
    resids.append(cache[f"blocks.{n - 1}.hook_resid_post"][:, -1])
    labels.append("final_post")
    lens = _independent_lens(model, torch.stack(resids))  # [layers, batch, vocab]
    a, b = model.to_single_token(ANSWER), model.to_single_token(INCORRECT)
    assert w.lens["labels"] == labels
    np.testing.assert_allclose(values(w.lens["logit"]), lens[..., a].mean(-1).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values(w.lens["diff"]), (lens[..., a] - lens[..., b]).mean(-1).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values(w.lens["prob"]), lens.softmax(-1)[..., a].mean(-1).numpy(), rtol=1e-4, atol=1e-6)
    update(w, {"prompt_index": 1})
    np.testing.assert_allclose(values(w.lens["logit"]), lens[:, 1, a].numpy(), rtol=1e-4, atol=1e-4)
    update(w, {"prompt_index": 0})
    # the grid's top tokens at every position, layer by layer (prompt 0)
    grid_resids = [cache[f"blocks.{l}.hook_resid_pre"][0] for l in range(n)] + [cache[f"blocks.{n - 1}.hook_resid_post"][0]]
    top = _independent_lens(model, torch.stack(grid_resids)).topk(3, dim=-1)  # [layers, pos, k]
    ids = values(w.lens_grid["ids"]).astype(int)
    np.testing.assert_array_equal(np.array(w.lens_grid["vocab_ids"])[ids], top.indices.transpose(0, 1).numpy())


# -- answers and prompts ---------------------------------------------------------------------------


def test_changing_the_answer_needs_no_forward_and_prompts_rerun_once(gpt2, ref, monkeypatch):
    _, cache = ref
    w = residual(gpt2, PROMPTS, ANSWER)
    runs = count_runs(monkeypatch, gpt2)
    w.select("L1H0")
    update(w, {"view": "lens"})
    custom(w, {"type": "set_answer", "answer": INCORRECT, "incorrect": ""})
    assert w.error == "" and runs[0] == 0
    assert w.answer == [INCORRECT, INCORRECT] and w.path == ["1_attn_out", "L1H0"]
    heads = cache.stack_head_results(layer=-1, pos_slice=-1)
    attrs = cache.logit_attrs(heads, gpt2.to_single_token(INCORRECT), pos_slice=-1).mean(-1)
    np.testing.assert_allclose(values(w.bars["values"])[:4], attrs[4:8].numpy(), **TOL)
    custom(w, {"type": "set_answer", "answer": f"#{gpt2.to_single_token(ANSWER)}", "incorrect": INCORRECT})
    assert w.error == "" and w.metric == "logit_diff" and w.answer == [ANSWER, ANSWER]
    assert runs[0] == 0
    custom(w, {"type": "set_prompts", "prompts": ["The cat sat on the", "The dog sat on the", "A cat sat on the"]})
    assert w.error == "" and runs[0] == 1 and w.n_prompts == 3
    assert w.path == ["1_attn_out", "L1H0"] and len(w.data["per_prompt"][0]) == 3
    # Python-side changes of the shown prompt / options never rerun
    w.prompt_index = 2
    w.all_heads = True
    w.back()
    assert runs[0] == 1


def test_from_cache_and_tokens_matches_prompt_mode(gpt2, ref):
    _, cache = ref
    tokens = gpt2.to_tokens(PROMPTS)
    a = residual(gpt2, PROMPTS, ANSWER)
    b = residual(gpt2, cache=cache, tokens=tokens, answer=ANSWER)
    assert not b.editable and a.editable
    np.testing.assert_allclose(values(b.bars["values"]), values(a.bars["values"]), **TOL)
    assert b.prompts == PROMPTS
    with pytest.raises(Exception, match="cache"):
        b.set_prompts(["x"])
    custom(b, {"type": "set_prompts", "prompts": ["The cat"]})
    assert "built from a cache" in b.error
    # a single prompt's cache without its batch dim works too
    with torch.no_grad():
        _, one = gpt2.run_with_cache(PROMPTS[0], remove_batch_dim=True)
    c = residual(gpt2, cache=one, tokens=tokens[0], answer=ANSWER)
    np.testing.assert_allclose(values(c.bars["values"]), a.data["per_prompt"][:, 0].numpy(), **TOL)


def test_default_answer_is_the_top_prediction_and_per_prompt_answers(gpt2, ref):
    logits, cache = ref
    w = residual(gpt2, PROMPTS)
    top = logits[:, -1].argmax(-1)
    assert w.answer == [str(s) for s in gpt2.to_str_tokens(top)]
    w2 = residual(gpt2, PROMPTS, answer=[ANSWER, INCORRECT])
    stack = cache.decompose_resid(layer=-1, pos_slice=-1)
    ids = torch.tensor([gpt2.to_single_token(ANSWER), gpt2.to_single_token(INCORRECT)])
    np.testing.assert_allclose(w2.data["per_prompt"].numpy(), cache.logit_attrs(stack, ids, pos_slice=-1).numpy(), **TOL)
    with pytest.raises(ShapeMismatchError):
        w2.set_prompts(PROMPTS + ["A cat sat on the"])  # two different answers cannot spread over 3 prompts


def test_other_position_and_families():
    for family in ("llama", "neox"):
        model = tiny_model(family, tokenizer=True)
        w = residual(model, PROMPTS, ANSWER, pos=-2)
        assert w.pos == 6
        assert w.check["sum"] == pytest.approx(w.check["target"], abs=1e-4)
        w.select("0_attn_out")
        assert w.check["sum"] == pytest.approx(w.check["target"], abs=1e-4)
        w.select("1_mlp_out")
        assert w.check["sum"] == pytest.approx(w.check["target"], abs=1e-4)
        w.view = "lens"
        assert w.lens["labels"][-1] == "final_post"


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, match", [
    ({"type": "set_answer", "answer": " cat", "incorrect": ""}, r"answer: ' cat' is 2 tokens, not 1: \[' c', 'at'\]"),
    ({"type": "set_answer", "answer": ANSWER, "incorrect": " dog"}, r"incorrect: ' dog' is 2 tokens"),
    ({"type": "set_answer", "answer": "", "incorrect": ""}, "the empty string is not a token"),
    ({"type": "set_answer", "answer": "#999999", "incorrect": ""}, r"answer token id 999999 is out of range; valid: 0\.\.299"),
    ({"type": "select", "component": "2_attn_outt"}, "unknown component '2_attn_outt'"),
    ({"type": "select", "component": "mlp"}, "unknown component 'mlp'"),
    ({"type": "select", "component": "L9H0"}, r"layer 9 is out of range; valid: 0\.\.1"),
    ({"type": "select", "component": "7_mlp_out"}, r"layer 7 is out of range; valid: 0\.\.1"),
    ({"type": "select", "component": "L1H4"}, r"head 4 is out of range; valid: 0\.\.3"),
    ({"type": "select", "component": "L0N5000"}, r"neuron 5000 is out of range"),
    ({"type": "back", "depth": 3}, r"message 'back'.depth: got 3"),
    ({"type": "set_prompts", "prompts": ["The cat sat on the", "Hello"]}, "different numbers of tokens"),
    ({"type": "set_prompts", "prompts": []}, "non-empty list"),
    ({"type": "zoom", "component": "embed"}, "unknown type 'zoom'"),
])
def test_bad_picks_are_rejected_with_clear_messages_and_no_change(gpt2, content, match):
    w = residual(gpt2, PROMPTS, ANSWER)
    w.select("1_attn_out")
    before = state_of(w)
    custom(w, content)
    assert re.search(match, w.error), w.error
    assert state_of(w) == before
    custom(w, {"type": "clear_error"})
    assert w.error == ""
    custom(w, {"type": "select", "component": "L1H3"})  # still usable
    assert w.error == "" and w.path == ["1_attn_out", "L1H3"]


def test_python_api_raises_typed_errors(gpt2):
    w = residual(gpt2, PROMPTS, ANSWER)
    with pytest.raises(TokenizationError, match=r"\[' c', 'at'\]"):
        w.set_answer(" cat")
    with pytest.raises(TokenizationError):
        residual(gpt2, PROMPTS, " cat")
    with pytest.raises(UnknownNameError):
        w.select("blocks.0.attn")
    with pytest.raises(OutOfRangeError, match="layer 2"):
        w.select("2_attn_out")
    with pytest.raises(KeyError):  # UnknownNameError is a KeyError too
        w.select("L0X1")
    with pytest.raises(OutOfRangeError):
        residual(gpt2, PROMPTS, ANSWER, pos=8)
    with pytest.raises(ShapeMismatchError, match="different numbers of tokens"):
        residual(gpt2, ["The cat", "The cat sat on the"], ANSWER)
    with pytest.raises(Exception):
        w.prompt_index = 2
    with pytest.raises(Exception):
        w.view = "heads"
    assert w.path == [] and w.prompt_index is None and w.view == "attribution"


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "str", "none", "float", "list", "dict", "bool", "label"]
    kind = rng.choice(kinds if depth < 3 else kinds[:4])
    if kind == "int":
        return rng.choice([0, 1, 2, -1, 5, 10**12])
    if kind == "str":
        return rng.choice(["", " on", " cat", "#3", "x" * 300, "<img src=x onerror=alert(1)>", "\x00\ud800"])
    if kind == "float":
        return rng.choice([0.5, float("nan"), float("inf"), 1.0])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "label":
        return rng.choice(["embed", "pos_embed", "0_attn_out", "1_mlp_out", "L1H2", "L0N3", "L5H0", "L0N999",
                           "lens", "attribution", "value", "layer", "mean"])
    if kind == "list":
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == "dict":
        return {str(_junk(rng, 3)): _junk(rng, depth + 1) for _ in range(rng.randrange(3))}
    return None


def _fuzz_message(rng: random.Random) -> Any:
    form = rng.randrange(7)
    if form == 6:  # well-formed, mostly valid
        content = rng.choice([{"type": "select", "component": rng.choice(["0_attn_out", "L1H2", "0_mlp_out", "L0N3"])},
                              {"type": "back", "depth": 0}, {"type": "set_answer", "answer": " the", "incorrect": ""}])
        return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    if form == 0:
        return _junk(rng)
    if form == 1:
        return {"content": {"data": {"method": _junk(rng), "state": _junk(rng)}}, "buffers": []}
    if form == 2:
        keys = ["sort", "all_heads", "prompt_index", "view", "path", "bars", "answer", "error", "zz"]
        state = {rng.choice(keys): _junk(rng) for _ in range(rng.randrange(1, 3))}
        return {"content": {"data": {"method": "update", "state": state}}, "buffers": []}
    content: Any = {"type": rng.choice(["select", "back", "set_answer", "set_prompts", "clear_error", None, 7])}
    for _ in range(rng.randrange(3)):
        content[rng.choice(["component", "depth", "answer", "incorrect", "prompts", "type", "x"])] = _junk(rng)
    if rng.random() < 0.1:
        content = _junk(rng)
    return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}


def _method(msg: Any) -> Any:
    try:
        return msg["content"]["data"]["method"]
    except Exception:
        return None


def test_fuzz_malformed_messages_leave_the_widget_usable(gpt2, monkeypatch):
    w = residual(gpt2, PROMPTS, ANSWER)
    runs = count_runs(monkeypatch, gpt2)
    rng = random.Random(7)
    rejected = accepted = 0
    for _ in range(600):
        w.error = ""
        before, revision = state_of(w), w.revision
        msg = _fuzz_message(rng)
        w._handle_msg(msg)  # must never raise
        if _method(msg) == "request_state":
            continue
        assert w.revision > revision
        if w.error:
            rejected += 1
            assert state_of(w) == before, w.error
        else:
            accepted += 1
        assert w.prompt_index in (None, 0, 1) and w.view in ("attribution", "lens") and w.sort in ("abs", "layer", "value")
        assert w.check["sum"] == pytest.approx(w.check["target"], abs=1e-4)
    assert rejected > 300 and accepted > 50
    assert runs[0] == 0  # no accepted fuzz message reran the model (prompts never tokenise equally)
    custom(w, {"type": "select", "component": "L1H1"})
    assert w.error == "" and w.path == ["1_attn_out", "L1H1"]


def test_only_small_binary_payloads_travel(gpt2):
    from ipywidgets.widgets.widget import _remove_buffers

    w = residual(gpt2, PROMPTS, ANSWER)
    w.select("L1H2")
    state, paths, buffers = _remove_buffers(w.get_state())
    assert ["bars", "values", "buffer"] in paths and ["detail", "pattern", "buffer"] in paths
    assert sum(len(b) for b in buffers) < 1024
    assert "lens_grid" not in [p[0] for p in paths]


# -- SmolLM2 -----------------------------------------------------------------------------------------

SMOL_PROMPT = ("The quick brown fox jumps over the lazy dog. Then the capital of France is Paris, "
               "and the capital of Italy is")


@pytest.mark.smollm2
def test_smollm2_every_number_equals_the_api(smollm2):
    model = smollm2
    tokens = model.to_tokens(SMOL_PROMPT)
    assert 20 <= tokens.shape[1] <= 32
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    w = residual(model, SMOL_PROMPT, " Rome", incorrect=" Paris")
    a, b = model.to_single_token(" Rome"), model.to_single_token(" Paris")
    stack, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
    comp = cache.logit_attrs(stack, a, b, pos_slice=-1)[:, 0]
    assert w.bars["labels"] == labels and len(labels) == 61  # embed + 30 x (attn, mlp)
    np.testing.assert_allclose(values(w.bars["values"]), comp.numpy(), rtol=1e-4, atol=1e-4)
    actual = (logits[0, -1, a] - logits[0, -1, b] - model.b_U[a] + model.b_U[b]).item()
    assert w.check["target"] == pytest.approx(actual, abs=2e-3)
    assert w.check["sum"] == pytest.approx(actual, abs=2e-3)

    heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
    head_attrs = cache.logit_attrs(heads, a, b, pos_slice=-1)[:, 0]
    w.select("27_attn_out")
    assert w.bars["labels"][:9] == head_labels[27 * 9 : 28 * 9]
    np.testing.assert_allclose(values(w.bars["values"])[:9], head_attrs[27 * 9 : 28 * 9].numpy(), rtol=1e-4, atol=1e-4)
    assert w.check["sum"] == pytest.approx(w.check["target"], abs=1e-3)
    w.all_heads = True
    np.testing.assert_allclose(values(w.head_grid), head_attrs.reshape(30, 9).numpy(), rtol=1e-4, atol=1e-4)
    w.all_heads = False

    w.select("L27H3")
    assert np.abs(values(w.detail["pattern"]) - cache["pattern", 27][0, 3].numpy()).max() <= 1 / 510 + 1e-6

    neurons = cache.stack_neuron_results(layer=30, pos_slice=-1, neuron_slice=None)[29 * 1536 :]
    neuron_attrs = cache.logit_attrs(neurons, a, b, pos_slice=-1)[:, 0]
    w.select("29_mlp_out")
    top = neuron_attrs.abs().topk(10).indices.sort().values
    assert w.bars["labels"][:10] == [f"L29N{int(i)}" for i in top]
    np.testing.assert_allclose(values(w.bars["values"])[:10], neuron_attrs[top].numpy(), rtol=1e-3, atol=1e-4)
    assert w.check["sum"] == pytest.approx(w.check["target"], abs=1e-3)

    w.view = "lens"
    acc, lens_labels = cache.accumulated_resid(layer=-1, incl_mid=True, apply_ln=True, pos_slice=-1, return_labels=True)
    lens = acc[:, 0] @ model.W_U + model.b_U
    assert w.lens["labels"] == lens_labels and len(lens_labels) == 61
    np.testing.assert_allclose(values(w.lens["logit"]), lens[:, a].numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(values(w.lens["rank"]), (lens > lens[:, a : a + 1]).sum(-1).float().numpy())
    assert values(w.lens["logit"])[-1] == pytest.approx(logits[0, -1, a].item(), abs=1e-3)
    grid = w.lens_grid
    top1 = np.array(grid["vocab_ids"])[values(grid["ids"]).astype(int)[:, -1, 0]]  # final_post column
    np.testing.assert_array_equal(top1, logits[0].argmax(-1).numpy())

"""Attention inspector: inputs (prompt, tokens, cache, plain tensor), protocol, traits, reruns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, UnknownNameError
from lenswidget.widgets import AttentionInspector, attention, codec
from lenswidget.widgets.fake import FakeAttentionModel, causal_patterns


@pytest.fixture
def fake():
    return FakeAttentionModel(n_layers=3, n_heads=2)


def test_prompt_mode_sends_thumbs_and_selected_layer(fake):
    w = attention(fake, "the cat sat on the mat")
    n = 7
    assert isinstance(w, AttentionInspector) and w.editable
    assert w.tokens == ["<bos>", "the", " cat", " sat", " on", " the", " mat"]
    assert w.layers == [0, 1, 2] and w.heads == [0, 1] and w.layer == 0 and w.head is None
    assert w.thumbs["shape"] == [3, 2, n, n] and w.thumbs["dtype"] == "uint8"
    assert w.pattern["shape"] == [2, n, n] and w.pattern["dtype"] == "uint8"
    expected = causal_patterns(2, n, seed=0)
    assert np.abs(codec.decode(w.pattern) - expected).max() <= 1 / 510 + 1e-7


def test_layer_change_resends_only_that_layer(fake):
    w = attention(fake, "a b c")
    runs = fake.runs
    w.layer = 2
    np.testing.assert_allclose(codec.decode(w.pattern), causal_patterns(2, 4, seed=2), atol=1 / 510 + 1e-7)
    assert fake.runs == runs  # patterns are cached; no rerun
    with pytest.raises(traitlets.TraitError):
        w.layer = 5


def test_browser_click_locks_head_and_prompt_reruns(fake):
    w = attention(fake, "a b")
    changes = []
    w.observe(lambda c: changes.append((c["name"], c["new"])), ["layer", "head", "prompt", "tokens"])
    w.set_state({"layer": 1, "head": 1})
    assert (w.layer, w.head) == (1, 1)
    w.set_state({"prompt": "x y z"})
    assert w.tokens == ["<bos>", "x", " y", " z"] and w.pattern["shape"] == [2, 4, 4]
    np.testing.assert_allclose(codec.decode(w.pattern), causal_patterns(2, 4, seed=1), atol=1 / 510 + 1e-7)
    assert ("prompt", "x y z") in changes and ("head", 1) in changes
    w.prompt = "from python"  # Python side sets it too
    assert w.tokens == ["<bos>", "from", " python"]


def test_subset_of_layers_and_heads_stops_early(fake):
    w = attention(fake, "a b", layers=[1], heads=[-1])
    assert w.layers == [1] and w.heads == [1] and w.layer == 1
    assert w.thumbs["shape"] == [1, 1, 3, 3]
    with pytest.raises(OutOfRangeError):
        attention(fake, "a", layers=[3])


def test_thumbnails_are_pooled_for_long_prompts(fake):
    w = attention(fake, " ".join(["w"] * 99), thumb_size=16, precision="float16")
    assert w.thumbs["shape"] == [3, 2, 16, 16]
    assert w.pattern["shape"] == [2, 100, 100] and w.pattern["dtype"] == "float16"
    assert len(w.thumbs["buffer"]) == 3 * 2 * 16 * 16


def test_max_tokens_is_enforced(fake):
    with pytest.raises(Exception, match="max_tokens=4"):
        attention(fake, "a b c d e", max_tokens=4)


def test_tensor_mode_like_circuitsvis():
    pat = torch.from_numpy(causal_patterns(3, 5))
    toks = ["<bos>", "When", " Mary", " and", " John"]
    w = attention(pat, toks, head_names=["L23H1", "L22H7", "L9H9"])
    assert not w.editable and w.layers == [0] and w.heads == [0, 1, 2]
    assert w.head_names == ["L23H1", "L22H7", "L9H9"] and w.tokens == toks
    np.testing.assert_allclose(w.patterns[0], pat.numpy())
    w.set_state({"prompt": "hello"})
    assert "cannot be set from the browser" in w.error and w.tokens == toks
    with pytest.raises(traitlets.TraitError, match="read-only"):
        w.prompt = "hello"


@pytest.mark.parametrize("pat, toks", [
    (np.ones((2, 3, 3)), ["a", "b"]),         # token count mismatch
    (np.ones((2, 3, 4)), ["a", "b", "c"]),    # not square
    (np.ones((3, 3)), ["a", "b", "c"]),       # no head axis
    (np.full((1, 2, 2), np.nan), ["a", "b"]),
])
def test_tensor_mode_rejects_bad_shapes(pat, toks):
    with pytest.raises(ShapeMismatchError):
        attention(pat.astype(np.float32), toks)


def test_uint8_rejects_non_probabilities_with_a_hint():
    with pytest.raises(OutOfRangeError, match="float16"):
        attention(np.full((1, 2, 2), 3.0, dtype=np.float32), ["a", "b"])
    w = attention(np.full((1, 2, 2), 3.0, dtype=np.float32), ["a", "b"], precision="float16")
    assert codec.decode(w.pattern).max() == 3.0


def test_cache_mode(fake):
    tokens = fake.to_tokens("a b c")
    _, cache = fake.run_with_cache(tokens)
    w = attention(fake, cache, str_tokens=fake.to_str_tokens(tokens))
    assert w.tokens == ["<bos>", "a", " b", " c"] and w.prompt == "a b c" and w.editable
    with pytest.raises(ShapeMismatchError, match="str_tokens"):
        attention(fake, cache)
    with pytest.raises(UnknownNameError, match="hook_pattern"):
        attention(fake, {"blocks.0.hook_resid_pre": torch.zeros(1)}, str_tokens=["a"])


def test_token_tensor_mode(fake):
    w = attention(fake, fake.to_tokens("p q"))
    assert w.tokens == ["<bos>", "p", " q"] and w.prompt == "p q"
    runs = fake.runs
    w.set_tokens(fake.to_tokens("r s t")[0])
    assert w.tokens == ["<bos>", "r", " s", " t"] and w.prompt == "r s t" and fake.runs == runs + 1
    assert w.pattern["shape"] == [2, 4, 4]


def test_tokens_trait_relabels_but_keeps_length(fake):
    w = attention(fake, "a b")
    w.tokens = ["BOS", "A", "B"]
    assert w.tokens == ["BOS", "A", "B"]
    with pytest.raises(traitlets.TraitError, match="set_tokens"):
        w.tokens = ["x"]
    w.set_state({"tokens": ["x", "y", "z"]})  # not browser-writable
    assert "cannot be set from the browser" in w.error and w.tokens == ["BOS", "A", "B"]


def test_bad_arguments(fake):
    with pytest.raises(InvalidOptionError):
        attention("not a model", "x")
    with pytest.raises(InvalidOptionError):
        attention(fake, 42)
    with pytest.raises(InvalidOptionError):
        attention(fake, "x", precision="int4")
    with pytest.raises(ShapeMismatchError):
        attention(fake, "x", head_names=["a"])
    with pytest.raises(OutOfRangeError):
        attention(fake, "x", layers=[0, 1], layer=2)


def test_tiny_model_end_to_end():
    models = pytest.importorskip("tests.models")
    model = models.tiny_model("llama", tokenizer=True)
    w = attention(model, "Hello world")
    str_toks = model.to_str_tokens(model.to_tokens("Hello world")[0])
    assert w.tokens == list(str_toks)
    n = len(str_toks)
    assert w.thumbs["shape"] == [model.cfg.n_layers, model.cfg.n_heads, n, n]
    _, cache = model.run_with_cache(model.to_tokens("Hello world"))
    ref = cache["blocks.1.attn.hook_pattern"][0].detach().numpy()
    w.set_state({"layer": 1, "head": 2})
    assert w.error == ""
    assert np.abs(codec.decode(w.pattern) - ref).max() <= 1 / 510 + 1e-6
    w.set_state({"prompt": "The cat sat on the mat."})
    assert w.error == "" and w.tokens[-1] == model.to_str_tokens(model.to_tokens("The cat sat on the mat.")[0])[-1]
    assert w.prompt == "The cat sat on the mat."

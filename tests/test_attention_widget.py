"""Attention inspector: inputs (prompt, tokens, cache, plain tensor), protocol, traits, reruns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, UnknownNameError
from lenswidget.widgets import AttentionInspector, attention, codec
from lenswidget.widgets.attention.fake import FakeAttentionModel, causal_patterns


# uint8 transport of float16-kept patterns: half a uint8 step + half a float16 ulp below 1.
U8_TOL = 1 / 510 + 2**-12 + 1e-7


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
    assert np.abs(codec.decode(w.pattern) - expected).max() <= U8_TOL


def test_layer_change_resends_only_that_layer(fake):
    w = attention(fake, "a b c")
    runs = fake.runs
    w.layer = 2
    np.testing.assert_allclose(codec.decode(w.pattern), causal_patterns(2, 4, seed=2), atol=U8_TOL)
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
    np.testing.assert_allclose(codec.decode(w.pattern), causal_patterns(2, 4, seed=1), atol=U8_TOL)
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
    # position 0 (BOS / sink) in a bin of its own, then 99 positions in 15 bins of 7 or 6
    assert w.thumbs["shape"] == [3, 2, 16, 16] and w.thumbs["edges"] == [0, 1, *range(8, 65, 7), *range(70, 101, 6)]
    assert w.pattern["shape"] == [2, 100, 100] and w.pattern["dtype"] == "float16"
    assert len(w.thumbs["buffer"]) == 3 * 2 * 16 * 16
    thumbs = codec.decode(w.thumbs)
    full = causal_patterns(2, 100, seed=1)
    edges = w.thumbs["edges"]
    for r in range(16):
        for c in range(16):
            block = full[:, edges[r]:edges[r + 1], edges[c]:edges[c + 1]]
            np.testing.assert_allclose(thumbs[1, :, r, c], block.max(axis=(1, 2)), atol=U8_TOL)


def test_max_tokens_is_enforced(fake):
    with pytest.raises(Exception, match="max_tokens=4"):
        attention(fake, "a b c d e", max_tokens=4)


def test_tensor_mode_like_circuitsvis():
    pat = torch.from_numpy(causal_patterns(3, 5))
    toks = ["<bos>", "When", " Mary", " and", " John"]
    w = attention(pat, toks, head_names=["L23H1", "L22H7", "L9H9"])
    assert not w.editable and w.layers == [0] and w.heads == [0, 1, 2]
    assert w.head_names == ["L23H1", "L22H7", "L9H9"] and w.tokens == toks
    assert w.patterns.dtype == np.float16  # the kernel keeps float16
    np.testing.assert_allclose(w.patterns[0], pat.numpy(), rtol=2**-11, atol=1e-7)
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
    assert np.abs(codec.decode(w.pattern) - ref).max() <= U8_TOL
    w.set_state({"prompt": "The cat sat on the mat."})
    assert w.error == "" and w.tokens[-1] == model.to_str_tokens(model.to_tokens("The cat sat on the mat.")[0])[-1]
    assert w.prompt == "The cat sat on the mat."


# -- thumbnails, memory cap, view options -----------------------------------------------------

def test_thumb_edges_and_pooling_keep_the_sink_and_thin_stripes():
    from lenswidget.widgets.attention.thumbs import pool_max, thumb_edges

    assert thumb_edges(5, 32) == [0, 1, 2, 3, 4, 5]
    assert thumb_edges(1024, 32) == [0, *range(1, 1025, 33)]  # the sink + 31 bins of 33
    for n in (33, 34, 40, 63, 100, 257, 1000):
        e = thumb_edges(n, 32)
        assert e[0] == 0 and e[1] == 1 and e[-1] == n and len(e) == 33
        widths = np.diff(e[1:])
        assert widths.max() - widths.min() <= 1 and widths.min() >= 1  # even split, no empty bin
    x = np.zeros((1, 100, 100), dtype=np.float32)
    x[0, :, 0] = 0.5  # the sink column
    x[0, np.arange(100), np.arange(100)] = 1.0  # a diagonal one token wide
    pooled = pool_max(x, thumb_edges(100, 32))
    assert pooled.shape == (1, 32, 32)
    np.testing.assert_array_equal(np.diag(pooled[0]), np.ones(32))
    # column 0 holds position 0 alone: the sink, not mixed with its neighbours
    np.testing.assert_array_equal(pooled[0, 1:, 0], np.full(31, 0.5))
    # against a direct max over each block
    rng = np.random.default_rng(0)
    y = rng.random((2, 77, 77), dtype=np.float32)
    e = thumb_edges(77, 10)
    ref = np.array([[[y[h, e[r]:e[r + 1], e[c]:e[c + 1]].max() for c in range(10)] for r in range(10)] for h in range(2)])
    np.testing.assert_array_equal(pool_max(y, e), ref)


def test_float16_store_under_the_cap_keeps_every_layer(fake):
    w = attention(fake, "a b c d")
    assert w.patterns.dtype == np.float16 and w.patterns.shape == (3, 2, 5, 5)
    assert w.note == "" and w.kernel_bytes == w.patterns.nbytes + 3 * 2 * 5 * 5 * 4  # + float32 thumbs
    assert w.last_run_ms > 0
    np.testing.assert_allclose(w.layer_patterns(2), causal_patterns(2, 5, seed=2), rtol=2**-11, atol=1e-7)


def test_over_the_cap_keeps_one_layer_and_reruns_on_switch(fake):
    prompt = " ".join(["w"] * 299)  # 300 tokens: 3 layers x 2 heads x 300^2 x 2 B = 1.03 MiB
    full = attention(fake, prompt, max_tokens=400)
    capped = attention(fake, prompt, max_tokens=400, max_pattern_mb=0.5)
    assert "over max_pattern_mb=0.5" in capped.note and "reruns the model" in capped.note
    assert capped.kernel_bytes < 0.5 * full.kernel_bytes
    assert capped.thumbs == full.thumbs and capped.pattern == full.pattern
    with pytest.raises(MemoryError, match="max_pattern_mb"):
        capped.patterns
    runs = fake.runs
    capped.set_state({"layer": 2})
    assert capped.error == "" and fake.runs == runs + 1
    full.layer = 2
    assert capped.pattern == full.pattern
    np.testing.assert_array_equal(capped.layer_patterns(2), full.layer_patterns(2))
    assert fake.runs == runs + 1  # layer 2 is the one kept now
    # one layer over the cap: a clear error up front
    with pytest.raises(MemoryError, match="one layer"):
        attention(fake, prompt, max_tokens=400, max_pattern_mb=0.1)


def test_over_the_cap_from_a_tensor_slices_it():
    pat = torch.from_numpy(np.stack([causal_patterns(2, 200, seed=s) for s in range(4)]))
    w = attention(pat, [f"t{i}" for i in range(200)], max_pattern_mb=0.5)
    assert "slices it from the tensor" in w.note
    w.layer = 3
    np.testing.assert_allclose(codec.decode(w.pattern), pat[3].numpy(), atol=U8_TOL)


def test_view_options_are_browser_writable_and_validated(fake):
    w = attention(fake, "a b", normalize="head", hide_sink=True, gamma=0.5)
    assert (w.normalize, w.hide_sink, w.gamma) == ("head", True, 0.5)
    w.set_state({"normalize": "global", "hide_sink": False, "gamma": 1})
    assert w.error == "" and (w.normalize, w.hide_sink, w.gamma) == ("global", False, 1.0)
    for bad in ({"normalize": "layer"}, {"gamma": 0}, {"gamma": "1"}, {"hide_sink": 1}):
        w.set_state(bad)
        assert w.error and (w.normalize, w.hide_sink, w.gamma) == ("global", False, 1.0)
    with pytest.raises(InvalidOptionError):
        attention(fake, "a", normalize="layer")
    with pytest.raises(OutOfRangeError):
        attention(fake, "a", gamma=0)


def test_model_without_tokenizer_shows_ids_read_only():
    models = pytest.importorskip("tests.models")
    model = models.tiny_model("gpt2")  # no tokenizer
    w = attention(model, torch.tensor([[5, 7, 9]]))
    assert w.tokens == ["<5>", "<7>", "<9>"] and not w.editable and w.prompt == ""
    w.set_state({"prompt": "hello"})
    assert "cannot be set from the browser" in w.error and w.tokens == ["<5>", "<7>", "<9>"]
    w.set_tokens(torch.tensor([1, 2]))
    assert w.tokens == ["<1>", "<2>"] and w.pattern["shape"] == [4, 2, 2]


def test_a_layer_too_big_to_send_whole_travels_head_by_head(fake):
    prompt = " ".join(["w"] * 99)  # 100 tokens: 2 heads x 100^2 B = 19.5 KiB per layer
    w = attention(fake, prompt, layer_payload_mb=0.015)
    assert w.pattern["heads"] == [0] and w.pattern["shape"] == [1, 100, 100]
    full = causal_patterns(2, 100, seed=0)
    np.testing.assert_allclose(codec.decode(w.pattern)[0], full[0], atol=U8_TOL)
    w.set_state({"head": 1})  # locking head 1 sends it
    assert w.error == "" and w.pattern["heads"] == [1] and w.pattern["layer"] == 0
    np.testing.assert_allclose(codec.decode(w.pattern)[0], full[1], atol=U8_TOL)
    w.select(2, 1)  # another layer keeps the locked head
    assert w.pattern["heads"] == [1] and w.pattern["layer"] == 2
    np.testing.assert_allclose(codec.decode(w.pattern)[0], causal_patterns(2, 100, seed=2)[1], atol=U8_TOL)
    w.head = None  # unlocked: the browser shows the first head
    assert w.pattern["heads"] == [0]
    assert attention(fake, prompt).pattern["heads"] == [0, 1]  # small layers travel whole

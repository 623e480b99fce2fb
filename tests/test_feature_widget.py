"""The SAE feature dashboard (lenswidget/widgets/feature/): its bounded per-feature statistics
against a brute-force pass, the shown contexts, progress, browser messages and bad input.

A tiny random HookedSAETransformer and random SAEs; the reference activations come from
``sae.encode`` of a plain ``run_with_cache`` (not the dashboard's path through
``run_with_cache_with_saes``).
"""

from __future__ import annotations

import math

import pytest
import torch

from lenswidget import SAE, HookedSAETransformer
from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, TokenizationError
from lenswidget.widgets import codec
from lenswidget.widgets.feature import feature
from lenswidget.widgets.feature.stats import BINS_PER_DECADE, LOG_LO, bin_of
from tests.models import tiny_cfg, tiny_model, tiny_tokenizer

HOOK = "blocks.1.hook_resid_post"
CORPUS = ["the cat sat on the mat and the dog sat on the log " * 3, "hello world", "a b c d e f g h",
          "one two three four five six seven eight nine ten", "the bird sang in the tree",
          "a dog and a cat met a bird", "ten nine eight seven", "the mat, the log and the tree"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HookedSAETransformer(tiny_cfg("gpt2", n_layers=3, n_ctx=256), tokenizer=tiny_tokenizer())


@pytest.fixture(scope="module")
def sae():
    s = SAE.from_dict({"d_in": 32, "d_sae": 48, "metadata": {"hook_name": HOOK}}, seed=1)
    with torch.no_grad():
        s.b_enc.fill_(-0.2)  # sparser
        s.b_enc[40:] = -1e3  # and some features never fire on the corpus
    return s


@pytest.fixture(scope="module")
def dash(model, sae):
    return feature(model, sae, 3, CORPUS, top_k=4, ctx_len=12, batch_size=5, compute=True)


def reference(model, sae, dash):
    """acts [n_windows, max_len, d_sae] and the counting mask, by a plain run_with_cache + sae.encode
    of each window on its own (no batching, no padding)."""
    w = dash._windows
    width = int(w.lengths.max())
    acts = torch.zeros((w.n, width, sae.cfg.d_sae))
    valid = torch.zeros((w.n, width), dtype=torch.bool)
    with torch.no_grad():
        for i, text in enumerate(w.texts):
            _, cache = model.run_with_cache(text, names_filter=[HOOK])
            a = sae.encode(cache[HOOK])[0]
            acts[i, : a.shape[0]] = a
            valid[i, w.first: a.shape[0]] = True
    return acts, valid


def test_top_contexts_and_histogram_match_a_brute_force_pass(model, sae, dash):
    acts, valid = reference(model, sae, dash)
    masked = acts.masked_fill(~valid[..., None], -math.inf)
    best = masked.max(dim=1).values  # [n_windows, d_sae]
    top = dash._scan.top
    assert top.values.shape == (48, 4)  # bounded: d_sae x k, whatever the corpus size
    for f in range(48):
        got = top.of(f)
        want = sorted(((float(v), w) for w, v in enumerate(best[:, f].tolist()) if v > 0), reverse=True)[:4]
        assert [round(v, 4) for v, _, _ in got] == [round(v, 4) for v, _ in want]
        for v, w, p in got:  # each kept window really reaches that value, at that (non-BOS) position
            assert float(best[w, f]) == pytest.approx(v, rel=1e-5) and float(acts[w, p, f]) == pytest.approx(v, rel=1e-5)
            assert bool(valid[w, p])
    flat = acts[valid]  # [n_tokens, d_sae]
    hist = dash._scan.hist
    assert hist.total == int(valid.sum())
    assert torch.equal(hist.fired, (flat > 0).sum(0))
    for f in (0, 3, 17):
        on = flat[:, f][flat[:, f] > 0]
        bins = torch.floor((torch.log10(on.double()) - LOG_LO) * BINS_PER_DECADE).long()
        want = torch.bincount(bins, minlength=hist.n_bins)
        assert torch.equal(hist.counts[f], want)
        assert torch.equal(bin_of(on), bins)
    assert any(hist.fired == 0) and any(hist.fired > 0)  # both kinds of features in this test


def test_shown_contexts_recompute_the_feature_on_every_token(model, sae, dash):
    acts, valid = reference(model, sae, dash)
    ctx = dash.contexts_data
    assert 1 <= len(ctx) <= 4 and [c["value"] for c in ctx] == sorted((c["value"] for c in ctx), reverse=True)
    summary = dash.summary
    assert ctx[0]["value"] == pytest.approx(summary["max"], rel=1e-5)
    for c in ctx:
        assert c["acts"][c["top"]] == pytest.approx(c["value"], rel=1e-4)
        assert max(c["acts"]) == pytest.approx(c["value"], rel=1e-4)
        assert c["tokens"][0] != model.tokenizer.bos_token  # BOS is never shown
        # the shown tokens are the window's, and the window is a piece of its corpus string
        text = dash._windows.texts[c["window"]]
        assert "".join(c["tokens"]) in text and text in CORPUS[c["doc"]]
    payload = dash.contexts[0]
    assert codec.decode(payload["acts"]).tolist() == pytest.approx(ctx[0]["acts"])
    short = [c for c in ctx if dash._windows.lengths[c["window"]] <= 12 and dash._windows.offset[c["window"]] == 0]
    for c in short:  # a whole string: `start` counts its tokens
        doc_tokens = model.to_str_tokens(CORPUS[c["doc"]], prepend_bos=False)
        assert c["tokens"] == doc_tokens[c["start"]: c["start"] + len(c["tokens"])]
    h = dash.histogram_data
    assert int(h["counts"].sum()) == summary["fired"] == int(dash._scan.hist.fired[3])
    assert summary["frequency"] == pytest.approx(summary["fired"] / summary["total"])


def test_switching_features_needs_no_new_pass_and_updates_effects(model, sae, dash):
    from lenswidget.sae.attribution import feature_logit_effects

    scan = dash._scan
    f = int(dash._scan.hist.fired.argmax())
    dash.idx = f
    assert dash._scan is scan
    assert dash.summary["fired"] == int(scan.hist.fired[f])
    want = feature_logit_effects(model, sae, f, k=10)
    assert dash.effects["promoted"] == [t for t, _ in want["promoted"]]
    assert codec.decode(dash.effects["suppressed_values"]).tolist() == pytest.approx([v for _, v in want["suppressed"]], rel=1e-5)
    dead = int((scan.hist.fired == 0).nonzero()[0])
    dash.show(dead)
    assert dash.contexts == [] and dash.summary["fired"] == 0
    assert dash.top_features(3, "max")[0] == int(scan.hist.max.argmax())
    dash.idx = 3


def test_the_browser_starts_the_pass_and_hears_its_progress(model, sae):
    d = feature(model, sae, 0, CORPUS, top_k=2, ctx_len=12, batch_size=4)
    assert d.status == "pending" and d.contexts == []
    sent = []
    d.send = lambda content, buffers=None: sent.append(content)  # what reaches the browser at once
    d._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "compute"}}}})
    assert d.error == "" and d.status == "done"
    done = [m["done"] for m in sent if m.get("type") == "progress"]
    assert done[0] == 0 and done[-1] == d.n_windows and done == sorted(done)
    assert d.progress == [d.n_windows, d.n_windows]
    scan = d._scan
    d._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "compute"}}}})
    assert d._scan is scan  # a second view does not rescan


def test_browser_idx_is_validated(model, sae, dash):
    before = dash.idx
    dash._handle_msg({"content": {"data": {"method": "update", "state": {"idx": 48}}}})
    assert dash.idx == before and "0..47" in dash.error
    dash._handle_msg({"content": {"data": {"method": "update", "state": {"idx": 5}}}})
    assert dash.idx == 5 and dash.error == ""
    dash.idx = 3


def test_bad_input_is_refused_with_a_clear_error(model, sae):
    with pytest.raises(OutOfRangeError, match="feature index"):
        feature(model, sae, 48, CORPUS)
    with pytest.raises(InvalidOptionError, match="corpus"):
        feature(model, sae, 0, [])
    with pytest.raises(InvalidOptionError, match="a list holding a int"):
        feature(model, sae, 0, ["ok", 3])
    with pytest.raises(TokenizationError, match="no tokens"):
        feature(model, sae, 0, ["", ""])
    with pytest.raises(OutOfRangeError, match="ctx_len"):
        feature(model, sae, 0, CORPUS, ctx_len=1)
    plain = tiny_model("gpt2", tokenizer=True, n_layers=3)
    with pytest.raises(TypeError, match="HookedSAETransformer"):
        feature(plain, sae, 0, CORPUS)
    wide = SAE.from_dict({"d_in": 16, "d_sae": 8, "metadata": {"hook_name": HOOK}}, seed=0)
    with pytest.raises(ShapeMismatchError, match="d_in=16"):
        feature(model, wide, 0, CORPUS)
    assert not model.acts_to_saes  # nothing left attached


def test_windows_cut_long_strings_and_keep_bos_out(model, sae):
    text = "the cat sat on the mat " * 8
    d = feature(model, sae, 0, [text, "hi", "hi"], ctx_len=8)  # the repeated string is one window
    w = d._windows
    ids = model.to_tokens(text, prepend_bos=False)[0]
    n = len(ids)
    assert w.first == 1 and w.doc.tolist() == [0] * math.ceil(n / 7) + [1]
    assert w.offset.tolist()[:-1] == list(range(0, n, 7))
    for piece, start in zip(w.texts[:-1], w.offset.tolist()):
        assert piece == model.tokenizer.decode(ids[start:start + 7].tolist())
    assert w.texts[-1] == "hi" and int(w.lengths.max()) <= 8 + 2  # BOS + 7 tokens (re-tokenising may add one)
    assert w.n_tokens == int((w.lengths - 1).sum())

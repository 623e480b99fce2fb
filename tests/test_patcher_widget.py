"""Drag-to-patch widget: the metric after any patch set equals an independent run_with_hooks
forward, the overlay equals the patching module's sweeps, "Copy as code" reproduces the
metric, and bad input (messages, prompts) is rejected without changing anything."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import torch
import traitlets

from lenswidget import patching
from lenswidget.errors import InvalidOptionError, OutOfRangeError, ShapeMismatchError, TokenizationError
from lenswidget.widgets import codec
from lenswidget.widgets.patcher import Patcher, patcher
from tests.models import tiny_model



@pytest.fixture(autouse=True, scope="module")
def _no_grad():
    """No autograd in this module, restored afterwards (a bare module-level switch leaked into later modules)."""
    before = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    yield
    torch.set_grad_enabled(before)

CLEAN = "The cat sat on the mat. The dog"
CORRUPTED = "The dog sat on the log. The cat"
POSITION_ACTS = ("resid_pre", "resid_mid", "attn_out", "mlp_out")


# -- an independent reference: the seed's hooks, one position / head at a time -------------------
def hook_name(act: str, layer: int) -> str:
    return f"blocks.{layer}.hook_{act}" if act in POSITION_ACTS else f"blocks.{layer}.attn.hook_{act}"


def reference_logits(model, clean_tokens, corrupted_tokens, patches):
    """Patched logits via model.run_with_hooks, written without the widget's code."""
    _, clean_cache = model.run_with_cache(clean_tokens)
    _, corr_cache = model.run_with_cache(corrupted_tokens)
    hooks = []
    for p in patches:
        if not p["enabled"]:
            continue
        for layer in p["layers"]:
            name = hook_name(p["act"], layer)

            def hook(act, hook, p=p, name=name):
                n_pos = act.shape[2] if p["act"] == "pattern" else act.shape[1]
                positions = range(n_pos) if p["positions"] is None else p["positions"]
                for q in positions:
                    for h in p["heads"] if p["heads"] is not None else [None]:
                        if p["act"] == "pattern":
                            where = (slice(None), h, q)
                        elif h is None:
                            where = (slice(None), q)
                        else:
                            where = (slice(None), q, h)
                        if p["mode"] == "clean":
                            act[where] = clean_cache[name][where]
                        elif p["mode"] == "zero":
                            act[where] = 0.0
                        else:  # mean over batch and positions of the corrupted run
                            mean = corr_cache[name].mean(dim=(0, 1), keepdim=True).expand_as(act)
                            act[where] = mean[where]
                return act

            hooks.append((name, hook))
    return model.run_with_hooks(corrupted_tokens, fwd_hooks=hooks)


def reference_metric(model, w, patches=None):
    """The seed's normalised logit difference of the reference forward."""
    runs = w.runs
    logits = reference_logits(model, runs.clean_tokens, runs.corrupted_tokens, w.patches if patches is None else patches)
    answers = runs.answers  # [batch, 2, n]

    def ld(lg):
        final = lg[:, -1]
        return (final.gather(-1, answers[:, 0]) - final.gather(-1, answers[:, 1])).mean()

    clean_logits = model(runs.clean_tokens)
    corr_logits = model(runs.corrupted_tokens)
    return float((ld(logits) - ld(corr_logits)) / (ld(clean_logits) - ld(corr_logits)))


def message(w, **content):
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}}})


def snapshot(w):
    return (w.patches, w.metric_value, w.act, w.head_position, w.prompt_index, w.ablation, w.code,
            w.clean_str_tokens, w.corrupted_str_tokens, [t["id"] for t in w.top_patched])


def random_patch(rng, w):
    d = w.runs.dims
    act = rng.choice(w.acts)
    mode = rng.choice(["clean", "clean", "zero", "mean"])
    if act == "pattern" and mode == "mean":
        mode = "zero"
    layers = sorted(rng.sample(range(d.n_layers), rng.randint(1, d.n_layers)))
    if act in POSITION_ACTS:
        positions = None if rng.random() < 0.15 else sorted(rng.sample(range(d.n_pos), rng.randint(1, 3)))
        return dict(act=act, layers=layers, positions=positions, mode=mode)
    heads = sorted(rng.sample(range(d.cols(act)), rng.randint(1, d.cols(act))))
    positions = None if rng.random() < 0.5 else sorted(rng.sample(range(d.n_pos), rng.randint(1, 2)))
    return dict(act=act, layers=layers, positions=positions, heads=heads, mode=mode)


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma2"])
def model(request):
    return tiny_model(request.param, tokenizer=True, n_layers=3)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2", tokenizer=True, n_layers=3)


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama", tokenizer=True, n_layers=3)  # grouped-query attention: 2 KV heads


# -- the metric equals an independent run_with_hooks forward -------------------------------------
def test_initial_state_is_the_corrupted_run(gpt2):
    w = patcher(gpt2, CLEAN, CORRUPTED)
    assert isinstance(w, Patcher)
    assert (w.metric_value, w.metric_clean, w.metric_corrupted) == (0.0, 1.0, 0.0)
    assert w.patches == [] and w.metric_before is None and w.sweep_result is None
    assert w.dims == {"n_layers": 3, "n_pos": 14, "n_heads": 4, "n_kv_heads": 4, "batch": 1}
    assert w.clean_str_tokens == [str(s) for s in gpt2.to_str_tokens(CLEAN)]
    assert w.token_differs == [a != b for a, b in zip(gpt2.to_tokens(CLEAN)[0].tolist(), gpt2.to_tokens(CORRUPTED)[0].tolist())]
    assert w.top_patched == w.top_corrupted
    assert [t["id"] for t in w.top_clean][0] == int(gpt2(CLEAN)[0, -1].argmax())
    assert w.editable and w.clean_prompt == CLEAN and w.acts[:4] == list(POSITION_ACTS)


def test_random_compositions_match_run_with_hooks(model):
    """Several random patch sets (ablations, heads, rectangles, toggled-off chips)."""
    w = patcher(model, CLEAN, CORRUPTED)
    rng = random.Random(1234)
    for trial in range(12):
        w.clear_patches()
        for _ in range(rng.randint(1, 4)):
            w.add_patch(**random_patch(rng, w))
        for chip in list(w.patches):
            if rng.random() < 0.25:
                w.toggle_patch(chip["id"])
        want = reference_metric(model, w)
        assert w.metric_value == pytest.approx(want, abs=1e-4), (trial, [p["label"] for p in w.patches])
        ref = reference_logits(model, w.runs.clean_tokens, w.runs.corrupted_tokens, w.patches)
        assert torch.allclose(w.patched_logits(), ref, atol=1e-4)
        top = [t["id"] for t in w.top_patched]
        assert top[0] == int(ref[0, -1].argmax())


def test_resid_patch_at_the_last_position_of_the_last_layer(gpt2):
    w = patcher(gpt2, CLEAN, CORRUPTED)
    pid = w.add_patch("resid_pre", layers=-1, positions=-1)
    assert w.patches == [{"id": pid, "act": "resid_pre", "layers": [2], "positions": [13], "heads": None,
                          "mode": "clean", "enabled": True, "label": "resid_pre · L2 · pos 13"}]
    assert w.metric_value == pytest.approx(reference_metric(gpt2, w), abs=1e-4)
    assert w.metric_before == 0.0
    value = w.metric_value
    w.toggle_patch(pid, False)
    assert w.metric_value == 0.0 and w.metric_before == pytest.approx(value)
    w.toggle_patch(pid)
    assert w.metric_value == pytest.approx(value, abs=1e-6)
    w.remove_patch(pid)
    assert w.metric_value == 0.0 and w.patches == []


def test_patching_everything_clean_gives_the_clean_run(llama):
    w = patcher(llama, CLEAN, CORRUPTED)
    w.add_patch("resid_pre", layers=0, positions=None)
    assert w.metric_value == pytest.approx(1.0, abs=1e-5)
    assert [t["id"] for t in w.top_patched] == [t["id"] for t in w.top_clean]


def test_batches_multi_token_answers_and_custom_metrics(gpt2):
    clean = ["The cat sat on the mat.", "The dog sat on the log."]
    corrupted = ["The dog sat on the log.", "The cat sat on the mat."]
    w = patcher(gpt2, clean, corrupted)  # answers: each clean run's top token vs the corrupted run's
    assert w.runs.answers.shape == (2, 2, 1)
    w.add_patch("z", layers=[1, 2], heads=[0, 3], positions=None)
    w.add_patch("mlp_out", layers=1, positions=[3, 4, 5], mode="mean")
    assert w.metric_value == pytest.approx(reference_metric(gpt2, w), abs=1e-4)
    w.prompt_index = 1
    assert w.clean_str_tokens == [str(s) for s in gpt2.to_str_tokens(clean[1])]
    ref = reference_logits(gpt2, w.runs.clean_tokens, w.runs.corrupted_tokens, w.patches)
    assert [t["id"] for t in w.top_patched][0] == int(ref[1, -1].argmax())

    def metric(logits):
        return logits[:, -1, 5].mean() - logits[:, -1, 6].mean()

    c = patcher(gpt2, CLEAN, CORRUPTED, metric=metric)
    c.add_patch("attn_out", layers=[0, 1], positions=range(2, 6))
    ref = reference_logits(gpt2, c.runs.clean_tokens, c.runs.corrupted_tokens, c.patches)
    assert c.metric_value == pytest.approx(float(metric(ref)), abs=1e-4)
    assert c.metric_corrupted == pytest.approx(float(metric(gpt2(CORRUPTED))), abs=1e-5)
    assert c.metric_name == "metric"


def test_multi_token_answers_follow_the_seed(gpt2):
    w = patcher(gpt2, CLEAN, CORRUPTED, answer=" the mat", incorrect=" the log")
    assert w.runs.answers.shape[2] == len(gpt2.to_tokens(" the mat", prepend_bos=False)[0])
    w.add_patch("resid_mid", layers=1, positions=[2, 3])
    assert w.metric_value == pytest.approx(reference_metric(gpt2, w), abs=1e-4)
    with pytest.raises(TokenizationError, match="same number of tokens"):
        patcher(gpt2, CLEAN, CORRUPTED, answer=" the mat", incorrect=" he")


# -- "Copy as code" ---------------------------------------------------------------------------------
def test_generated_code_reproduces_the_metric(model):
    w = patcher(model, CLEAN, CORRUPTED)
    rng = random.Random(7)
    for trial in range(4):
        w.clear_patches()
        for _ in range(3):
            w.add_patch(**random_patch(rng, w))
        w.toggle_patch(w.patches[0]["id"], False)
        namespace = {"model": model}
        exec(w.code, namespace)  # noqa: S102 - the point of the feature
        assert namespace["metric_value"] == pytest.approx(w.metric_value, abs=1e-4)
        assert "fwd_hooks" in namespace and len(namespace["fwd_hooks"]) == sum(len(p["layers"]) for p in w.patches[1:])


def test_generated_code_with_a_custom_metric_and_untrusted_text(gpt2):
    def metric(logits):
        return logits[:, -1, 3].mean()

    evil = "The cat'\n__import__('os').system('false') #"
    clean = evil
    corrupted = "The dog'\n__import__('os').system('false') #"
    w = patcher(gpt2, clean, corrupted, metric=metric)
    w.add_patch("v", layers=1, heads=[1], positions=[2])
    ns = {"model": gpt2, "metric": metric}
    exec(w.code, ns)  # noqa: S102
    assert ns["metric_value"] == pytest.approx(w.metric_value, abs=1e-4)
    assert "\n__import__" not in w.code  # the prompt only appears as an escaped repr


# -- sweeps ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["resid_pre", "attn_out", "z", "k", "pattern"])
def test_sweep_overlay_equals_the_patching_module(llama, act):
    w = patcher(llama, CLEAN, CORRUPTED, act=act)
    result = w.run_sweep()
    runs = w.runs
    metric = runs.metric
    tokens, cache = runs.corrupted_tokens, runs.clean_cache
    expected = {
        "resid_pre": lambda: patching.get_act_patch_resid_pre(llama, tokens, cache, metric, verbose=False),
        "attn_out": lambda: patching.get_act_patch_attn_out(llama, tokens, cache, metric, verbose=False),
        "z": lambda: patching.get_act_patch_attn_head_out_all_pos(llama, tokens, cache, metric, verbose=False),
        "k": lambda: patching.get_act_patch_attn_head_k_all_pos(llama, tokens, cache, metric, verbose=False),
        "pattern": lambda: patching.get_act_patch_attn_head_pattern_all_pos(llama, tokens, cache, metric, verbose=False),
    }[act]()
    assert torch.allclose(result, expected.cpu(), atol=1e-6)
    assert w.sweep_state == "done" and w.sweep["act"] == act and w.sweep["complete"] and w.sweep["kind"] == "exact"
    np.testing.assert_allclose(codec.decode(w.sweep), expected.cpu().numpy(), atol=1e-6)
    assert w.sweep_progress == [expected.numel(), expected.numel()]


@pytest.mark.parametrize("act", ["z", "v", "pattern"])
def test_sweep_at_one_position_equals_the_by_pos_sweeps(llama, act):
    w = patcher(llama, CLEAN, CORRUPTED, act=act)
    w.head_position = 12
    result = w.run_sweep()
    runs = w.runs
    args = (llama, runs.corrupted_tokens, runs.clean_cache, runs.metric)
    if act == "pattern":
        expected = patching.get_act_patch_attn_head_pattern_by_pos(*args, verbose=False)[:, :, 12]
    else:
        fn = {"z": patching.get_act_patch_attn_head_out_by_pos, "v": patching.get_act_patch_attn_head_v_by_pos}[act]
        expected = fn(*args, verbose=False)[:, 12, :]
    assert torch.allclose(result, expected.cpu(), atol=1e-6)
    assert w.sweep["position"] == 12
    w.head_position = None  # another view: its own (empty) overlay
    assert w.sweep["act"] == "" and w.sweep_result is None
    w.head_position = 12
    assert torch.equal(w.sweep_result, result)


def test_sweep_values_are_the_metric_of_single_drops(gpt2):
    w = patcher(gpt2, CLEAN, CORRUPTED, act="mlp_out")
    sweep = w.run_sweep()
    for layer, pos in [(0, 2), (1, 12), (2, 13)]:
        w.clear_patches()
        w.add_patch("mlp_out", layers=layer, positions=pos)
        assert w.metric_value == pytest.approx(float(sweep[layer, pos]), abs=1e-4)


def test_attribution_estimate(gpt2):
    """The "Estimate" overlay: patching.attribution's estimate, checked against autograd here."""
    w = patcher(gpt2, CLEAN, CORRUPTED)
    est = w.run_sweep(kind="attribution")
    assert est.shape == (3, 14) and w.sweep["kind"] == "attribution"
    runs = w.runs
    with torch.enable_grad():  # independent: d metric / d resid_pre[l], starting the model at layer l
        for layer in range(3):
            x = runs.corrupted_cache[f"blocks.{layer}.hook_resid_pre"].clone().requires_grad_(True)
            value = runs.metric(gpt2(x, start_at_layer=layer))
            (grad,) = torch.autograd.grad(value, x)
            delta = runs.clean_cache[f"blocks.{layer}.hook_resid_pre"] - runs.corrupted_cache[f"blocks.{layer}.hook_resid_pre"]
            assert torch.allclose(est[layer], (delta * grad).sum((0, 2)), atol=1e-5)
    # positions where clean and corrupted agree have no effect, exactly and in the estimate
    exact = w.run_sweep()
    same = [i for i, d in enumerate(w.token_differs) if not d][:2]
    assert torch.allclose(est[0, same], torch.zeros(len(same)), atol=1e-5)
    assert torch.allclose(exact[0, same], torch.zeros(len(same)), atol=1e-6)


def test_attribution_estimate_at_one_head_position(llama):
    w = patcher(llama, CLEAN, CORRUPTED, act="v")
    w.head_position = 12
    est = w.run_sweep(kind="attribution")  # [layer, key/value head]
    assert est.shape == (3, 2) and w.sweep["position"] == 12
    runs = w.runs
    for layer in range(3):
        name = f"blocks.{layer}.attn.hook_v"
        held = {}

        def leaf(act, hook):
            held["x"] = act.detach().requires_grad_(True)
            return held["x"]

        with torch.enable_grad():
            value = runs.metric(llama.run_with_hooks(runs.corrupted_tokens, fwd_hooks=[(name, leaf)]))
            (grad,) = torch.autograd.grad(value, held["x"])
        delta = runs.clean_cache[name] - held["x"].detach()
        assert torch.allclose(est[layer], float(value) + (delta * grad)[:, 12].sum((0, 2)), atol=1e-5)


def test_background_sweep_can_be_cancelled_and_drops_wait_for_it(gpt2):
    calls = {"n": 0}
    holder = {}

    def metric(logits):  # called once per patched run, in the sweep's thread
        calls["n"] += 1
        if calls["n"] == 3:
            message(holder["w"], type="add_patch", act="resid_pre", layers=[2, 2], positions=[13, 13], heads=None, mode="clean")
            assert holder["w"].metric_pending  # the model is busy: the drop waits for the sweep
            message(holder["w"], type="cancel_sweep")
        return logits[:, -1, 3].mean() - logits[:, -1, 4].mean()

    w = patcher(gpt2, CLEAN, CORRUPTED, metric=metric, sweep_options={"max_batch": 1, "method": "hooks"})
    holder["w"] = w
    message(w, type="sweep", kind="exact")
    assert w.wait_sweep(timeout=120)
    assert w.sweep_state == "cancelled" and w.error == ""
    partial = codec.decode(w.sweep)
    assert partial.shape == (3, 14) and np.isnan(partial).any() and not np.isnan(partial).all()
    assert w.sweep["complete"] is False
    assert w.sweep_progress[0] < w.sweep_progress[1] == 42
    assert not w.metric_pending and len(w.patches) == 1
    ref = reference_logits(gpt2, w.runs.clean_tokens, w.runs.corrupted_tokens, w.patches)
    assert w.metric_value == pytest.approx(float(metric(ref)), abs=1e-4)
    with pytest.raises(InvalidOptionError):  # one sweep at a time
        w._model_lock.acquire()
        try:
            w.run_sweep()
        finally:
            w._model_lock.release()


def test_background_sweep_completes(gpt2):
    w = patcher(gpt2, CLEAN, CORRUPTED)
    w.run_sweep(act="resid_mid", block=False)
    assert w.wait_sweep(timeout=120)
    w.act = "resid_mid"
    assert w.sweep_state == "done" and w.sweep_result is not None
    runs = w.runs
    expected = patching.get_act_patch_resid_mid(gpt2, runs.corrupted_tokens, runs.clean_cache, runs.metric, verbose=False)
    assert torch.allclose(w.sweep_result, expected, atol=1e-6)


# -- invalid input is rejected, state unchanged -------------------------------------------------------
def test_prompts_of_different_lengths_say_how_to_align_them(gpt2):
    with pytest.raises(ShapeMismatchError) as info:
        patcher(gpt2, CLEAN, "The dog sat on the log")
    text = str(info.value)
    assert "same length" in text and "pad" in text
    assert repr([str(s) for s in gpt2.to_str_tokens(CLEAN)]) in text
    assert repr([str(s) for s in gpt2.to_str_tokens("The dog sat on the log")]) in text
    with pytest.raises(ShapeMismatchError, match="1 clean prompt"):
        patcher(gpt2, CLEAN, [CORRUPTED, CORRUPTED])
    with pytest.raises(ShapeMismatchError, match="different token lengths"):
        patcher(gpt2, [CLEAN, "The cat"], [CORRUPTED, "The dog"])
    with pytest.raises(ShapeMismatchError):
        patcher(gpt2, gpt2.to_tokens(CLEAN), gpt2.to_tokens(CLEAN)[:, :-1])


def test_browser_prompt_edits(gpt2):
    w = patcher(gpt2, CLEAN, CORRUPTED)
    w.add_patch("resid_pre", layers=2, positions=13)
    w.add_patch("resid_pre", layers=1, positions=3)
    before = snapshot(w)
    message(w, type="set_prompts", clean=CLEAN, corrupted="The dog sat on the log")
    assert snapshot(w) == before
    assert "same length" in w.error and "corrupted (" in w.error and w.revision > 0
    message(w, type="set_prompts", clean="The cat sat on", corrupted="The dog sat on")
    assert w.error == "" and w.clean_prompt == "The cat sat on"
    assert [p["positions"] for p in w.patches] == [[3]]  # the chip at position 13 no longer fits
    assert "removed chips" in w.notice
    assert w.metric_value == pytest.approx(reference_metric(gpt2, w), abs=1e-4)
    batch = patcher(gpt2, [CLEAN, CORRUPTED], [CORRUPTED, CLEAN])
    assert not batch.editable
    before = snapshot(batch)
    message(batch, type="set_prompts", clean="a", corrupted="b")
    assert snapshot(batch) == before and "set_prompts" in batch.error


def test_invalid_drops_are_rejected_without_changing_state(llama):
    w = patcher(llama, CLEAN, CORRUPTED)
    w.add_patch("z", layers=1, heads=0)
    before = snapshot(w)
    bad = [
        dict(type="add_patch", act="resid_pre", layers=[0, 3], positions=[0, 0], heads=None, mode="clean"),  # layer 3
        dict(type="add_patch", act="resid_pre", layers=[0, 0], positions=[13, 14], heads=None, mode="clean"),  # pos 14
        dict(type="add_patch", act="resid_pre", layers=[1, 0], positions=[0, 0], heads=None, mode="clean"),  # reversed
        dict(type="add_patch", act="k", layers=[0, 0], positions=None, heads=[0, 2], mode="clean"),  # 2 KV heads
        dict(type="add_patch", act="z", layers=[0, 0], positions=None, heads=[0, 4], mode="clean"),  # 4 heads
        dict(type="add_patch", act="z", layers=[0, 0], positions=None, heads=None, mode="clean"),  # heads missing
        dict(type="add_patch", act="resid_pre", layers=[0, 0], positions=[0, 0], heads=[0, 0], mode="clean"),
        dict(type="add_patch", act="pattern", layers=[0, 0], positions=None, heads=[0, 0], mode="mean"),
        dict(type="add_patch", act="hook_resid_pre", layers=[0, 0], positions=[0, 0], heads=None, mode="clean"),
        dict(type="add_patch", act="resid_pre", layers=[0, 0], positions=[0, 0], heads=None, mode="noise"),
        dict(type="add_patch", act="resid_pre", layers=[0.0, 0], positions=[0, 0], heads=None, mode="clean"),
        dict(type="add_patch", act="resid_pre", layers=[0, 0], positions=[0, 0], heads=None, mode="clean", x=1),
        dict(type="add_patch", act="resid_pre", layers=[0, 0], heads=None, mode="clean"),
        dict(type="remove_patch", id=999),
        dict(type="toggle_patch", id=999, enabled=False),
        dict(type="toggle_patch", id=w.patches[0]["id"], enabled="no"),
        dict(type="sweep", kind="fast"),
        dict(type="nope"),
    ]
    for content in bad:
        message(w, **content)
        assert w.error, content
        assert snapshot(w) == before, content
    w._handle_msg({"content": {"data": {"method": "update", "state": {"act": "embed"}}}})
    w._handle_msg({"content": {"data": {"method": "update", "state": {"head_position": 14}}}})
    w._handle_msg({"content": {"data": {"method": "update", "state": {"prompt_index": 1}}}})
    w._handle_msg({"content": {"data": {"method": "update", "state": {"patches": []}}}})
    w._handle_msg({"content": {"data": {"method": "update", "state": {"ablation": "noise"}}}})
    assert snapshot(w) == before
    with pytest.raises(traitlets.TraitError, match="read-only"):
        w.patches = []
    with pytest.raises(OutOfRangeError):
        w.add_patch("resid_pre", layers=5, positions=0)
    with pytest.raises(InvalidOptionError):
        w.add_patch("pattern", layers=0, heads=0, mode="mean")
    assert snapshot(w) == before
    message(w, type="clear_error")
    assert w.error == ""


def test_valid_browser_messages(llama):
    w = patcher(llama, CLEAN, CORRUPTED)
    message(w, type="add_patch", act="v", layers=[0, 2], positions=[3, 3], heads=[1, 1], mode="mean")
    message(w, type="add_patch", act="resid_pre", layers=[1, 2], positions=[10, 13], heads=None, mode="zero")
    assert w.error == "" and [p["label"] for p in w.patches] == ["mean v · L0–2 · KV1 · pos 3", "zero resid_pre · L1–2 · pos 10–13"]
    assert w.metric_value == pytest.approx(reference_metric(llama, w), abs=1e-4)
    message(w, type="toggle_patch", id=w.patches[1]["id"], enabled=False)
    assert w.metric_value == pytest.approx(reference_metric(llama, w), abs=1e-4)
    message(w, type="remove_patch", id=w.patches[0]["id"])
    assert w.metric_value == 0.0 and len(w.patches) == 1
    message(w, type="clear_patches")
    assert w.patches == []
    w._handle_msg({"content": {"data": {"method": "update", "state": {"act": "pattern", "head_position": 5}}}})
    assert w.error == "" and (w.act, w.head_position) == ("pattern", 5)
    assert codec.decode(w.cell_diff).shape == (3, 4)
    message(w, type="sweep", kind="attribution")
    assert w.sweep["kind"] == "attribution" and w.sweep["position"] == 5


def _fuzz_value(rng):
    return rng.choice([
        None, True, False, 0, 1, -1, 2, 3, 13, 14, 99, 2**40, 0.5, float("nan"), "", "z", "resid_pre", "clean",
        "zero", "mean", "exact", [], [0], [0, 0], [0, 1], [1, 0], [0, 13], [2, 2], [-1, 0], [0, 99], ["a", 0],
        [0, 0, 0], {}, {"a": 1}, [[0, 1]],
    ])


def test_fuzzed_messages_never_escape_and_never_corrupt_state(gpt2):
    """Thousands of seeded random messages: each is either applied or rejected untouched."""
    w = patcher(gpt2, CLEAN, CORRUPTED)
    rng = random.Random(2024)
    kinds = ["add_patch", "remove_patch", "toggle_patch", "clear_patches", "cancel_sweep", "clear_error",
             "set_prompts", "sweep", "bogus", None, 7]
    fields = ["act", "layers", "positions", "heads", "mode", "id", "enabled", "kind", "clean", "corrupted", "extra"]
    accepted = 0
    for i in range(3000):
        r = rng.random()
        if r < 0.1:  # a malformed envelope or a state update
            envelope = rng.choice([
                None, {}, {"content": None}, {"content": {"data": None}}, {"content": {"data": {"method": "zap"}}},
                {"content": {"data": {"method": "update", "state": {rng.choice(["act", "head_position", "prompt_index",
                 "ablation", "patches", "metric_value", "code"]): _fuzz_value(rng)}}}},
                {"content": {"data": {"method": "update", "state": {"act": "z"}, "buffer_paths": [["x"]]}}},
            ])
            msg = envelope
        else:
            content = {"type": rng.choice(kinds)}
            if content["type"] == "add_patch" and rng.random() < 0.5:  # mostly well-formed
                p = random_patch(rng, w)
                span = lambda v: None if v is None else [min(v), max(v)]  # noqa: E731
                content.update(act=p["act"], layers=span(p["layers"]), positions=span(p["positions"]),
                               heads=span(p.get("heads")), mode=p["mode"])
            for f in rng.sample(fields, rng.randint(0, 4)):
                content[f] = _fuzz_value(rng)
            if content["type"] == "sweep" and content.get("kind") == "exact":
                content["kind"] = "bogus"  # keep the fuzz loop free of background threads
            msg = {"content": {"data": {"method": "custom", "content": content}}}
        before = snapshot(w)
        w.error = ""
        w._handle_msg(msg)  # must never raise
        if w.error:
            assert snapshot(w) == before, msg
        else:
            accepted += 1
        if len(w.patches) > 6:
            w.clear_patches()
        if i % 500 == 0:
            assert w.metric_value == pytest.approx(reference_metric(gpt2, w), abs=1e-4)
    assert accepted > 100
    assert w.metric_value == pytest.approx(reference_metric(gpt2, w), abs=1e-4)
    assert w.sweep_state in ("idle", "done")


def test_answer_errors(gpt2):
    with pytest.raises(InvalidOptionError, match="same logit difference"):
        patcher(gpt2, CLEAN, CLEAN)
    with pytest.raises(ShapeMismatchError, match="one per prompt"):
        patcher(gpt2, CLEAN, CORRUPTED, answer=[" the", " a"])
    with pytest.raises(InvalidOptionError):
        patcher(gpt2, CLEAN, CORRUPTED, act="embed")


def test_thread_safety_of_message_handling(gpt2):
    """A progress update from another thread while a message is handled does not interleave."""
    w = patcher(gpt2, CLEAN, CORRUPTED)
    done = threading.Event()

    def other():
        for _ in range(50):
            w._on_progress(1, 2)
        done.set()

    t = threading.Thread(target=other)
    t.start()
    for _ in range(10):
        message(w, type="add_patch", act="resid_pre", layers=[2, 2], positions=[13, 13], heads=None, mode="clean")
        message(w, type="clear_patches")
    t.join()
    assert done.is_set() and w.patches == [] and w.error == ""


# -- the real model -------------------------------------------------------------------------------
@pytest.mark.smollm2
def test_smollm2_drops_code_and_sweep(smollm2):
    clean = "When John and Mary went to the store, Mary gave a bottle to"
    corrupted = "When John and Mary went to the store, John gave a bottle to"
    w = patcher(smollm2, clean, corrupted, answer=" John", incorrect=" Mary")
    n = w.runs.n_pos
    w.add_patch("resid_pre", layers=20, positions=-1)
    w.add_patch("z", layers=[10, 11], heads=[1, 2], positions=None, mode="mean")
    w.add_patch("v", layers=5, heads=[0], positions=[n - 4])
    w.add_patch("pattern", layers=15, heads=[3], positions=[n - 1], mode="zero")
    assert w.metric_value == pytest.approx(reference_metric(smollm2, w), abs=1e-4)
    w.toggle_patch(w.patches[0]["id"], False)
    assert w.metric_value == pytest.approx(reference_metric(smollm2, w), abs=1e-4)
    ns = {"model": smollm2}
    exec(w.code, ns)  # noqa: S102
    assert ns["metric_value"] == pytest.approx(w.metric_value, abs=1e-4)
    w.act = "z"
    result = w.run_sweep()  # the overlay equals the patching module's on the tiny models (above)
    assert result.shape == (30, 9) and w.sweep["act"] == "z" and torch.isfinite(result).all()
    for layer, head in [(0, 0), (14, 4), (29, 8)]:  # each overlay cell is the metric of that single drop
        w.clear_patches()
        w.add_patch("z", layers=layer, heads=head)
        assert w.metric_value == pytest.approx(float(result[layer, head]), abs=1e-4)

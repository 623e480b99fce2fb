"""One attention: the model's forward, the fast patching engine and the patcher widget all run
the kernel of ``components/attention_kernel.py``; a change there reaches all three at once.
The engine's runtime self-check still guards it, with a single position too."""

from __future__ import annotations

import pytest
import torch

from lenswidget import patching
from lenswidget.components import attention_kernel
from lenswidget.patching.engine import fast as engine_fast
from tests.models import tiny_model

CLEAN = torch.tensor([[0, 17, 42, 7, 99, 3, 12], [0, 8, 1, 250, 11, 9, 64]])
CORRUPTED = CLEAN.clone()
CORRUPTED[:, 2:4] = 5


def _metric():
    return patching.batched_metric(lambda lg: (lg[:, :, -1, 5] - lg[:, :, -1, 7]).mean(1), positions=[-1])


def _shift_outputs(monkeypatch):
    """A new 'attention feature', added in one place: every attention output is shifted by 0.25
    (not a scale, which Gemma 2's post-norm would undo)."""
    sdpa, explicit = attention_kernel._sdpa, attention_kernel._explicit
    calls = {"sdpa": 0, "explicit": 0}

    def sdpa_shift(*a, **k):
        calls["sdpa"] += 1
        return sdpa(*a, **k) + 0.25

    def explicit_shift(*a, **k):
        calls["explicit"] += 1
        return explicit(*a, **k) + 0.25

    monkeypatch.setattr(attention_kernel, "_sdpa", sdpa_shift)
    monkeypatch.setattr(attention_kernel, "_explicit", explicit_shift)
    return calls


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_a_kernel_change_reaches_model_engine_and_patcher(monkeypatch, family):
    from lenswidget.widgets import patcher

    model = tiny_model(family, tokenizer=True, initializer_range=0.4)  # attention that matters
    with torch.no_grad():
        before = model(CLEAN)
        _, cache_before = model.run_with_cache(CLEAN)
        sweep_before = patching.get_act_patch_attn_head_q_all_pos(model, CORRUPTED, cache_before, _metric(),
                                                                  verbose=False, method="fast")
        calls = _shift_outputs(monkeypatch)
        after = model(CLEAN)
        assert not torch.allclose(after, before, atol=1e-2)  # the model's forward runs the kernel
        assert calls["sdpa"] + calls["explicit"] == model.cfg.n_layers
        _, cache = model.run_with_cache(CLEAN)
        z0 = cache["blocks.0.attn.hook_z"]
        assert torch.allclose(z0, cache_before["blocks.0.attn.hook_z"] + 0.25, atol=1e-5)
        n = sum(calls.values())
        fast = patching.get_act_patch_attn_head_q_all_pos(model, CORRUPTED, cache, _metric(), verbose=False,
                                                          method="fast")
        assert sum(calls.values()) > n  # the engine runs the kernel (shared prefix K/V: explicit path)
        hooks = patching.get_act_patch_attn_head_q_all_pos(model, CORRUPTED, cache, _metric(), verbose=False,
                                                           method="hooks")
        assert (fast - hooks).abs().max() <= 1e-4  # the changed engine still equals the changed model
        assert (fast - sweep_before).abs().max() > 1e-3
        n = sum(calls.values())
        w = patcher(model, "The cat sat on the mat. The dog", "The dog sat on the log. The cat")
        w.add_patch("z", layers=0, heads=[1])
        assert sum(calls.values()) > n  # the patcher's runs too
        ref = model.run_with_hooks(w.runs.corrupted_tokens, fwd_hooks=[(
            "blocks.0.attn.hook_z", lambda z, hook: _copy_head(z, w.runs.clean_cache["blocks.0.attn.hook_z"], 1))])
        assert torch.allclose(w.patched_logits(), ref, atol=1e-4)


def _copy_head(z, clean, head):
    z[:, :, head] = clean[:, :, head]
    return z


def test_self_check_runs_with_one_position_and_catches_a_wrong_recompute(monkeypatch):
    model = tiny_model("llama")
    clean, corrupted = CLEAN[:, :1].clone(), CORRUPTED[:, :1].clone()
    corrupted[:, 0] = 9
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
    checks = []
    original = engine_fast.Baseline.self_check

    def counted(self, ops):
        err = original(self, ops)
        checks.append(err)
        return err

    monkeypatch.setattr(engine_fast.Baseline, "self_check", counted)
    good = patching.get_act_patch_resid_pre(model, corrupted, cache, _metric(), verbose=False, method="fast")
    assert len(checks) == 1 and checks[0] <= 1e-4
    # break the engine's recompute only (the model's own forward is untouched)
    from lenswidget.patching.engine import ops

    real = ops.LayerOps.attend
    monkeypatch.setattr(ops.LayerOps, "attend", lambda self, *a: real(self, *a) * 3.0)
    with pytest.raises(engine_fast.FastPathUnavailable, match="self|differs"):
        patching.get_act_patch_resid_pre(model, corrupted, cache, _metric(), verbose=False, method="fast")
    fallback = patching.get_act_patch_resid_pre(model, corrupted, cache, _metric(), verbose=False)  # auto
    assert len(checks) == 3 and checks[1] > 1e-4
    assert (fallback - good).abs().max() <= 1e-5  # the hook-based path took over, exactly


def test_no_second_copy_of_the_attention_kernel():
    """Scores, softmax over keys, rotary and SDPA appear in components/ only."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "lenswidget"
    needles = ("scaled_dot_product_attention", "apply_rotary(", "nan_to_num", "isnan(pattern", "tanh(scores")
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("components/"):
            continue
        text = path.read_text()
        offenders += [f"{rel}: {n}" for n in needles if n in text]
    assert offenders == []

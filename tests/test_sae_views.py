"""SAE features in the residual explorer and the patcher (lenswidget/widgets/{residual,patcher}/
feature*.py), on a tiny random HookedSAETransformer with random SAEs.

References: the explorer's own component DLA and ``ActivationCache.logit_attrs`` (the SAE
bars must add up to them), ``sae.encode`` of a plain cache, and ``lenswidget.sae.patching``
/ an independent ``run_with_hooks`` for the patcher's feature chips.
"""

from __future__ import annotations

import pytest
import torch

from lenswidget import SAE, HookedSAETransformer
from lenswidget.errors import OutOfRangeError, UnknownNameError
from lenswidget.widgets import codec, patcher, residual
from tests.models import tiny_cfg, tiny_model, tiny_tokenizer

R_HOOK, M_HOOK = "blocks.1.hook_resid_post", "blocks.2.hook_mlp_out"
PROMPTS = ["the cat sat on the mat and the", "the dog sat on the log and the"]


def custom(widget, **content):
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HookedSAETransformer(tiny_cfg("gpt2", n_layers=3, n_ctx=64), tokenizer=tiny_tokenizer())


@pytest.fixture(scope="module")
def saes():
    return [SAE.from_dict({"d_in": 32, "d_sae": 64, "metadata": {"hook_name": R_HOOK}}, seed=0),
            SAE.from_dict({"d_in": 32, "d_sae": 48, "metadata": {"hook_name": M_HOOK}}, seed=1)]


@pytest.fixture(scope="module")
def explorer(model, saes):
    return residual(model, PROMPTS, answer=" the", incorrect=" to", saes=saes, top_k=5)


# -- residual explorer ------------------------------------------------------------------------------
def test_feature_bars_add_up_to_the_components_dla(model, saes, explorer):
    w = explorer
    assert [s["hook"] for s in w.saes] == [R_HOOK, M_HOOK]
    # mlp_out: the SAE's total is the component bar of 2_mlp_out (mean over the two prompts)
    mlp = w.attribution.component("2_mlp_out")
    assert w.saes[1]["value"] == pytest.approx(float(mlp.mean()), rel=1e-4, abs=1e-5)
    w.open_sae(M_HOOK)
    bars = w.feature_data["bars"]
    assert bars["per_prompt"].sum(0).tolist() == pytest.approx(mlp.tolist(), rel=1e-4, abs=1e-5)
    assert w.sae_check["sum"] == pytest.approx(w.sae_check["target"], rel=1e-4, abs=1e-5)
    assert bars["labels"][-3:] == ["other features", "b_dec", "error"]
    assert len(bars["features"]) == 5 and bars["kinds"][:5] == ["feature"] * 5
    shown = [abs(v) for v in bars["values"][:5].tolist()]
    assert shown == sorted(shown, reverse=True)
    # resid_post: the target is logit_attrs of that activation at the attributed position
    w.open_sae(R_HOOK)
    cache, pos = w.cache, w.pos
    with torch.no_grad():
        want = cache.logit_attrs(cache[R_HOOK][:, pos][None], model.to_single_token(" the"),
                                 model.to_single_token(" to"), pos_slice=pos)[0]
    assert w.sae_check["target"] == pytest.approx(float(want.mean()), rel=1e-4, abs=1e-5)
    assert w.sae_check["sum"] == pytest.approx(w.sae_check["target"], rel=1e-4, abs=1e-5)


def test_feature_detail_shows_its_activation_on_every_token_and_its_logit_effects(model, saes, explorer):
    from lenswidget.sae.attribution import feature_logit_effects

    w = explorer
    w.prompt_index = 1
    f = int(w.feature_data["bars"]["features"][0]) if w.sae_path else 0
    w.open_feature(f, R_HOOK)
    assert w.sae_path == [R_HOOK, f"F{f}"]
    d = w.sae_detail
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(PROMPTS), names_filter=[R_HOOK])
        ref = saes[0].encode(cache[R_HOOK])[1, :, f]
    assert codec.decode(d["acts"]).tolist() == pytest.approx(ref.tolist(), rel=1e-4, abs=1e-5)
    assert d["tokens"] == model.to_str_tokens(PROMPTS[1]) and d["prompt"] == 1
    assert d["activation"] == pytest.approx(float(ref[w.pos]), rel=1e-4, abs=1e-5)
    assert d["promoted"] == [t for t, _ in feature_logit_effects(model, saes[0], f, k=10)["promoted"]]
    # the opened feature stays among the bars even when it is not in the top k
    bars = w.feature_data["bars"]
    assert f"F{f}" in bars["labels"]
    w.prompt_index = None
    w.close_sae()
    assert w.sae_path == [] and w.sae_bars == {} and w.sae_detail == {}


def test_new_answers_recompute_the_sae_bars_from_the_same_run(explorer):
    w = explorer
    w.open_sae(M_HOOK)
    run = w._run
    before = w.sae_check["target"]
    w.set_answer(" to", " the")
    assert w._run is run and w.sae_path == [M_HOOK]
    assert w.sae_check["target"] == pytest.approx(-before, rel=1e-4, abs=1e-5)
    w.set_answer(" the", " to")
    w.close_sae()


def test_browser_messages_and_bad_requests(explorer):
    w = explorer
    custom(w, type="open_sae", hook=R_HOOK)
    assert w.sae_path == [R_HOOK] and w.error == ""
    custom(w, type="open_feature", hook=R_HOOK, feature=63)
    assert w.sae_path == [R_HOOK, "F63"] and w.error == ""
    custom(w, type="open_feature", hook=M_HOOK, feature=60)  # M's d_sae is 48
    assert "feature" in w.error and "0..47" in w.error and w.sae_path == [R_HOOK, "F63"]
    custom(w, type="open_sae", hook="blocks.0.hook_resid_post")
    assert "unknown SAE hook" in w.error and w.sae_path == [R_HOOK, "F63"]
    custom(w, type="sae_back", depth=1)
    assert w.sae_path == [R_HOOK] and w.error == ""
    custom(w, type="sae_back", depth=0)
    assert w.sae_path == []


def test_attached_saes_are_used_by_default_and_plain_models_are_refused(model, saes):
    model.add_sae(saes[1], use_error_term=True)
    try:
        w = residual(model, PROMPTS[0], answer=" the")
        assert [s["hook"] for s in w.saes] == [M_HOOK]
        assert residual(model, PROMPTS[0], answer=" the", saes=[]).saes == []
    finally:
        model.reset_saes()
    plain = tiny_model("gpt2", tokenizer=True, n_layers=3, n_ctx=64)
    with pytest.raises(TypeError, match="HookedSAETransformer"):
        residual(plain, PROMPTS[0], answer=" the", saes=saes[:1])
    with pytest.raises(UnknownNameError):
        residual(model, PROMPTS[0], answer=" the",
                 saes=[SAE.from_dict({"d_in": 32, "d_sae": 8, "metadata": {"hook_name": "blocks.9.hook_resid_post"}})])


# -- patcher ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pw(model, saes):
    return patcher(model, "the cat sat on the mat", "the dog sat on the mat", answer=" the", incorrect=" to",
                   saes=saes[:1], feature_top_k=6)


def _reference(model, sae, tokens, metric, writes, fwd_hooks=()):
    """The metric of one run with the SAE spliced (error term) and ``writes`` (pos, feature, value) applied."""
    def hook(acts, hook):
        for p, f, v in writes:
            acts[:, p, f] = v[:, p, f] if isinstance(v, torch.Tensor) and v.dim() == 3 else v
        return acts

    with torch.no_grad(), model.saes([sae], use_error_term=True):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"{R_HOOK}.hook_sae_acts_post", hook), *fwd_hooks])
    return float(metric(logits))


def test_feature_chips_match_sae_core_patching(model, saes, pw):
    from lenswidget.sae.patching import patch_features

    sae, runs = saes[0], pw.runs
    clean = pw._facts.clean_cache(sae)
    grid_features = pw.feature_grid["features"]
    assert len(grid_features) == 6
    cells = [(p, f) for f in grid_features[:3] for p in (2, 3)]
    pid = pw.add_feature_patch(grid_features[:3], [2, 3])
    want = patch_features(model, sae, runs.corrupted_tokens, clean, runs.metric, [cells], verbose=False)
    assert pw.metric_value == pytest.approx(float(want[0]), rel=1e-4, abs=1e-5)
    assert pw.metric_value != pytest.approx(pw.metric_corrupted, abs=1e-4)
    pw.toggle_feature_patch(pid, False)
    assert pw.metric_value == pytest.approx(pw.metric_corrupted, abs=1e-5)
    pw.remove_feature_patch(pid)
    pw.add_feature_patch(grid_features[:2], None, mode="zero")
    want = patch_features(model, sae, runs.corrupted_tokens, clean, runs.metric,
                          [[(p, f) for f in grid_features[:2] for p in range(runs.n_pos)]], ablate=True, verbose=False)
    assert pw.metric_value == pytest.approx(float(want[0]), rel=1e-4, abs=1e-5)
    pw.clear_feature_patches()
    assert pw.feature_patches == [] and pw.metric_value == pytest.approx(pw.metric_corrupted, abs=1e-5)


def test_feature_and_activation_chips_compose_in_one_run(model, saes, pw):
    sae, runs = saes[0], pw.runs
    f = pw.feature_grid["features"][0]
    pw.add_patch("resid_pre", layers=0, positions=[2])  # below the SAE (layer 1)
    pw.add_feature_patch([f], [2, 4], mode="mean")
    mean = pw._facts.mean(sae)

    def resid(act, hook):
        act[:, 2] = runs.clean_cache["blocks.0.hook_resid_pre"][:, 2]
        return act

    want = _reference(model, sae, runs.corrupted_tokens, runs.metric, [(2, f, mean[f]), (4, f, mean[f])],
                      [("blocks.0.hook_resid_pre", resid)])
    assert pw.metric_value == pytest.approx(want, rel=1e-4, abs=1e-5)
    pw.clear_patches()
    pw.clear_feature_patches()


def test_feature_grid_rows_are_the_top_estimates_and_the_exact_sweep_is_sae_core(model, saes, pw):
    from lenswidget.sae.patching import feature_attribution_patch, patch_features

    sae, runs = saes[0], pw.runs
    clean = pw._facts.clean_cache(sae)
    est = feature_attribution_patch(model, sae, runs.corrupted_tokens, clean, runs.metric)
    strength = est.features.abs().max(0).values
    assert set(pw.feature_grid["features"]) == set(strength.topk(6).indices.tolist())
    data = pw.feature_grid_data
    assert data["estimate"].shape == (6, runs.n_pos)
    assert data["estimate"][0].tolist() == pytest.approx((est.value + est.features[:, data["features"][0]]).tolist(),
                                                         rel=1e-4, abs=1e-5)
    exact = pw.feature_sweep("exact")
    assert exact.shape == (6, runs.n_pos) and pw.feature_grid["kind"] == "exact"
    f, p = data["features"][1], 3
    want = patch_features(model, sae, runs.corrupted_tokens, clean, runs.metric, [[(p, f)]], verbose=False)
    assert float(exact[1, p]) == pytest.approx(float(want[0]), rel=1e-4, abs=1e-5)
    assert codec.decode(pw.feature_grid).shape == (6, runs.n_pos)
    pw.feature_sweep("attribution")
    assert pw.feature_grid["kind"] == "attribution"


def test_patcher_feature_messages_validate_before_changing_anything(model, saes, pw):
    f = pw.feature_grid["features"][0]
    custom(pw, type="add_feature_patch", hook=R_HOOK, features=[f], positions=[1, 2], mode="clean")
    assert pw.error == "" and len(pw.feature_patches) == 1
    chip = pw.feature_patches[0]
    assert chip["features"] == [f] and chip["positions"] == [1, 2] and f"F{f}" in chip["label"]
    n = len(pw.feature_patches)
    custom(pw, type="add_feature_patch", hook=R_HOOK, features=[64], positions=[1, 2], mode="clean")
    assert "0..63" in pw.error and len(pw.feature_patches) == n
    custom(pw, type="add_feature_patch", hook=R_HOOK, features=[f], positions=[1, 99], mode="clean")
    assert pw.error and len(pw.feature_patches) == n
    custom(pw, type="add_feature_patch", hook="blocks.0.hook_resid_post", features=[f], positions=None, mode="zero")
    assert "unknown SAE hook" in pw.error and len(pw.feature_patches) == n
    custom(pw, type="toggle_feature_patch", id=chip["id"], enabled=False)
    assert pw.feature_patches[0]["enabled"] is False and pw.error == ""
    custom(pw, type="remove_feature_patch", id=999)
    assert "feature patch id" in pw.error and len(pw.feature_patches) == 1
    custom(pw, type="clear_feature_patches")
    assert pw.feature_patches == []
    pw._handle_msg({"content": {"data": {"method": "update", "state": {"feature_sae": "nope"}}}})
    assert pw.error and pw.feature_sae == R_HOOK
    with pytest.raises(OutOfRangeError):
        pw.add_feature_patch([f], [pw.runs.n_pos])
    assert not model.acts_to_saes  # nothing left attached


def test_new_prompts_keep_the_feature_chips_that_fit(model, saes):
    w = patcher(model, "the cat sat on the mat", "the dog sat on the mat", answer=" the", incorrect=" to",
                saes=saes[:1], feature_top_k=3)
    f = w.feature_grid["features"][0]
    last = w.runs.n_pos - 1
    w.add_feature_patch([f], [1])
    w.add_feature_patch([f], [last])
    w.set_prompts("the cat", "the dog")
    assert w.runs.n_pos <= last
    assert [c["positions"] for c in w.feature_patches] == [[1]]
    assert len(w.feature_grid["features"]) == 3


def test_a_metric_without_gradients_leaves_the_chips_working(model, saes):
    the = model.to_single_token(" the")

    def top_is_the(logits):  # no gradient: the grid's attribution estimate cannot be computed
        return (logits[:, -1].argmax(-1) == the).float().mean()

    w = patcher(model, "the cat sat on the mat", "the dog sat on the mat", metric=top_is_the, saes=saes[:1])
    assert w.feature_grid["features"] == [] and "no feature grid" in w.feature_grid["note"]
    w.add_feature_patch([0, 1], None, mode="zero")
    assert len(w.feature_patches) == 1 and w.error == ""


def test_a_feature_chip_holds_at_most_max_features():
    from types import SimpleNamespace

    from lenswidget.widgets.patcher.feature_patches import MAX_FEATURES_PER_CHIP, make_chip

    sae = SimpleNamespace(cfg=SimpleNamespace(d_sae=4 * MAX_FEATURES_PER_CHIP, hook_name="blocks.0.hook_resid_post"))
    chip = make_chip(1, sae, 5, range(MAX_FEATURES_PER_CHIP), positions=[-1, 0, 0])
    assert chip.features == tuple(range(MAX_FEATURES_PER_CHIP)) and chip.positions == (0, 4)
    with pytest.raises(OutOfRangeError, match="in one chip"):
        make_chip(1, sae, 5, range(MAX_FEATURES_PER_CHIP + 1))
    with pytest.raises(OutOfRangeError, match="feature"):
        make_chip(1, sae, 5, [4 * MAX_FEATURES_PER_CHIP])

"""direct_logit_attribution and the AnalysisMixin helpers it relies on."""

import pytest
import torch

from lenswidget.errors import InvalidOptionError, OutOfRangeError, TokenizationError
from lenswidget.factored import FactoredMatrix
from lenswidget.tools.analysis import DirectLogitAttribution, direct_logit_attribution
from tests.models import tiny_model
from tests.test_cache import build, close


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def processed(request):
    model = build(request.param, processed=True)
    tokens = torch.randint(3, 300, (3, 5), generator=torch.Generator().manual_seed(3))
    logits, cache = model.run_with_cache(tokens)
    return model, tokens, logits, cache


# ------------------------------------------------------------------ AnalysisMixin


def test_tokens_to_residual_directions_shapes():
    model = tiny_model("gpt2", tokenizer=True)
    W_U = model.W_U
    the = model.to_single_token(" the")
    assert torch.equal(model.tokens_to_residual_directions(" the"), W_U[:, the])
    assert torch.equal(model.tokens_to_residual_directions(the), W_U[:, the])
    assert torch.equal(model.tokens_to_residual_directions(torch.tensor(the)), W_U[:, the])
    assert model.tokens_to_residual_directions(torch.tensor([the])).shape == (model.cfg.d_model,)
    toks = torch.tensor([[3, 4, 5], [6, 7, 8]])
    d = model.tokens_to_residual_directions(toks)
    assert d.shape == (2, 3, model.cfg.d_model)
    assert torch.equal(d[1, 2], W_U[:, 8])
    # seed 004: answer tokens [batch, 2, answer_len] -> [batch, 2, answer_len, d_model]
    assert model.tokens_to_residual_directions(torch.zeros(8, 2, 4, dtype=torch.long)).shape == (8, 2, 4, model.cfg.d_model)
    with pytest.raises(TokenizationError, match="not one"):
        model.tokens_to_residual_directions(" Paris")
    with pytest.raises(OutOfRangeError, match="token id"):
        model.tokens_to_residual_directions(10_000)
    with pytest.raises(InvalidOptionError):
        model.tokens_to_residual_directions(torch.tensor([0.5, 1.0]))


def test_accumulated_bias():
    model = build("gpt2")
    b_O = [model.blocks[l].attn.b_O for l in range(3)]
    b_out = [model.blocks[l].mlp.b_out for l in range(3)]
    close(model.accumulated_bias(0), torch.zeros(model.cfg.d_model))
    close(model.accumulated_bias(2), b_O[0] + b_out[0] + b_O[1] + b_out[1])
    close(model.accumulated_bias(2, mlp_input=True), b_O[0] + b_out[0] + b_O[1] + b_out[1] + b_O[2])
    close(model.accumulated_bias(3, include_mlp_biases=False), b_O[0] + b_O[1] + b_O[2])
    with pytest.raises(OutOfRangeError):
        model.accumulated_bias(4)
    with pytest.raises(OutOfRangeError):
        model.accumulated_bias(3, mlp_input=True)


def test_all_head_labels():
    model = tiny_model("llama")
    labels = model.all_head_labels()
    assert labels[:5] == ["L0H0", "L0H1", "L0H2", "L0H3", "L1H0"] and len(labels) == 8


# ------------------------------------------------------------------ direct_logit_attribution


def test_component_unit_reconstructs_logit_minus_b_U(processed):
    model, tokens, logits, cache = processed
    answer = torch.tensor([5, 6, 7])
    dla = direct_logit_attribution(model, tokens, answer, cache=cache)
    assert isinstance(dla, DirectLogitAttribution) and dla.unit == "component"
    assert dla.attribution.shape == (len(dla.labels), 3)
    assert dla.labels[0] == "embed" and dla.labels[-1] == "2_mlp_out"
    target = logits[torch.arange(3), -1, answer] - model.b_U[answer]
    close(dla.attribution.sum(0), target, atol=1e-3, rtol=1e-4)
    # the model is run when no cache is given, with the same result
    fresh = direct_logit_attribution(model, tokens, answer)
    close(fresh.attribution, dla.attribution, atol=1e-5, rtol=1e-5)
    assert fresh.labels == dla.labels


def test_head_unit_and_logit_difference(processed):
    model, tokens, logits, cache = processed
    answer, wrong = torch.tensor([5, 6, 7]), torch.tensor([9, 9, 10])
    dla = direct_logit_attribution(model, answer_tokens=answer, incorrect_tokens=wrong, unit="head", cache=cache)
    H = model.cfg.n_heads
    assert dla.labels[:H] == [f"L0H{h}" for h in range(H)] and dla.labels[-1] == "remainder"
    assert dla.attribution.shape == (3 * H + 1, 3)
    last = logits[:, -1]
    target = (last[torch.arange(3), answer] - model.b_U[answer]) - (last[torch.arange(3), wrong] - model.b_U[wrong])
    close(dla.attribution.sum(0), target, atol=1e-3, rtol=1e-4)


def test_layer_unit_is_the_logit_lens(processed):
    model, tokens, logits, cache = processed
    answer = torch.tensor([5, 6, 7])
    dla = direct_logit_attribution(model, answer_tokens=answer, unit="layer", cache=cache)
    assert dla.labels == ["0_pre", "0_mid", "1_pre", "1_mid", "2_pre", "2_mid", "final_post"]
    close(dla.attribution[-1], logits[torch.arange(3), -1, answer] - model.b_U[answer], atol=1e-3, rtol=1e-4)


def test_all_positions_and_top(processed):
    model, tokens, logits, cache = processed
    answer = torch.tensor([5, 6, 7])
    dla = direct_logit_attribution(model, answer_tokens=answer, pos=None, cache=cache)
    assert dla.attribution.shape == (len(dla.labels), 3, 5)
    target = logits[torch.arange(3)[:, None], torch.arange(5), answer[:, None]] - model.b_U[answer][:, None]
    close(dla.attribution.sum(0), target, atol=1e-3, rtol=1e-4)
    top = direct_logit_attribution(model, answer_tokens=answer, cache=cache).top(3)
    assert len(top) == 3 and all(isinstance(l, str) and isinstance(v, float) for l, v in top)
    assert top[0][1] >= top[1][1] >= top[2][1]
    means = direct_logit_attribution(model, answer_tokens=answer, cache=cache).attribution.detach().mean(-1)
    assert top[0] == (dla.labels[int(means.argmax())], pytest.approx(float(means.max()), abs=1e-6))


def test_string_answer_and_errors():
    model = build("gpt2", processed=True)
    model.set_tokenizer(tiny_model("gpt2", tokenizer=True).tokenizer)
    dla = direct_logit_attribution(model, "The cat sat on", " the")
    logits = model("The cat sat on")
    tok = model.to_single_token(" the")
    close(dla.attribution.sum(0), logits[:, -1, tok] - model.b_U[tok], atol=1e-3, rtol=1e-4)
    assert "DirectLogitAttribution(unit='component'" in repr(dla)
    with pytest.raises(InvalidOptionError, match="'component', 'layer', 'head'"):
        direct_logit_attribution(model, "The cat", " the", unit="neuron")
    with pytest.raises(InvalidOptionError, match="answer_tokens"):
        direct_logit_attribution(model, "The cat")
    with pytest.raises(InvalidOptionError, match="input"):
        direct_logit_attribution(model, answer_tokens=" the")
    with pytest.raises(TokenizationError):
        direct_logit_attribution(model, "The cat", " Paris")
    with pytest.raises(OutOfRangeError, match="pos_slice"):
        direct_logit_attribution(model, "The cat", " the", pos=40)


# ------------------------------------------------------------------ QK / OV circuits


def test_QK_OV_are_factored_per_head_circuits():
    model = tiny_model("llama")  # GQA: W_K / W_V are expanded to every query head
    QK, OV = model.QK, model.OV
    L, H, d = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model
    assert isinstance(QK, FactoredMatrix) and QK.shape == (L, H, d, d) and OV.shape == (L, H, d, d)
    close(QK.AB[1, 2], model.blocks[1].attn.W_Q[2] @ model.blocks[1].attn.W_K[2].T)
    close(OV.AB[0, 3], model.blocks[0].attn.W_V[3] @ model.blocks[0].attn.W_O[3])


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_all_composition_scores_match_dense(mode):
    model = tiny_model("gpt2", n_layers=3)
    scores = model.all_composition_scores(mode)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    assert scores.shape == (L, H, L, H)
    OV, QK = model.OV.AB, model.QK.AB
    right = {"Q": QK, "K": QK.transpose(-2, -1), "V": OV}[mode]
    for l1 in range(L):
        for l2 in range(L):
            for h1 in range(H):
                for h2 in range(H):
                    got = scores[l1, h1, l2, h2]
                    if l1 >= l2:
                        assert got == 0
                        continue
                    left_m, right_m = OV[l1, h1], right[l2, h2]
                    want = (left_m @ right_m).norm() / left_m.norm() / right_m.norm()
                    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert scores.max() > 0
    with pytest.raises(InvalidOptionError, match="'Q', 'K', 'V'"):
        model.all_composition_scores("O")

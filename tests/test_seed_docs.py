"""The ActivationCache doc examples (seed 000) run against SmolLM2-135M-Instruct.

Same calls as the docs; the numbers differ (another model), so shapes, labels and
identities are asserted instead of the printed values.
"""

import pandas as pd
import pytest
import torch
from einops import einsum

from lenswidget import ActivationCache
from lenswidget.errors import TokenizationError, UnknownNameError

pytestmark = pytest.mark.smollm2

PROMPT = "Why did the chicken cross the"
ANSWER = " road"  # note the leading space to match the model's tokenization


@pytest.fixture(scope="module")
def run(smollm2):
    with torch.no_grad():
        logits, cache = smollm2.run_with_cache(PROMPT)
    return smollm2, logits, cache


def test_keys_start_with_the_embeddings(run):
    model, _, cache = run
    assert isinstance(cache, ActivationCache)
    # rotary model: no hook_pos_embed, so the resid_pre of block 0 comes second
    assert list(cache.keys())[0:3] == ["hook_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale"]
    assert "hook_pos_embed" not in cache


def test_class_example_decompose_resid_and_logit_attrs(run):
    model, logits, cache = run
    seq = cache["resid_pre", 0].shape[1]
    residual_stream, labels = cache.decompose_resid(return_labels=True, mode="attn")
    assert labels[0:3] == ["embed", "0_attn_out", "1_attn_out"]
    assert len(labels) == model.cfg.n_layers + 1 == residual_stream.shape[0]
    logit_attrs = cache.logit_attrs(residual_stream, ANSWER)
    assert logit_attrs.shape == torch.Size([model.cfg.n_layers + 1, 1, seq])  # attention layers
    most_important = torch.argmax(logit_attrs[:, 0, -1])
    assert labels[most_important].endswith("_attn_out") or labels[most_important] == "embed"
    # all components (attn and mlp) attribute the full logit (b_U is zero after center_unembed)
    full = cache.logit_attrs(cache.decompose_resid(), ANSWER)
    tok = model.to_single_token(ANSWER)
    torch.testing.assert_close(full.sum(0), logits[..., tok] - model.b_U[tok], atol=1e-3, rtol=1e-4)
    with pytest.raises(TokenizationError):
        cache.logit_attrs(residual_stream, " road trip")


def test_accumulated_resid_logit_lens_ranks(run):
    model, logits, cache = run
    answer_token = model.to_single_token(ANSWER)
    assert answer_token == model.to_tokens(ANSWER, prepend_bos=False)[0, 0]
    accum_resid, labels = cache.accumulated_resid(return_labels=True, apply_ln=True)
    last_token_accum = accum_resid[:, 0, -1, :]  # layer, batch, pos, d_model
    n = model.cfg.n_layers
    assert last_token_accum.shape == torch.Size([n + 1, model.cfg.d_model])
    W_U = model.W_U
    assert W_U.shape == torch.Size([model.cfg.d_model, model.cfg.d_vocab])
    layers_unembedded = einsum(last_token_accum, W_U, "layer d_model, d_model d_vocab -> layer d_vocab")
    assert layers_unembedded.shape == torch.Size([n + 1, model.cfg.d_vocab])
    sorted_indices = torch.argsort(layers_unembedded, dim=1, descending=True)
    rank_answer = (sorted_indices == answer_token).nonzero(as_tuple=True)[1]
    series = pd.Series(rank_answer, index=labels)
    assert list(series.index[:2]) == ["0_pre", "1_pre"] and series.index[-1] == "final_post"
    assert len(series) == n + 1
    # the final row is exactly the model's own prediction
    torch.testing.assert_close(layers_unembedded[-1] + model.b_U, logits[0, -1], atol=1e-3, rtol=1e-4)
    model_rank = int((logits[0, -1] > logits[0, -1, answer_token]).sum())
    assert series["final_post"] == model_rank
    assert series["final_post"] <= series["0_pre"]  # the model gets better at " road" by the end


def test_full_resid_decomposition_and_neurons(run):
    model, logits, cache = run
    cfg = model.cfg
    stack, labels = cache.get_full_resid_decomposition(pos_slice=-1, return_labels=True)
    assert stack.shape == (cfg.n_layers * cfg.n_heads + cfg.n_layers * cfg.d_mlp + 2, 1, cfg.d_model)
    assert labels[0] == "L0H0" and labels[cfg.n_layers * cfg.n_heads] == "L0N0" and labels[-2:] == ["embed", "bias"]
    torch.testing.assert_close(stack.sum(0), cache["resid_post", -1][:, -1], atol=2e-3, rtol=1e-4)
    attrs = cache.logit_attrs(stack, ANSWER, pos_slice=-1)
    tok = model.to_single_token(ANSWER)
    torch.testing.assert_close(attrs.sum(0), logits[:, -1, tok] - model.b_U[tok], atol=1e-3, rtol=1e-4)
    assert labels[int(attrs[:, 0].argmax())] in labels
    neurons, nl = cache.stack_neuron_results(2, pos_slice=-1, neuron_slice=(0, 4), return_labels=True)
    assert neurons.shape == (8, 1, cfg.d_model) and nl[:5] == ["L0N0", "L0N1", "L0N2", "L0N3", "L1N0"]
    assert cache.get_neuron_results(3, neuron_slice=[1, 2], pos_slice=-1).shape == (1, 2, cfg.d_model)


def test_stack_head_results_and_apply_ln(run):
    model, logits, cache = run
    cfg = model.cfg
    heads, labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True, incl_remainder=True)
    assert heads.shape == (cfg.n_layers * cfg.n_heads + 1, 1, cfg.d_model)
    assert labels[:2] == ["L0H0", "L0H1"] and labels[-1] == "remainder"
    torch.testing.assert_close(heads.sum(0), cache["resid_post", -1][:, -1], atol=1e-3, rtol=1e-4)
    scaled = cache.apply_ln_to_stack(heads, layer=-1, pos_slice=-1)
    torch.testing.assert_close(scaled.sum(0), cache["ln_final.hook_normalized"][:, -1], atol=1e-4, rtol=1e-4)
    assert cache.stack_activation("pattern").shape[:2] == (cfg.n_layers, 1)


def test_batch_and_device_helpers(run):
    model, _, cache = run
    sliced = cache.apply_slice_to_batch_dim(0)
    assert not sliced.has_batch_dim
    assert sliced["resid_post", -1].shape == cache["resid_post", -1].shape[1:]
    torch.testing.assert_close(sliced.decompose_resid().sum(0), sliced["resid_post", -1], atol=1e-3, rtol=1e-4)
    copy = ActivationCache(dict(cache.cache_dict), model).remove_batch_dim()
    assert copy["pattern", 0].shape == cache["pattern", 0].shape[1:]
    assert copy.to("cpu") is copy
    with pytest.raises(UnknownNameError, match="hook_resid_pre"):
        cache["blocks.0.hook_resid_pr"]
